/**
 * What one command or one check may cost the IDS, whatever the agent answers:
 * an overall deadline, and for each acquisition (one view's snapshot) a cap on
 * the bytes and the records the agent streams. Whoever is root in the guest
 * holds the agent's key and can answer anything; a byte or record budget that
 * runs out is evidence of that, reported as a {@linkcode HostileAnswer} (the
 * `hostile_agent` alert), a deadline that passes as {@linkcode DeadlinePassed};
 * never a hang or an IDS out of memory.
 *
 * Work that runs on data already received (decoding records, walking cached
 * memory) calls {@linkcode Budget.pace} as it goes: that checks the deadline
 * and, every few milliseconds of work, yields to the event loop, so that
 * timers, signals, the metrics endpoint and other guests' checks keep running
 * while one guest's answer is processed.
 *
 * @module
 */

/** The alert kind of an answer no honest agent gives. */
export const HOSTILE_AGENT = "hostile_agent";

/**
 * The agent answered what the guest's kernel cannot hold, or more than the
 * budget allows: `limit` names the bound (as in {@linkcode AcquisitionLimits}
 * or the kernel bound) that was crossed.
 */
export class HostileAnswer extends Error {
  /** The bound that was crossed, e.g. `max_records`, `deadline`, `hash_mask`. */
  readonly limit: string;
  /** @param limit the bound's name @param detail what crossed it */
  constructor(limit: string, detail: string) {
    super(`Hostile agent answer (${HOSTILE_AGENT}): ${detail} (limit ${limit})`);
    this.name = "HostileAnswer";
    this.limit = limit;
  }
}

/**
 * A command or check ran past its deadline. Not evidence of a lie by itself
 * (an agent may be slow, or gone), so it is an error, not a
 * {@linkcode HostileAnswer}: `ids watch` reports it as a failed check.
 */
export class DeadlinePassed extends Error {
  /** @param ms the deadline */
  constructor(ms: number) {
    super(`The deadline of ${ms} ms passed before the agent's answers were done (limit deadline)`);
    this.name = "DeadlinePassed";
  }
}

/** The bounds of a {@linkcode Budget}. */
export interface AcquisitionLimits {
  /** Wall time of the whole command or check, ms. */
  deadlineMs: number;
  /** Bytes the agent may stream for one acquisition. */
  maxBytes: number;
  /** Records the agent's programs may send for one acquisition. */
  maxRecords: number;
}

/** How long work runs between two yields to the event loop, ms. */
const SLICE_MS = 10;
/** Paced steps between two looks at the clock. */
const STEPS_PER_LOOK = 256;

/** A deadline and per-acquisition byte and record counters. */
export class Budget {
  /** The bounds. */
  readonly limits: AcquisitionLimits;
  readonly #deadlineAt: number;
  readonly #signal: AbortSignal | undefined;
  #bytes = 0;
  #records = 0;
  #steps = 0;
  #sliceStart = performance.now();

  /**
   * @param limits the bounds
   * @param signal aborting it ends the work at its next paced step
   * @param startedAt when the deadline started counting (`performance.now()`; default now)
   */
  constructor(limits: AcquisitionLimits, signal?: AbortSignal, startedAt = performance.now()) {
    this.limits = limits;
    this.#deadlineAt = startedAt + limits.deadlineMs;
    this.#signal = signal;
  }

  /** Milliseconds left before the deadline (0 when past). */
  get remainingMs(): number {
    return Math.max(0, this.#deadlineAt - performance.now());
  }

  /** Bytes counted in this acquisition. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Records counted in this acquisition. */
  get records(): number {
    return this.#records;
  }

  /** Starts a new acquisition: the byte and record counters restart (the deadline does not). */
  startAcquisition(): void {
    this.#bytes = 0;
    this.#records = 0;
  }

  /** Throws when the deadline has passed or the work was stopped. */
  check(): void {
    if (this.#signal?.aborted) throw new Error("Stopped");
    if (performance.now() > this.#deadlineAt) throw new DeadlinePassed(this.limits.deadlineMs);
  }

  /** Counts `n` bytes streamed by the agent. */
  spendBytes(n: number): void {
    this.#bytes += n;
    if (this.#bytes > this.limits.maxBytes) {
      throw new HostileAnswer(
        "max_bytes",
        `the agent streamed more than ${this.limits.maxBytes} bytes for one view`,
      );
    }
  }

  /** Counts `n` records sent by the agent's programs. */
  spendRecords(n: number): void {
    this.#records += n;
    if (this.#records > this.limits.maxRecords) {
      throw new HostileAnswer(
        "max_records",
        `the agent sent more than ${this.limits.maxRecords} records for one view`,
      );
    }
  }

  /**
   * One step of work on received data: checks the deadline now and then, and
   * yields to the event loop once the current slice has run {@linkcode SLICE_MS}.
   */
  pace(): Promise<void> | undefined {
    if (++this.#steps % STEPS_PER_LOOK !== 0) return undefined;
    this.check();
    if (performance.now() - this.#sliceStart < SLICE_MS) return undefined;
    return this.#yield();
  }

  async #yield(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#sliceStart = performance.now();
    this.check();
  }
}

/** The longest deadline a timer can wait for (about 24.8 days): in effect, none. */
export const NO_DEADLINE_MS = 2 ** 31 - 1;

/** A budget with no bound that matters (tests and tools that read a trusted source). */
export function unlimitedBudget(): Budget {
  return new Budget({
    deadlineMs: NO_DEADLINE_MS,
    maxBytes: Number.MAX_SAFE_INTEGER,
    maxRecords: Number.MAX_SAFE_INTEGER,
  });
}
