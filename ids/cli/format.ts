/**
 * Output for people: aligned tables of printable text. What a view prints
 * (its columns and JSON) is declared by the view (`ViewOutput`, ids/os/view.ts)
 * and printed by ids/cli/view_command.ts.
 *
 * @module
 */
import { printable } from "../printable.ts";
import { formatAddress } from "../memory/address.ts";

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
