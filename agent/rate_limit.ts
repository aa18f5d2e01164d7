/**
 * A token bucket: at most `burst` requests at once, refilled at `perSecond`.
 * A peer that asks faster is slowed down, not served faster than the rate.
 *
 * @module
 */

/** Limits the rate of requests on one connection. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  /** @param perSecond refill rate @param burst bucket size @param now clock in ms */
  constructor(
    readonly perSecond: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#last = now();
  }

  /** How long to wait (ms) before the next request may run; takes its token. */
  take(): number {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#last) * this.perSecond / 1000);
    this.#last = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : -this.#tokens * 1000 / this.perSecond;
  }
}
