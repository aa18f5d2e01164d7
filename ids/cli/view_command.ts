/**
 * Prints any view: the one way `ids ps`, `ids lsmod` and `ids sockets` (and
 * a new view's command) acquire a view and print it as the view declares
 * (its {@linkcode ViewOutput}): a table for people, or JSON.
 *
 * @example
 * ```ts
 * // A new view's command is one line:
 * withGuest(options, (guest, _local, progress) => printView(guest, progress, unixSocketView, options));
 * ```
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import type { FetchMode, Guest } from "../guest.ts";
import type { View, ViewOutput } from "../os/view.ts";
import { table } from "./format.ts";
import type { Progress } from "./progress.ts";

/** What every view command takes. */
export interface ViewCommandOptions {
  /** Fetch mode. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
}

/** The table of `items` for people, with the columns `output` declares. */
export function viewTable<T>(output: ViewOutput<T>, items: readonly T[]): string {
  const columns = output.columns.filter((c) => c.shown?.(items) ?? true);
  const right = new Set(columns.flatMap((c, i) => c.right ? [i] : []));
  return table(
    columns.map((c) => c.header),
    items.map((item) => columns.map((c) => c.cell(item))),
    right,
  );
}

/** The JSON text of `items` for programs, each as `output` declares it. */
export function viewJson<T>(output: ViewOutput<T>, items: readonly T[]): string {
  return terminalSafeJson(JSON.stringify(items.map((item) => output.json(item)), null, 2));
}

/**
 * Acquires `view` in `options.fetch` mode and prints it on stdout (after a
 * `note: …` on stderr when the kernel lacks the structure); `arrange` orders
 * or cuts the items first. Returns the exit code, 0.
 */
export async function printView<T>(
  guest: Guest,
  progress: Progress,
  view: View<T>,
  options: ViewCommandOptions,
  arrange: (items: T[]) => T[] = (items) => items,
): Promise<number> {
  const output = view.output;
  progress.step(`walking ${output.walking} (${options.fetch} mode)`);
  const { items } = await guest.acquire(view, options.fetch);
  progress.done();
  const note = output.note?.(guest.profile);
  if (note !== undefined) console.error(`note: ${note}`);
  const listed = arrange(items);
  console.log(options.json ? viewJson(output, listed) : viewTable(output, listed));
  return 0;
}
