/**
 * Test helpers that run the real thing: a local agent as a child process, the
 * CLI as a subprocess, snapshots of /proc, bpftool's program list. Every
 * helper that starts a process stops it on every exit path.
 *
 * @module
 */
import { type LocalAgent, startLocalAgent } from "../../ids/local_agent.ts";
import { Guest } from "../../ids/guest.ts";
import { startSleepers as startWorkload } from "../../ids/cli/workload.ts";
import type { ProcessInfo } from "../../ids/os/tasks.ts";

/** What must agree between two fetch modes for one process (its state may change between walks). */
export function stableKey(p: ProcessInfo): string {
  return JSON.stringify([
    p.pid,
    p.tgid,
    p.ppid,
    p.comm,
    p.uid,
    p.euid,
    p.gid,
    p.kthread,
    String(p.addr),
  ]);
}

/** The repository's main.ts. */
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Whether this process runs as root (the real-eBPF tests need it). */
export const IS_ROOT = Deno.uid() === 0;

/** Runs `body` with a local agent (a child process), stopping it afterwards. */
export async function withLocalAgent<T>(body: (agent: LocalAgent) => Promise<T>): Promise<T> {
  const agent = await startLocalAgent();
  try {
    return await body(agent);
  } finally {
    await agent.stop();
  }
}

/** Runs `body` with a local agent and a {@linkcode Guest} connected to it, closing both. */
export function withGuest<T>(
  body: (guest: Guest, agent: LocalAgent) => Promise<T>,
): Promise<T> {
  return withLocalAgent(async (agent) => {
    const guest = await Guest.open(agent.url, agent.security);
    try {
      return await body(guest, agent);
    } finally {
      guest.close();
    }
  });
}

/** What a CLI run printed and how it exited. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A main.ts ARGS` to completion. */
export async function runCli(args: string[]): Promise<CliRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}

/** `TASK_COMM_LEN` from include/linux/sched.h, the NUL included. */
const TASK_COMM_LEN = 16;

/** One process as /proc shows it. */
export interface ProcEntry {
  pid: number;
  ppid: number;
  /** /proc/PID/comm cut to 15 bytes, the length of task_struct.comm. */
  comm: string;
  /**
   * /proc/PID/comm as printed: for kernel threads, 6.x kernels print more than
   * task_struct.comm there (the kthread's full_name, a kworker's "-workqueue" suffix).
   */
  fullComm: string;
  /** The first field of Uid: (real uid). */
  uid: number;
}

function readProcEntry(pid: number): ProcEntry | undefined {
  try {
    const full = Deno.readFileSync(`/proc/${pid}/comm`);
    const line = full.at(-1) === 0x0a ? full.subarray(0, -1) : full;
    const comm = new TextDecoder().decode(line.subarray(0, TASK_COMM_LEN - 1));
    const fullComm = new TextDecoder().decode(line);
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const ppid = /^PPid:\s*(\d+)/m.exec(status)?.[1];
    const uid = /^Uid:\s*(\d+)/m.exec(status)?.[1];
    if (ppid === undefined || uid === undefined) return undefined;
    return { pid, ppid: Number(ppid), comm, fullComm, uid: Number(uid) };
  } catch {
    return undefined; // the process exited while we read it
  }
}

/** Every process /proc lists now (thread-group leaders), by pid. */
export function procSnapshot(): Map<number, ProcEntry> {
  const entries = new Map<number, ProcEntry>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const proc = readProcEntry(Number(entry.name));
    if (proc) entries.set(proc.pid, proc);
  }
  return entries;
}

/** The processes present, with the same fields, in both snapshots. */
export function stableProcesses(
  before: Map<number, ProcEntry>,
  after: Map<number, ProcEntry>,
): ProcEntry[] {
  const stable: ProcEntry[] = [];
  for (const [pid, a] of before) {
    const b = after.get(pid);
    if (b && a.ppid === b.ppid && a.fullComm === b.fullComm && a.uid === b.uid) stable.push(a);
  }
  return stable;
}

/** The pid of kthreadd, parent of every kernel thread. */
const KTHREADD = 2;

/**
 * Whether `comm` (task_struct.comm as a view read it) is the comm /proc shows
 * for `proc`: equal, or for a kernel thread the start of what /proc prints.
 */
export function sameComm(proc: ProcEntry, comm: string): boolean {
  if (proc.comm === comm) return true;
  const kernelThread = proc.pid === KTHREADD || proc.ppid === KTHREADD;
  return kernelThread && comm.length > 0 && proc.fullComm.startsWith(comm);
}

/** One program as `bpftool prog show --json` lists it. */
export interface BpfProgramInfo {
  id: number;
  name: string;
}

/** What `bpftool OBJECT show --json` lists (`prog`, `link`...), parsed. */
export async function bpftoolShow(object: string): Promise<Record<string, unknown>[]> {
  const output = await new Deno.Command("bpftool", {
    args: [object, "show", "--json"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(`bpftool ${object} show failed: ${new TextDecoder().decode(output.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout)) as Record<string, unknown>[];
}

/** The eBPF programs loaded in the kernel now. */
export async function bpftoolPrograms(): Promise<BpfProgramInfo[]> {
  const list = await bpftoolShow("prog") as unknown as BpfProgramInfo[];
  return list.map(({ id, name }) => ({ id, name }));
}

/** Waits until `check` holds, polling every 50 ms; false when `timeoutMs` passed first. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs = 5000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Started helper processes with known credentials. */
export interface Helpers {
  pids: number[];
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts `count` idle processes, ended by pid on dispose. Without `asNobody`
 * they are forked at once by one parent (ids/cli/workload.ts: many at a time);
 * with it, `sleep 60` children through setpriv as uid/gid 65534, each waited
 * for until it has exec'd sleep (its comm is "sleep").
 */
export async function startSleepers(count: number, asNobody = false): Promise<Helpers> {
  if (!asNobody) {
    const workload = await startWorkload(count);
    return { pids: workload.pids, [Symbol.asyncDispose]: workload.stop };
  }
  const children: Deno.ChildProcess[] = [];
  const stop = async () => {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    await Promise.all(children.map((child) => child.status));
  };
  try {
    for (let i = 0; i < count; i++) {
      children.push(
        new Deno.Command("setpriv", {
          args: ["--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"],
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    const ready = await eventually(() =>
      Promise.resolve(children.every((child) => readProcEntry(child.pid)?.comm === "sleep"))
    );
    if (!ready) throw new Error("Helper processes did not exec sleep within 5 s");
  } catch (error) {
    await stop();
    throw error;
  }
  return { pids: children.map((child) => child.pid), [Symbol.asyncDispose]: stop };
}

/** Whether setpriv is installed. */
export function hasSetpriv(): boolean {
  try {
    return new Deno.Command("setpriv", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
