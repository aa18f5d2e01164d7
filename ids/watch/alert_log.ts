/**
 * Where `ids watch` writes what it reports: one JSON object per line, to
 * stdout or appended to a file. A file is opened in append mode (an IDS
 * restart adds to it, never truncates it) and each line is written whole and
 * synced to disk before the next, so a line that was reported survives a
 * crash. A line:
 *
 * ```json
 * {"time":"2026-11-28T07:00:00.000Z","vm":"web1","detector":"policy","severity":"medium",
 *  "summary":"process nc (pid 4242) is not allowed by the policy","evidence":{"pid":4242},
 *  "event":"alert"}
 * ```
 *
 * (one line in the file). `event` is `alert` when the alert appears and
 * `resolved` when a later check no longer finds it (see tracker.ts).
 *
 * @module
 */
import { terminalSafeJson } from "../printable.ts";
import { formatAddress } from "../memory/address.ts";
import type { WatchEvent } from "./tracker.ts";

/** The keys of a line, in order. */
export const LINE_KEYS = [
  "time",
  "vm",
  "detector",
  "severity",
  "summary",
  "evidence",
  "event",
] as const;

/** One event as a JSON line (ending in `\n`). */
export function eventLine(event: WatchEvent, time: Date): string {
  const { detector, severity, summary, evidence } = event.alert;
  const line = {
    time: time.toISOString(),
    vm: event.vm,
    detector,
    severity,
    summary,
    evidence,
    event: event.event,
  };
  const json = JSON.stringify(
    line,
    (_, value) => typeof value === "bigint" ? formatAddress(value) : value,
  );
  return `${terminalSafeJson(json)}\n`;
}

/** The JSON lines output. */
export class AlertLog {
  readonly #file: Deno.FsFile | undefined;
  readonly #path: string;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(file: Deno.FsFile | undefined, path: string) {
    this.#file = file;
    this.#path = path;
  }

  /** Opens `path` for appending (created if missing, mode 0640), or stdout when undefined. */
  static async open(path?: string): Promise<AlertLog> {
    if (path === undefined) return new AlertLog(undefined, "stdout");
    try {
      const file = await Deno.open(path, { append: true, create: true, mode: 0o640 });
      return new AlertLog(file, path);
    } catch (error) {
      throw new Error(`Cannot open ${path} for appending: ${(error as Error).message}`);
    }
  }

  /** Writes `events` (stamped `time`), one line each; resolves once they are on disk. */
  write(events: readonly WatchEvent[], time: Date = new Date()): Promise<void> {
    if (events.length === 0) return this.#queue;
    if (this.#closed) return Promise.reject(new Error(`Alert output ${this.#path} is closed`));
    const bytes = new TextEncoder().encode(events.map((e) => eventLine(e, time)).join(""));
    const next = this.#queue.then(() => this.#writeNow(bytes));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #writeNow(bytes: Uint8Array): Promise<void> {
    const sink = this.#file ?? Deno.stdout;
    try {
      for (let done = 0; done < bytes.length;) done += await sink.write(bytes.subarray(done));
      await this.#file?.syncData();
    } catch (error) {
      throw new Error(`Cannot write alerts to ${this.#path}: ${(error as Error).message}`);
    }
  }

  /** Waits for pending lines, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    this.#file?.close();
  }
}
