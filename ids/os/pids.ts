/**
 * The PID view: the initial PID namespace's IDR (`init_pid_ns.idr`), which
 * /proc's directory listing and every pid lookup use. Each allocated number
 * maps to a `struct pid`, whose `tasks[PIDTYPE_PID]` list holds the task
 * (through `task_struct.pid_links[PIDTYPE_PID]`). A task unlinked from the
 * task list is still here.
 *
 * @module
 */
import type { MemoryReader } from "../memory/memory.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { isKernelAddress, ListWalkError } from "./list.ts";
import { listXarray, loadXarray } from "./xarray.ts";

/** One allocated pid. */
export interface PidEntry {
  /** The number in the initial namespace. */
  nr: number;
  /** The `struct pid`. */
  pid: bigint;
  /** The task using it as its pid; 0 when none (a pid kept only as a group or session id). */
  task: bigint;
}

/**
 * The initial PID namespace: `init_pid_ns` from kallsyms, or, without data
 * symbols, the level-0 namespace of a task (`thread_pid->numbers[0].ns`).
 */
export async function initPidNamespace(
  mem: MemoryReader,
  profile: KernelProfile,
  anyTask: bigint,
): Promise<bigint> {
  const symbol = profile.dataSymbol("init_pid_ns");
  if (symbol !== undefined) return symbol;
  const pid = await mem.u64(anyTask + BigInt(profile.member("task_struct", "thread_pid").offset));
  return await mem.u64(pid + BigInt(profile.member("pid", "numbers[0].ns").offset));
}

/** Lists the pids allocated in the PID namespace at `namespace`. */
export async function listPids(
  mem: MemoryReader,
  profile: KernelProfile,
  namespace: bigint,
): Promise<PidEntry[]> {
  const idr = BigInt(profile.member("pid_namespace", "idr").offset);
  const rt = BigInt(profile.member("idr", "idr_rt").offset);
  const base = await mem.u32(namespace + idr + BigInt(profile.member("idr", "idr_base").offset));
  const entries = await listXarray(mem, profile, namespace + idr + rt);
  const pids: PidEntry[] = [];
  for (const { index, entry } of entries) {
    pids.push(await pidEntry(mem, profile, Number(index) + base, entry));
  }
  return pids;
}

/** Looks up one pid number in the namespace at `namespace` (`find_pid_ns()`). */
export async function findPid(
  mem: MemoryReader,
  profile: KernelProfile,
  namespace: bigint,
  nr: number,
): Promise<PidEntry | undefined> {
  const idr = namespace + BigInt(profile.member("pid_namespace", "idr").offset);
  const base = await mem.u32(idr + BigInt(profile.member("idr", "idr_base").offset));
  const rt = idr + BigInt(profile.member("idr", "idr_rt").offset);
  const entry = await loadXarray(mem, profile, rt, BigInt(nr - base));
  return entry === undefined ? undefined : await pidEntry(mem, profile, nr, entry);
}

async function pidEntry(
  mem: MemoryReader,
  profile: KernelProfile,
  nr: number,
  entry: bigint,
): Promise<PidEntry> {
  if (!isKernelAddress(entry)) {
    throw new ListWalkError("pid IDR", entry, `pid ${nr} is not a kernel pointer`);
  }
  const first = BigInt(profile.member("pid", "tasks[0].first").offset);
  const link = BigInt(profile.member("task_struct", "pid_links[0]").offset);
  const node = await mem.u64(entry + first);
  return { nr, pid: entry, task: node === 0n ? 0n : node - link };
}
