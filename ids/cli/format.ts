/**
 * Output for people (aligned tables) and for programs (JSON with addresses as
 * hex strings).
 *
 * @module
 */
import type { ModuleInfo } from "../os/modules.ts";
import type { ProcessInfo } from "../os/tasks.ts";

/** A kernel address as 0x-prefixed hex. */
export function hex(addr: bigint): string {
  return `0x${addr.toString(16)}`;
}

/** Renders rows as a table with a header; `right` names the right-aligned columns. */
export function table(
  header: string[],
  rows: string[][],
  right: ReadonlySet<number> = new Set(),
): string {
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
