/**
 * `ebpfmonitor ids ps`: the guest's processes from the kernel's task list,
 * sorted by pid.
 *
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import type { FetchMode } from "../guest.ts";
import type { ProcessInfo } from "../os/tasks.ts";
import { processJson, processTable } from "./format.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { processView } from "../os/process_view.ts";

/** Options of `ids ps`. */
export interface PsOptions extends ConnectOptions {
  /** Fetch mode. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
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
  return withGuest(options, async (guest, _local, progress) => {
    progress.step(`walking the task list (${options.fetch} mode)`);
    const { items } = await guest.acquire(processView(), options.fetch);
    progress.done();
    const listed = lowestPids(items, options.limit);
    console.log(
      options.json
        ? terminalSafeJson(JSON.stringify(listed.map(processJson), null, 2))
        : processTable(listed),
    );
    return 0;
  });
}
