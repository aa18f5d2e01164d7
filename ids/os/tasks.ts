/**
 * The process view: the kernel's task list (`task_struct.tasks`, one node per
 * thread-group leader) read through the memory layer, as /proc would show it.
 * A pure function of memory and profile: it never knows how the memory was
 * fetched.
 *
 * @module
 */
import type { MemoryReader } from "../memory/memory.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { listFrom } from "./list.ts";
import { HostileAnswer } from "../client/budget.ts";
import { credLayout, taskLayout } from "./tasks_layout.ts";

/** One process, as the kernel holds it. */
export interface ProcessInfo {
  /** `task_struct.pid` (in the initial PID namespace). */
  pid: number;
  /** `task_struct.tgid`. */
  tgid: number;
  /** `real_parent->tgid`, what /proc calls PPid. */
  ppid: number;
  /** `task_struct.comm`. */
  comm: string;
  /** `real_cred->uid`. */
  uid: number;
  /** `real_cred->euid`. */
  euid: number;
  /** `real_cred->gid`. */
  gid: number;
  /** The state letter /proc shows (R, S, D, T, t, X, Z, P, I). */
  state: string;
  /** Whether the task is a kernel thread (`PF_KTHREAD`). */
  kthread: boolean;
  /** Address of the task_struct. */
  addr: bigint;
}

/** Where the walk starts and how far it goes. */
export interface TaskWalkOptions {
  /**
   * A task on the list to start (and close) the walk at. Defaults to the
   * profile's `init_task`; required when kallsyms has none.
   */
  start?: bigint;
  /** Most processes to return. */
  limit?: number;
  /** Most tasks the list may hold (default PID_MAX_LIMIT); past it the answer is hostile. */
  maxTasks?: number;
}

/** `PF_KTHREAD` from include/linux/sched.h. */
const PF_KTHREAD = 0x0020_0000;
/** The most tasks a list can hold (PID_MAX_LIMIT). */
export const PID_MAX_LIMIT = 4_194_304;

// State bits as in include/linux/sched.h (stable since 4.14); TASK_REPORT covers the
// bits /proc reports, the letters are fs/proc/array.c's task_state_array.
const TASK_REPORT = 0x7f;
const TASK_IDLE = 0x402; // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
const TASK_REPORT_IDLE = TASK_REPORT + 1;
const TASK_UNINTERRUPTIBLE = 0x2;
const TASK_RTLOCK_WAIT = 0x1000; // 5.15+
const TASK_FROZEN = 0x8000; // 6.1+
const STATE_LETTERS = "RSDTtXZPI";

/** The letter /proc shows for a task's state and exit_state (`__task_state_index()`). */
export function stateLetter(state: number, exitState: number): string {
  let report = (state | exitState) & TASK_REPORT;
  if ((state & TASK_IDLE) === TASK_IDLE) report = TASK_REPORT_IDLE;
  if (state & (TASK_RTLOCK_WAIT | TASK_FROZEN)) report = TASK_UNINTERRUPTIBLE;
  const index = report === 0 ? 0 : 32 - Math.clz32(report);
  return STATE_LETTERS[index] ?? "?";
}

/** Reads one task_struct (and its real_cred and real_parent) into a {@linkcode ProcessInfo}. */
export async function readTask(
  mem: MemoryReader,
  profile: KernelProfile,
  task: bigint,
): Promise<ProcessInfo> {
  const t = taskLayout(profile);
  const c = credLayout(profile);
  const at = (offset: number) => task + BigInt(offset);
  const realCred = await mem.u64(at(t.real_cred.offset));
  const realParent = await mem.u64(at(t.real_parent.offset));
  const cred = (offset: number) => mem.u32(realCred + BigInt(offset));
  // Before 5.14 task_struct.state is a long; its low 32 bits hold every state bit.
  const state = await mem.u32(at(t.state.offset));
  return {
    pid: await mem.i32(at(t.pid.offset)),
    tgid: await mem.i32(at(t.tgid.offset)),
    ppid: realParent === 0n ? 0 : await mem.i32(realParent + BigInt(t.tgid.offset)),
    comm: await mem.cString(at(t.comm.offset), t.comm.size),
    uid: await cred(c.uid.offset),
    euid: await cred(c.euid.offset),
    gid: await cred(c.gid.offset),
    state: stateLetter(state, await mem.i32(at(t.exit_state.offset))),
    kthread: ((await mem.u32(at(t.flags.offset))) & PF_KTHREAD) !== 0,
    addr: task,
  };
}

/**
 * Lists the processes on the task list. The walk starts at `options.start` (or
 * `init_task`) and goes round the circular list once. The idle task (pid 0,
 * `init_task`, the list's anchor) is not a process and is left out, as /proc
 * leaves it out. A list that loops elsewhere, or a pointer that leaves kernel
 * memory, ends the walk with a {@linkcode ListWalkError}.
 */
export async function listTasks(
  mem: MemoryReader,
  profile: KernelProfile,
  options: TaskWalkOptions = {},
): Promise<ProcessInfo[]> {
  const start = options.start ?? profile.initTask;
  if (start === undefined) {
    throw new Error(
      "Cannot walk the task list: kallsyms has no init_task and no start task was given",
    );
  }
  const limit = options.limit ?? Infinity;
  const tasks = taskLayout(profile).tasks;
  const linkOffset = BigInt(tasks.offset + profile.listHead.next.offset);
  const containerOffset = BigInt(tasks.offset);
  const processes: ProcessInfo[] = [];
  const maxTasks = Math.min(options.maxTasks ?? PID_MAX_LIMIT, PID_MAX_LIMIT);
  const walk = listFrom(mem, start, {
    name: "task list",
    next: Number(linkOffset),
    link: Number(containerOffset),
    max: maxTasks,
    tooMany: () =>
      new HostileAnswer("max_tasks", `the task list holds more than ${maxTasks} tasks`),
  });
  while (processes.length < limit) {
    const next = await walk.next();
    if (next.done) break;
    const info = await readTask(mem, profile, next.value);
    if (info.pid !== 0) processes.push(info);
  }
  return processes;
}
