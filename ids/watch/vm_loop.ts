/**
 * One VM's schedule: connect, check, wait for the next tick, check again, on
 * its own, so that a slow or lost agent never delays another VM's checks.
 *
 * - Checks start on a grid of the interval from the first one. A check that
 *   overruns its interval is not stacked: the ticks it missed are skipped and
 *   the next check starts at the next tick.
 * - Connecting (the profile: BTF, kallsyms, program loads) and each check have
 *   a deadline (`timeoutMs`); past it the connection is dropped and the check
 *   has failed.
 * - The deadline is enforced inside the check too (ids/client/budget.ts): an
 *   agent's answer is processed in slices that yield to the event loop, and
 *   the work stops at the deadline instead of running on in the background.
 *   Other VMs' checks, the metrics endpoint and the signals keep running
 *   meanwhile. An answer past the byte or record budget, or a size the kernel
 *   cannot have, is the `hostile_agent` alert, and the connection is dropped.
 * - A failed check (agent unreachable, connection lost, deadline passed, check
 *   error) drops the connection; the next try connects again after a backoff:
 *   the interval, doubled after each further failure, at most 8 intervals (and
 *   at most a minute, unless the interval is longer).
 *
 * @module
 */
import type { CheckReport } from "../detect/alert.ts";
import { HOSTILE_AGENT, HostileAnswer } from "../client/budget.ts";
import { hostileAgentReport } from "../check/hostile_agent.ts";
import { DEFAULT_GUEST_LIMITS, type GuestLimits } from "../limits.ts";
import { runChecks } from "../check/check.ts";
import type { DetectorConfig } from "../detect/detector.ts";
import type { ClientSecurity } from "../client/channel.ts";
import type { TrafficStats } from "../client/agent_client.ts";
import { type FetchMode, Guest } from "../guest.ts";

/** One VM to watch, everything loaded. */
export interface WatchTarget {
  /** Its name in alerts and metrics. */
  name: string;
  /** The agent's URL. */
  url: string;
  /** Keys. */
  security: ClientSecurity;
  /** Policy and baseline. */
  config: DetectorConfig;
  /** Interval between checks, ms. */
  intervalMs: number;
  /** Deadline of connecting, and of one check, ms. */
  timeoutMs: number;
  /** Fetch mode. */
  mode: FetchMode;
  /** Budgets and ceilings (the deadline is `timeoutMs`); default DEFAULT_GUEST_LIMITS. */
  limits?: GuestLimits;
}

/** What one scheduled check came to. */
export type CheckOutcome =
  & {
    /** Wall time, connecting included, ms. */
    durationMs: number;
    /** Requests sent during it. */
    roundTrips: number;
    /** Bytes sent and received during it. */
    bytes: number;
  }
  & ({ ok: true; report: CheckReport } | { ok: false; error: unknown });

/** The longest backoff, unless the interval is longer. */
const MAX_RETRY_MS = 60_000;

/** The wait before the next try after `failures` (≥ 1) failed checks in a row. */
export function retryDelay(intervalMs: number, failures: number): number {
  const cap = Math.max(intervalMs, Math.min(8 * intervalMs, MAX_RETRY_MS));
  return Math.min(intervalMs * 2 ** Math.min(failures - 1, 30), cap);
}

/** The wait from the end of a check that took `elapsedMs` to the next tick of the grid. */
export function untilNextTick(intervalMs: number, elapsedMs: number): number {
  return intervalMs - (elapsedMs % intervalMs);
}

/** Thrown when the watch stops during a check. */
class Stopped extends Error {}

/** Resolves with `work`, or rejects past `ms` or when `signal` aborts. */
async function deadline<T>(
  work: Promise<T>,
  ms: number,
  what: string,
  signal: AbortSignal,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    onAbort = () => reject(new Stopped("Stopped"));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, limit]);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort!);
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

const NO_RETRY = { attempts: 1, firstDelayMs: 0, maxDelayMs: 0 };

/**
 * Watches `target` until `signal` aborts, calling `onOutcome` after each
 * check (awaited before the next is scheduled). A check cut short by the
 * abort is not reported. Closes its connection before it resolves.
 */
export async function watchVm(
  target: WatchTarget,
  onOutcome: (outcome: CheckOutcome) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  let guest: Guest | undefined;
  let counted: TrafficStats = { roundTrips: 0, bytesSent: 0, bytesReceived: 0 };
  const drop = () => {
    guest?.close();
    guest = undefined;
  };
  const traffic = () => {
    if (guest === undefined) return { roundTrips: 0, bytes: 0 };
    const now = guest.client.stats;
    const spent = {
      roundTrips: now.roundTrips - counted.roundTrips,
      bytes: now.bytesSent - counted.bytesSent + now.bytesReceived - counted.bytesReceived,
    };
    counted = now;
    return spent;
  };
  let failures = 0;
  const limits = { ...(target.limits ?? DEFAULT_GUEST_LIMITS), deadlineMs: target.timeoutMs };
  try {
    while (!signal.aborted) {
      const started = performance.now();
      let outcome: CheckOutcome;
      let opening: Promise<Guest> | undefined;
      try {
        if (guest === undefined) {
          opening = Guest.open(target.url, target.security, { backoff: NO_RETRY, limits, signal });
          guest = await deadline(opening, target.timeoutMs, "Connecting to the agent", signal);
          counted = { roundTrips: 0, bytesSent: 0, bytesReceived: 0 };
        }
        guest.startBudget(target.timeoutMs, signal);
        const report = await deadline(
          runChecks(guest, target.config, { mode: target.mode }),
          target.timeoutMs,
          "The check",
          signal,
        );
        outcome = { ok: true, report, durationMs: performance.now() - started, ...traffic() };
        // After a lie, nothing of this connection is trusted: the next check connects anew.
        if (report.alerts.some((a) => a.detector === HOSTILE_AGENT)) drop();
      } catch (error) {
        // A connection that opens after its deadline (or the stop) is closed when it does.
        if (guest === undefined) opening?.then((late) => late.close(), () => {});
        if (error instanceof Stopped || signal.aborted) break;
        const durationMs = performance.now() - started;
        outcome = error instanceof HostileAnswer
          ? {
            ok: true,
            report: hostileAgentReport(error, durationMs),
            durationMs,
            ...traffic(),
          }
          : { ok: false, error, durationMs, ...traffic() };
        drop();
      }
      await onOutcome(outcome);
      failures = outcome.ok ? 0 : failures + 1;
      const elapsed = performance.now() - started;
      await sleep(
        outcome.ok
          ? untilNextTick(target.intervalMs, elapsed)
          : retryDelay(target.intervalMs, failures),
        signal,
      );
    }
  } finally {
    drop();
  }
}
