/**
 * `ebpfmonitor ids sockets`: the guest's TCP and UDP sockets from the kernel's
 * socket hash tables.
 *
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import type { FetchMode } from "../guest.ts";
import { socketJson, socketTable } from "./format.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { namespacedSocketView, socketView } from "../os/socket_view.ts";

/** Options of `ids sockets`. */
export interface SocketsOptions extends ConnectOptions {
  /** Fetch mode. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
  /** Every network namespace that shares the tables, each socket with its `netns`. */
  allNamespaces?: boolean;
}

/** Runs `ids sockets`; returns the exit code. A kernel whose tables are unknown prints a note on stderr. */
export function sockets(options: SocketsOptions): Promise<number> {
  return withGuest(options, async (guest, _local, progress) => {
    progress.step(`walking the socket tables (${options.fetch} mode)`);
    const { items } = options.allNamespaces
      ? await guest.acquire(namespacedSocketView, options.fetch)
      : await guest.acquire(socketView, options.fetch);
    progress.done();
    const note = guest.profile.socketsNote;
    if (note !== undefined) console.error(`note: ${note}`);
    console.log(
      options.json
        ? terminalSafeJson(JSON.stringify(items.map(socketJson), null, 2))
        : socketTable(items),
    );
    return 0;
  });
}
