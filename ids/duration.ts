/**
 * Durations as an operator writes them: `500ms`, `5s`, `1m`, `1h` (a number,
 * possibly with a fraction, and a unit). A bare number is refused: it would
 * be ambiguous.
 *
 * @example
 * ```ts
 * parseDuration("500ms"); // 500
 * parseDuration("1.5s"); // 1500
 * formatDuration(60_000); // "1m"
 * ```
 * @module
 */

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a positive duration; returns milliseconds (whole). */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim());
  if (match === null) {
    throw new Error(`Invalid duration "${text}": use a number and a unit, e.g. 500ms, 5s or 1m`);
  }
  const ms = Math.round(Number(match[1]) * UNITS[match[2]!]!);
  if (ms <= 0) throw new Error(`Invalid duration "${text}": it must be at least 1ms`);
  if (!Number.isSafeInteger(ms) || ms > 2 ** 31 - 1) {
    throw new Error(`Invalid duration "${text}": it must be shorter than 24 days`);
  }
  return ms;
}

/** Formats milliseconds in the largest unit that divides them (`1m`, `5s`, `500ms`). */
export function formatDuration(ms: number): string {
  for (const unit of ["h", "m", "s"]) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
