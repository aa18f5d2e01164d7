/**
 * Retrying a connection with exponential backoff: an agent that restarts, or a
 * guest still booting, is reached once it listens again. Only failures to
 * reach the agent are retried; a refused handshake is final, and so are the
 * failures no wait mends for a one-shot command: a refused connection (unless
 * `retryRefused`), a host name that does not resolve, no vsock device.
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
  /**
   * Retry a refused connection too (an agent that is restarting, a guest
   * that boots); a one-shot command fails at once instead.
   */
  retryRefused?: boolean;
}

/** Five tries over about three seconds; a refused connection fails at once. */
export const DEFAULT_BACKOFF: BackoffOptions = { attempts: 5, firstDelayMs: 200, maxDelayMs: 2000 };

/** Whether `error` means the agent could not be reached (worth another try). */
export function isUnreachable(error: unknown): boolean {
  return error instanceof TransportError && error.code === "connect_failed";
}

/**
 * Why dialing failed, from the system's error: `refused` (nothing listens),
 * `unknown_host` (the name does not resolve), `no_device` (no vsock device on
 * this machine), else `other` (unreachable, timed out, reset...).
 */
export function connectFailure(error: unknown): "refused" | "unknown_host" | "no_device" | "other" {
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (cause instanceof Deno.errors.ConnectionRefused) return "refused";
  const message = cause instanceof Error ? cause.message : "";
  if (/failed to lookup address information/i.test(message)) return "unknown_host";
  if (/\(os error 19\)|No such device/.test(message)) return "no_device";
  return "other";
}

/** Whether another try could reach the agent: unreachable, and not for a reason that lasts. */
function worthRetrying(error: unknown, options: BackoffOptions): boolean {
  if (!isUnreachable(error)) return false;
  const why = connectFailure(error);
  return why === "other" || (why === "refused" && options.retryRefused === true);
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
      if (attempt >= options.attempts || !worthRetrying(error, options)) throw error;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, options.maxDelayMs);
  }
}
