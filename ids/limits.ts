/**
 * The bounds the IDS puts on what one guest's agent may make it do: the
 * deadline of a command or check, the bytes and records of one acquisition,
 * and ceilings on the counts and sizes the guest reports (its task list, its
 * socket hash tables, its kallsyms and BTF). Each is named as the error that
 * reports it names it (`limit max_records`), and can be set with
 * `--limits name=value,...` or a watch config's `limits`. Why each default is
 * what it is: docs/security.md ("Budgets").
 *
 * @module
 */
import type { AcquisitionLimits } from "./client/budget.ts";
import { parseDuration } from "./duration.ts";

/** Every bound on one guest. */
export interface GuestLimits extends AcquisitionLimits {
  /** Most tasks on the task list (the kernel's PID_MAX_LIMIT is 4,194,304). */
  maxTasks: number;
  /** Most buckets of one socket hash table (a power of two). */
  maxHashBuckets: number;
  /** Largest /proc/kallsyms text, bytes. */
  maxKallsymsBytes: number;
  /** Most /proc/kallsyms lines. */
  maxKallsymsLines: number;
  /** Largest BTF (/sys/kernel/btf/vmlinux), bytes. */
  maxBtfBytes: number;
}

/** The defaults (see docs/security.md for the measurements behind them). */
export const DEFAULT_GUEST_LIMITS: Readonly<GuestLimits> = {
  deadlineMs: 120_000,
  maxBytes: 512 << 20,
  maxRecords: 500_000,
  maxTasks: 50_000,
  maxHashBuckets: 1 << 22,
  maxKallsymsBytes: 64 << 20,
  maxKallsymsLines: 1_000_000,
  maxBtfBytes: 64 << 20,
};

/** The names of the limits as an operator writes them. */
const NAMES: Record<string, keyof GuestLimits> = {
  deadline: "deadlineMs",
  max_bytes: "maxBytes",
  max_records: "maxRecords",
  max_tasks: "maxTasks",
  max_hash_buckets: "maxHashBuckets",
  max_kallsyms_bytes: "maxKallsymsBytes",
  max_kallsyms_lines: "maxKallsymsLines",
  max_btf_bytes: "maxBtfBytes",
};

/**
 * Parses `name=value,...` over `base`: `deadline` is a duration (`30s`), the
 * others positive integers, e.g. `deadline=30s,max_tasks=200000`.
 */
export function parseLimits(
  text: string,
  base: Readonly<GuestLimits> = DEFAULT_GUEST_LIMITS,
): GuestLimits {
  const limits = { ...base };
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const [name = "", value = "", ...rest] = part.split("=");
    const key = NAMES[name.trim()];
    if (key === undefined || rest.length > 0) {
      throw new Error(
        `Unknown limit "${part}": use name=value with ${Object.keys(NAMES).join(", ")}`,
      );
    }
    if (key === "deadlineMs") {
      limits.deadlineMs = parseDuration(value);
      continue;
    }
    const n = /^\d+$/.test(value.trim()) ? Number(value.trim()) : NaN;
    if (!Number.isSafeInteger(n) || n <= 0) {
      throw new Error(`Invalid limit ${name.trim()}="${value}": expected a positive integer`);
    }
    limits[key] = n;
  }
  return limits;
}
