/**
 * The guest's own view of itself, read inside the guest through the bed's
 * shell: every process from /proc (pid, ppid, comm, uid, pid namespace), the
 * module list from /proc/modules, and the TCP and UDP sockets from
 * /proc/net/{tcp,tcp6,udp,udp6}. The end-to-end tests hold the IDS's views
 * against it.
 *
 * @module
 */
import type { Vm } from "./qemu.ts";
import type { SocketInfo } from "../../ids/os/sockets.ts";
import { parseProcNet, PROC_NET_FILES } from "../_helpers/proc_net.ts";

/** A process as /proc shows it (from the guest's initial pid namespace). */
export interface TrueProcess {
  /** Pid. */
  pid: number;
  /** Parent's pid. */
  ppid: number;
  /** /proc's name cut to 15 bytes, the length of task_struct.comm. */
  comm: string;
  /**
   * /proc's name as printed: for kernel threads 6.x kernels print more than
   * task_struct.comm (the kthread's full name, a kworker's "-workqueue" suffix).
   */
  fullComm: string;
  /** Real uid. */
  uid: number;
  /** The pid namespace (`pid:[inode]`), empty when unreadable. */
  pidns: string;
}

/** A module as /proc/modules shows it. */
export interface TrueModule {
  /** Name. */
  name: string;
  /** Size, bytes. */
  size: number;
  /** Live, Loading or Unloading. */
  state: string;
  /** Base address (0 when the kernel hides it from the reader). */
  base: bigint;
}

/** The guest's view at one moment. */
export interface GroundTruth {
  /** Processes by pid. */
  processes: Map<number, TrueProcess>;
  /** Modules, in /proc/modules order. */
  modules: TrueModule[];
  /** TCP and UDP sockets, IPv4 and IPv6, of the initial network namespace. */
  sockets: SocketInfo[];
}

/** A name cut to TASK_COMM_LEN - 1 bytes. */
function cutComm(name: string): string {
  const bytes = new TextEncoder().encode(name);
  return bytes.length <= 15 ? name : new TextDecoder().decode(bytes.subarray(0, 15));
}

const SECTIONS = ["stat", "uid", "ns", "modules", "tcp", "tcp6", "udp", "udp6"] as const;

/** The shell command that prints the snapshot (sections between `@@name` lines). */
export const SNAPSHOT_COMMAND = [
  "echo @@stat; cat /proc/[0-9]*/stat 2>/dev/null",
  "echo @@uid; grep -H '^Uid:' /proc/[0-9]*/status 2>/dev/null",
  "echo @@ns; ls -l /proc/[0-9]*/ns/pid 2>/dev/null",
  "echo @@modules; cat /proc/modules",
  "echo @@tcp; cat /proc/net/tcp",
  "echo @@tcp6; cat /proc/net/tcp6",
  "echo @@udp; cat /proc/net/udp",
  "echo @@udp6; cat /proc/net/udp6",
  "true",
].join("; ");

/** Parses the output of {@linkcode SNAPSHOT_COMMAND}. */
export function parseGroundTruth(output: string): GroundTruth {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of output.split("\n")) {
    const name = /^@@(\w+)$/.exec(line)?.[1];
    if (name !== undefined && (SECTIONS as readonly string[]).includes(name)) {
      current = [];
      sections.set(name, current);
    } else if (line !== "") {
      current?.push(line);
    }
  }
  const section = (name: string) => sections.get(name) ?? [];

  const uids = new Map<number, number>();
  for (const line of section("uid")) {
    const m = /^\/proc\/(\d+)\/status:Uid:\s+(\d+)/.exec(line);
    if (m) uids.set(Number(m[1]), Number(m[2]));
  }
  const namespaces = new Map<number, string>();
  for (const line of section("ns")) {
    const m = /\/proc\/(\d+)\/ns\/pid -> (\S+)/.exec(line);
    if (m) namespaces.set(Number(m[1]), m[2]!);
  }
  const processes = new Map<number, TrueProcess>();
  for (const line of section("stat")) {
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ")".
    const open = line.indexOf(" (");
    const close = line.lastIndexOf(") ");
    if (open < 0 || close < open) continue;
    const pid = Number(line.slice(0, open));
    const rest = line.slice(close + 2).split(" ");
    const uid = uids.get(pid);
    if (uid === undefined) continue; // it ended between the two reads
    processes.set(pid, {
      pid,
      ppid: Number(rest[1]),
      comm: cutComm(line.slice(open + 2, close)),
      fullComm: line.slice(open + 2, close),
      uid,
      pidns: namespaces.get(pid) ?? "",
    });
  }

  const modules = section("modules").map((line) => {
    const [name, size, , , state, base] = line.split(" ");
    return { name: name!, size: Number(size), state: state!, base: BigInt(base ?? "0") };
  });

  const sockets = PROC_NET_FILES.flatMap(({ file, proto, family }) =>
    parseProcNet(section(file).join("\n"), proto, family)
  );
  return { processes, modules, sockets };
}

/** Reads the guest's own view through the bed's shell. */
export async function groundTruth(vm: Vm): Promise<GroundTruth> {
  const { code, output } = await vm.run(SNAPSHOT_COMMAND, 60_000);
  if (code !== 0) throw new Error(`The guest's snapshot failed (exit ${code}):\n${output}`);
  const truth = parseGroundTruth(output);
  if (truth.processes.size === 0) throw new Error(`The guest's snapshot is empty:\n${output}`);
  return truth;
}

/** The processes in a pid namespace other than pid 1's: the container's. */
export function containerProcesses(truth: GroundTruth): TrueProcess[] {
  const hostNs = truth.processes.get(1)?.pidns;
  if (!hostNs) throw new Error("The guest's snapshot has no pid namespace for pid 1");
  return [...truth.processes.values()].filter((p) => p.pidns !== "" && p.pidns !== hostNs);
}
