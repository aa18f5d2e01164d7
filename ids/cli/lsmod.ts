/**
 * `ebpfmonitor ids lsmod`: the guest's kernel modules from the kernel's module list.
 *
 * @module
 */
import { type ConnectOptions, withGuest } from "./session.ts";
import { printView, type ViewCommandOptions } from "./view_command.ts";
import { moduleView } from "../os/module_view.ts";

/** Options of `ids lsmod`. */
export interface LsmodOptions extends ConnectOptions, ViewCommandOptions {}

/** Runs `ids lsmod`; returns the exit code. A kernel without modules prints a note on stderr. */
export function lsmod(options: LsmodOptions): Promise<number> {
  return withGuest(
    options,
    (guest, _local, progress) => printView(guest, progress, moduleView, options),
  );
}
