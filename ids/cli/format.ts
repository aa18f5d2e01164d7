/**
 * Output for people (aligned tables) and for programs (JSON with addresses as
 * hex strings).
 *
 * @module
 */
import { printable } from "../printable.ts";
import { formatAddress } from "../memory/address.ts";
import type { ModuleInfo } from "../os/modules.ts";
import type { ProcessInfo } from "../os/tasks.ts";
import type { NamespacedSocketInfo, SocketInfo } from "../os/sockets.ts";

/** A kernel address as 0x-prefixed hex. */
export function hex(addr: bigint): string {
  return formatAddress(addr);
}

/** Renders rows as a table with a header; `right` names the right-aligned columns. */
export function table(
  header: string[],
  rows: string[][],
  right: ReadonlySet<number> = new Set(),
): string {
  // Cells hold guest-supplied text (process and module names): never terminal escapes.
  rows = rows.map((row) => row.map(printable));
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    cells.map((cell, i) => right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))
      .join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** The JSON object of a process (`ids ps --json`). */
export function processJson(p: ProcessInfo): Record<string, unknown> {
  return {
    pid: p.pid,
    tgid: p.tgid,
    ppid: p.ppid,
    comm: p.comm,
    uid: p.uid,
    euid: p.euid,
    gid: p.gid,
    state: p.state,
    kthread: p.kthread,
    addr: hex(p.addr),
  };
}

/** The JSON object of a module (`ids lsmod --json`). */
export function moduleJson(m: ModuleInfo): Record<string, unknown> {
  return { name: m.name, base: hex(m.base), size: m.size, state: m.state };
}

/** The process table for people. */
export function processTable(processes: ProcessInfo[]): string {
  return table(
    ["PID", "PPID", "UID", "EUID", "GID", "S", "KTHREAD", "COMM", "TASK"],
    processes.map((p) => [
      String(p.pid),
      String(p.ppid),
      String(p.uid),
      String(p.euid),
      String(p.gid),
      p.state,
      p.kthread ? "yes" : "",
      p.comm,
      hex(p.addr),
    ]),
    new Set([0, 1, 2, 3, 4]),
  );
}

/** The module table for people. */
export function moduleTable(modules: ModuleInfo[]): string {
  return table(
    ["NAME", "SIZE", "STATE", "BASE"],
    modules.map((m) => [m.name, String(m.size), m.state, hex(m.base)]),
    new Set([1]),
  );
}

/**
 * The JSON object of a socket (`ids sockets --json`): exactly the keys of
 * {@linkcode SocketInfo}, and `netns` with `--all-namespaces`.
 */
export function socketJson(s: SocketInfo | NamespacedSocketInfo): Record<string, unknown> {
  return {
    proto: s.proto,
    family: s.family,
    local_addr: s.local_addr,
    local_port: s.local_port,
    remote_addr: s.remote_addr,
    remote_port: s.remote_port,
    state: s.state,
    uid: s.uid,
    inode: s.inode,
    ...("netns" in s ? { netns: s.netns } : {}),
  };
}

/** An address and port as `1.2.3.4:80` or `[::1]:80`. */
function endpoint(family: SocketInfo["family"], addr: string, port: number): string {
  return family === "inet6" ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** The socket table for people. */
export function socketTable(sockets: (SocketInfo | NamespacedSocketInfo)[]): string {
  const netns = sockets.some((s) => "netns" in s);
  return table(
    ["PROTO", "LOCAL", "REMOTE", "STATE", "UID", "INODE", ...(netns ? ["NETNS"] : [])],
    sockets.map((s) => [
      s.family === "inet6" ? `${s.proto}6` : s.proto,
      endpoint(s.family, s.local_addr, s.local_port),
      endpoint(s.family, s.remote_addr, s.remote_port),
      s.state,
      String(s.uid),
      String(s.inode),
      ...("netns" in s ? [String(s.netns)] : []),
    ]),
    new Set([4, 5, 6]),
  );
}
