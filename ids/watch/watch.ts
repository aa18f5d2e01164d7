/**
 * Watches many VMs at once: one schedule per VM (vm_loop.ts), one alert
 * tracker deciding what to report (tracker.ts), one output (alert_log.ts) and
 * the metrics (metrics.ts), until the signal aborts.
 *
 * @example
 * ```ts
 * const log = await AlertLog.open("/var/log/ebpfmonitor/alerts.jsonl");
 * const metrics = new WatchMetrics(targets.map((t) => t.name));
 * await runWatch(targets, { log, metrics, signal: controller.signal });
 * await log.close();
 * ```
 * @module
 */
import type { AlertLog } from "./alert_log.ts";
import type { WatchMetrics } from "./metrics.ts";
import { AlertTracker } from "./tracker.ts";
import { type CheckOutcome, type WatchTarget, watchVm } from "./vm_loop.ts";

/** Where a watch reports. */
export interface WatchOutputs {
  /** The JSON lines. */
  log: AlertLog;
  /** The metrics. */
  metrics: WatchMetrics;
  /** Stops the watch. */
  signal: AbortSignal;
}

/**
 * Watches `targets` until `signal` aborts; resolves when every VM's schedule
 * has stopped and closed its connection. Rejects (after stopping the others)
 * when the output cannot be written.
 */
export async function runWatch(
  targets: readonly WatchTarget[],
  { log, metrics, signal }: WatchOutputs,
): Promise<void> {
  const names = new Set<string>();
  for (const target of targets) {
    if (names.has(target.name)) throw new Error(`Two VMs are named ${target.name}`);
    names.add(target.name);
  }
  const tracker = new AlertTracker();
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  if (signal.aborted) stop.abort();

  const report = async (vm: string, outcome: CheckOutcome) => {
    const now = new Date();
    const events = outcome.ok
      ? tracker.checked(vm, outcome.report.alerts, now)
      : tracker.failed(vm, outcome.error, now);
    metrics.recordCheck(vm, outcome);
    metrics.recordEvents(events);
    metrics.setActive(vm, tracker.active(vm));
    await log.write(events, now);
  };
  try {
    const loops = targets.map((target) =>
      watchVm(target, (outcome) => report(target.name, outcome), stop.signal).catch((error) => {
        stop.abort();
        throw error;
      })
    );
    const results = await Promise.allSettled(loops);
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
