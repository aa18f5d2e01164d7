/**
 * `ebpfmonitor ids sockets`: the guest's TCP and UDP sockets from the kernel's
 * socket hash tables.
 *
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import type { FetchMode } from "../guest.ts";
import { socketJson, socketTable, table } from "./format.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { namespacedSocketView, socketView } from "../os/socket_view.ts";
import { type UnixSocketInfo, unixSocketView } from "../os/unix_sockets.ts";
import { socketLayoutNote } from "../os/sockets_layout.ts";

/** Options of `ids sockets`. */
export interface SocketsOptions extends ConnectOptions {
  /** Fetch mode. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
  /** Every network namespace that shares the tables, each socket with its `netns`. */
  allNamespaces?: boolean;
  /** The Unix-domain sockets instead (ids/os/unix_sockets.ts). */
  unix?: boolean;
}

/** Runs `ids sockets`; returns the exit code. A kernel whose tables are unknown prints a note on stderr. */
export function sockets(options: SocketsOptions): Promise<number> {
  return withGuest(options, async (guest, _local, progress) => {
    if (options.unix) {
      progress.step(`walking the Unix-domain socket table (${options.fetch} mode)`);
      const { items } = await guest.acquire(unixSocketView, options.fetch);
      progress.done();
      console.log(
        options.json ? terminalSafeJson(JSON.stringify(items, null, 2)) : unixTable(items),
      );
      return 0;
    }
    progress.step(`walking the socket tables (${options.fetch} mode)`);
    const { items } = options.allNamespaces
      ? await guest.acquire(namespacedSocketView, options.fetch)
      : await guest.acquire(socketView, options.fetch);
    progress.done();
    const note = socketLayoutNote(guest.profile);
    if (note !== undefined) console.error(`note: ${note}`);
    console.log(
      options.json
        ? terminalSafeJson(JSON.stringify(items.map(socketJson), null, 2))
        : socketTable(items),
    );
    return 0;
  });
}

/** The Unix-domain socket table for people, in /proc/net/unix's column order. */
function unixTable(items: UnixSocketInfo[]): string {
  return table(
    ["TYPE", "STATE", "INODE", "PEER", "PATH"],
    items.map((s) => [s.type, s.state, String(s.inode), String(s.peer_inode), s.path]),
    new Set([2, 3]),
  );
}
