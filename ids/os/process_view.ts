/**
 * The process list as a {@linkcode View}: the task list from `init_task` (or,
 * without it in kallsyms, from the agent's own task), read by `listTasks`.
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import { ALL } from "../memory/bulk.ts";
import type { CapturePlan } from "../memory/plan.ts";
import { recordPlan } from "../memory/plan_recorder.ts";
import type { KernelProfile } from "../profile/profile.ts";
import { listTasks, type ProcessInfo, readTask } from "./tasks.ts";
import { taskLayout } from "./tasks_layout.ts";
import { memoized, type View, type ViewOutput } from "./view.ts";

/**
 * What `listTasks` reads of each task_struct, its real_cred and its
 * real_parent, for `fields` mode: learned from `readTask` itself (see
 * ids/memory/plan_recorder.ts).
 */
export const taskCapturePlan: (profile: KernelProfile) => Promise<CapturePlan> = memoized((
  profile,
) =>
  recordPlan(
    (mem, task) => readTask(mem, profile, task),
    taskLayout(profile).tasks.offset + profile.listHead.next.offset,
  )
);

/** How `ids ps` prints processes: a table for people, and `--json`. */
export const processOutput: ViewOutput<ProcessInfo> = {
  walking: "the task list",
  columns: [
    { header: "PID", cell: (p) => String(p.pid), right: true },
    { header: "PPID", cell: (p) => String(p.ppid), right: true },
    { header: "UID", cell: (p) => String(p.uid), right: true },
    { header: "EUID", cell: (p) => String(p.euid), right: true },
    { header: "GID", cell: (p) => String(p.gid), right: true },
    { header: "S", cell: (p) => p.state },
    { header: "KTHREAD", cell: (p) => p.kthread ? "yes" : "" },
    { header: "COMM", cell: (p) => p.comm },
    { header: "TASK", cell: (p) => formatAddress(p.addr) },
  ],
  json: (p) => ({
    pid: p.pid,
    tgid: p.tgid,
    ppid: p.ppid,
    comm: p.comm,
    uid: p.uid,
    euid: p.euid,
    gid: p.gid,
    state: p.state,
    kthread: p.kthread,
    addr: formatAddress(p.addr),
  }),
};

/**
 * The processes (at most `limit`). The walker is asked for one task past the
 * limits' ceiling (and the list's anchor, init_task, pid 0, which is walked
 * but not listed), so that a longer list is seen as such.
 */
export function processView(limit?: number): View<ProcessInfo> {
  return {
    name: "processes",
    output: processOutput,
    async source(ctx) {
      const maxTasks = ctx.limits.maxTasks;
      return {
        kind: "list",
        bulk: "tasks",
        addr: ctx.profile.initTask,
        isHead: false,
        limit: Math.min(limit === undefined ? ALL : limit + 1, maxTasks + 1),
        plan: await taskCapturePlan(ctx.profile),
      };
    },
    read(ctx, mem, start) {
      return listTasks(mem, ctx.profile, { start, limit, maxTasks: ctx.limits.maxTasks });
    },
  };
}
