/**
 * `ebpfmonitor ids ps`: the guest's processes from the kernel's task list.
 *
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import type { FetchMode } from "../guest.ts";
import { processJson, processTable } from "./format.ts";
import { type ConnectOptions, withGuest } from "./session.ts";

/** Options of `ids ps`. */
export interface PsOptions extends ConnectOptions {
  /** Fetch mode. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
  /** Most processes. */
  limit?: number;
}

/** Runs `ids ps`; returns the exit code. */
export function ps(options: PsOptions): Promise<number> {
  return withGuest(options, async (guest) => {
    const { items } = await guest.processes(options.fetch, options.limit);
    console.log(
      options.json
        ? terminalSafeJson(JSON.stringify(items.map(processJson), null, 2))
        : processTable(items),
    );
    return 0;
  });
}
