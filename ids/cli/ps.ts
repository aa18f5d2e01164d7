/**
 * `ebpfmonitor ids ps`: the guest's processes from the kernel's task list,
 * sorted by pid.
 *
 * @module
 */
import type { ProcessInfo } from "../os/tasks.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { printView, type ViewCommandOptions } from "./view_command.ts";
import { processView } from "../os/process_view.ts";

/** Options of `ids ps`. */
export interface PsOptions extends ConnectOptions, ViewCommandOptions {
  /** List only the processes with the `limit` lowest pids. */
  limit?: number;
}

/**
 * The processes sorted by pid, the `limit` lowest only when given. The task
 * list is in creation order and starts wherever the walk could start (the
 * agent's own task on a kernel without `init_task` in kallsyms), so the
 * lowest pids are found only in the whole list.
 */
export function lowestPids(items: readonly ProcessInfo[], limit?: number): ProcessInfo[] {
  const sorted = [...items].sort((a, b) => a.pid - b.pid);
  return limit === undefined ? sorted : sorted.slice(0, limit);
}

/** Runs `ids ps`; returns the exit code. */
export function ps(options: PsOptions): Promise<number> {
  return withGuest(
    options,
    (guest, _local, progress) =>
      printView(
        guest,
        progress,
        processView(),
        options,
        (items) => lowestPids(items, options.limit),
      ),
  );
}
