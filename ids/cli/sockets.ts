/**
 * `ebpfmonitor ids sockets`: the guest's TCP and UDP sockets from the kernel's
 * socket hash tables, or its Unix-domain sockets (`--unix`).
 *
 * @module
 */
import { type ConnectOptions, withGuest } from "./session.ts";
import { printView, type ViewCommandOptions } from "./view_command.ts";
import { namespacedSocketView, socketView } from "../os/socket_view.ts";
import { unixSocketView } from "../os/unix_sockets.ts";

/** Options of `ids sockets`. */
export interface SocketsOptions extends ConnectOptions, ViewCommandOptions {
  /** Every network namespace that shares the tables, each socket with its `netns`. */
  allNamespaces?: boolean;
  /** The Unix-domain sockets instead (ids/os/unix_sockets.ts). */
  unix?: boolean;
}

/** Runs `ids sockets`; returns the exit code. A kernel whose tables are unknown prints a note on stderr. */
export function sockets(options: SocketsOptions): Promise<number> {
  return withGuest(options, (guest, _local, progress) => {
    if (options.unix) return printView(guest, progress, unixSocketView, options);
    if (options.allNamespaces) return printView(guest, progress, namespacedSocketView, options);
    return printView(guest, progress, socketView, options);
  });
}
