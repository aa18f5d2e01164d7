/**
 * Retrying a connection with exponential backoff: an agent that restarts, or a
 * guest still booting, is reached once it listens again. Only failures to
 * reach the agent are retried; a refused handshake is final.
 *
 * @module
 */
import { TransportError } from "../../wire/mod.ts";

/** How often and how patiently to retry. */
export interface BackoffOptions {
  /** Tries in all (1: no retry). */
  attempts: number;
  /** Wait before the second try, in ms; doubled for each further try. */
  firstDelayMs: number;
  /** Longest wait between tries, in ms. */
  maxDelayMs: number;
}

/** Five tries over about three seconds. */
export const DEFAULT_BACKOFF: BackoffOptions = { attempts: 5, firstDelayMs: 200, maxDelayMs: 2000 };

/** Whether `error` means the agent could not be reached (worth another try). */
export function isUnreachable(error: unknown): boolean {
  return error instanceof TransportError && error.code === "connect_failed";
}

/** Calls `connect` until it succeeds, fails for another reason, or the tries run out. */
export async function withBackoff<T>(
  connect: () => Promise<T>,
  options: BackoffOptions = DEFAULT_BACKOFF,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<T> {
  let delay = options.firstDelayMs;
  for (let attempt = 1;; attempt++) {
    try {
      return await connect();
    } catch (error) {
      if (attempt >= options.attempts || !isUnreachable(error)) throw error;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, options.maxDelayMs);
  }
}
