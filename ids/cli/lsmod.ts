/**
 * `ebpfmonitor ids lsmod`: the guest's kernel modules from the kernel's module list.
 *
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import type { FetchMode } from "../guest.ts";
import { moduleJson, moduleTable } from "./format.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { moduleView } from "../os/module_view.ts";
import { moduleLayoutNote } from "../os/modules_layout.ts";

/** Options of `ids lsmod`. */
export interface LsmodOptions extends ConnectOptions {
  /** Fetch mode. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
}

/** Runs `ids lsmod`; returns the exit code. A kernel without modules prints a note on stderr. */
export function lsmod(options: LsmodOptions): Promise<number> {
  return withGuest(options, async (guest, _local, progress) => {
    progress.step(`walking the module list (${options.fetch} mode)`);
    const { items } = await guest.acquire(moduleView, options.fetch);
    progress.done();
    const note = moduleLayoutNote(guest.profile);
    if (note !== undefined) console.error(`note: ${note}`);
    console.log(
      options.json
        ? terminalSafeJson(JSON.stringify(items.map(moduleJson), null, 2))
        : moduleTable(items),
    );
    return 0;
  });
}
