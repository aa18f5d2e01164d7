/**
 * Summary statistics of benchmark samples.
 *
 * @module
 */

/** The value at quantile `q` (0..1) of `samples`, nearest-rank. */
export function quantile(samples: number[], q: number): number {
  if (samples.length === 0) throw new Error("No samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median of `samples` (the mean of the two middle values for an even count). */
export function median(samples: number[]): number {
  if (samples.length === 0) throw new Error("No samples");
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
