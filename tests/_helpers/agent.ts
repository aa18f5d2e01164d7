/**
 * Test helpers that run the real thing: the agent as a child process (the one
 * way tests start one: {@linkcode startAgent} or {@linkcode withAgent}, with
 * keys made for it; {@linkcode withGuest} adds a connected Guest), the CLI as
 * a subprocess, snapshots of /proc, bpftool's program list. Every helper that
 * starts a process stops it on every exit path.
 *
 * @module
 */
import {
  generateIdentity,
  type Identity,
  publicIdentity,
  writeIdentity,
} from "../../wire/secure/keys.ts";
import type { ClientSecurity } from "../../ids/client/channel.ts";
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

/**
 * Runs `body` with an agent from {@linkcode startAgent} and a
 * {@linkcode Guest} connected to it, closing both.
 */
export function withGuest<T>(
  body: (guest: Guest, agent: TestAgent) => Promise<T>,
): Promise<T> {
  return withAgent(async (agent) => {
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

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- Keys ------------------------------------------------------------------------------------

/** An agent identity and an IDS identity, written as files in a private temporary folder. */
export interface KeySet {
  /** The folder (removed by `remove()`). */
  dir: string;
  /** The IDS's identity. */
  ids: Identity;
  /** The agent's identity. */
  agent: Identity;
  /** DIR/ids/id, DIR/ids/id.pub, DIR/agent/id, DIR/agent/id.pub. */
  files: { idsKey: string; idsPub: string; agentKey: string; agentPub: string };
  /** What the IDS needs to reach this agent. */
  security: ClientSecurity;
  /** Removes the folder. */
  remove(): Promise<void>;
}

/** Makes fresh keys for an agent and its IDS. */
export async function makeKeys(): Promise<KeySet> {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-security-" });
  const ids = await generateIdentity("ids (test)");
  const agent = await generateIdentity("agent (test)");
  const idsFiles = await writeIdentity(`${dir}/ids`, ids);
  const agentFiles = await writeIdentity(`${dir}/agent`, agent);
  return {
    dir,
    ids,
    agent,
    files: {
      idsKey: idsFiles.privatePath,
      idsPub: idsFiles.publicPath,
      agentKey: agentFiles.privatePath,
      agentPub: agentFiles.publicPath,
    },
    security: { identity: ids, agentKey: publicIdentity(agent) },
    remove: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

// --- The agent as a child process ------------------------------------------------------------

/** A process started with `deno run -A main.ts ARGS`, its output collected as it comes. */
export class CliProcess {
  readonly #child: Deno.ChildProcess;
  #stdout = "";
  #stderr = "";
  readonly #collecting: Promise<void>;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;

  /** Starts `main.ts ARGS`. */
  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status;
    const collect = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
    };
    this.#collecting = Promise.all([
      collect(this.#child.stdout, (text) => this.#stdout += text),
      collect(this.#child.stderr, (text) => this.#stderr += text),
    ]).then(() => {});
  }

  /** The child's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** What it printed on stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** What it printed on stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Waits until stdout matches `pattern` (or the process exits, or `timeoutMs` passes). */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const until = Date.now() + timeoutMs;
    let exited = false;
    this.status.then(() => exited = true);
    for (;;) {
      const match = pattern.exec(this.#stdout);
      if (match) return match;
      if (exited) {
        await this.#collecting;
        const again = pattern.exec(this.#stdout);
        if (again) return again;
        throw new Error(`Process exited before printing ${pattern}: ${this.#stderr.trim()}`);
      }
      if (Date.now() > until) {
        throw new Error(`Process did not print ${pattern} within ${timeoutMs} ms: ${this.#stderr}`);
      }
      await sleep(20);
    }
  }

  /** Sends `signal` to the child (by its pid); false when it is already gone. */
  kill(signal: Deno.Signal = "SIGTERM"): boolean {
    try {
      this.#child.kill(signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Ends the child (SIGTERM, then SIGKILL after 5 s) and waits for it and its output. */
  async stop(): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), 5000);
    try {
      const status = await this.status;
      await this.#collecting;
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for the exit and all output. */
  async finished(): Promise<Deno.CommandStatus> {
    const status = await this.status;
    await this.#collecting;
    return status;
  }
}

/** An agent started from the CLI with keys made for it. */
export interface TestAgent {
  /** Where it listens. */
  url: string;
  /** Its pid. */
  pid: number;
  /** The keys (agent and IDS). */
  keys: KeySet;
  /** What the IDS needs to reach it. */
  security: ClientSecurity;
  /** The process (output, kill). */
  process: CliProcess;
  /** Stops it and removes its keys. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startAgent}. */
export interface StartAgentOptions {
  /** Keys to use (made fresh when absent; then removed by `stop()`). */
  keys?: KeySet;
  /** Port to listen on (0: any). */
  port?: number;
  /** Pass -v (log connections). */
  verbose?: boolean;
}

/** Starts `main.ts agent --key --trust` on 127.0.0.1 and waits until it listens. */
export async function startAgent(options: StartAgentOptions = {}): Promise<TestAgent> {
  const keys = options.keys ?? await makeKeys();
  const own = options.keys === undefined;
  const args = [
    "agent",
    "--listen",
    `tcp://127.0.0.1:${options.port ?? 0}`,
    "--key",
    keys.files.agentKey,
    "--trust",
    keys.files.idsPub,
  ];
  if (options.verbose) args.push("-v");
  const process = new CliProcess(args);
  try {
    const match = await process.waitFor(/listening on (\S+)/);
    return {
      url: match[1]!,
      pid: process.pid,
      keys,
      security: keys.security,
      process,
      async stop() {
        await process.stop();
        if (own) await keys.remove();
      },
    };
  } catch (error) {
    await process.stop();
    if (own) await keys.remove();
    throw error;
  }
}

/** Runs `body` with an agent from {@linkcode startAgent}, stopping it afterwards. */
export async function withAgent<T>(
  body: (agent: TestAgent) => Promise<T>,
  options: StartAgentOptions = {},
): Promise<T> {
  const agent = await startAgent(options);
  try {
    return await body(agent);
  } finally {
    await agent.stop();
  }
}
