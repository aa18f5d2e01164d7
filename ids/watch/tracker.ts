/**
 * What `ids watch` reports, decided from one VM's check results: an alert
 * when it first appears, a `resolved` event when a later check no longer
 * finds it, never the same alert every interval. Two alerts are the same when
 * their VM, detector and summary are equal (the evidence may change, e.g. a
 * process's state). Losing the agent is an alert of its own,
 * `agent_unreachable` (high), once per outage; the first check that succeeds
 * after it reports `agent_reachable` (low). During an outage the VM's other
 * alerts stay as they were: what the next successful check still finds is
 * not reported again, what it no longer finds is resolved then.
 *
 * The state lives in memory: after an IDS restart, alerts present are
 * reported once again.
 *
 * @module
 */
import type { Alert, Severity } from "../detect/alert.ts";

/** The detector name of a lost agent. */
export const AGENT_UNREACHABLE = "agent_unreachable";
/** The detector name of an agent reached again after an outage. */
export const AGENT_REACHABLE = "agent_reachable";

/** One thing to report: an alert that appeared, or one that went away. */
export interface WatchEvent {
  /** `alert`: appeared (or an agent event); `resolved`: a check no longer finds it. */
  event: "alert" | "resolved";
  /** The VM's name. */
  vm: string;
  /** The alert (for `resolved`: as last seen). */
  alert: Alert;
}

interface Outage {
  since: Date;
  failures: number;
}

/** The alerts active per VM, and which VMs' agents are lost. */
export class AlertTracker {
  readonly #active = new Map<string, Map<string, Alert>>();
  readonly #outages = new Map<string, Outage>();

  /** Records a successful check of `vm` that found `alerts`; returns what to report. */
  checked(vm: string, alerts: readonly Alert[], now: Date = new Date()): WatchEvent[] {
    const events: WatchEvent[] = [];
    const outage = this.#outages.get(vm);
    if (outage !== undefined) {
      this.#outages.delete(vm);
      events.push({
        event: "alert",
        vm,
        alert: {
          detector: AGENT_REACHABLE,
          severity: "low",
          summary: "the agent is reachable again",
          evidence: {
            down_since: outage.since.toISOString(),
            down_seconds: Math.round((now.getTime() - outage.since.getTime()) / 100) / 10,
            failed_checks: outage.failures,
          },
        },
      });
    }
    const before = this.#active.get(vm) ?? new Map<string, Alert>();
    const after = new Map<string, Alert>();
    for (const alert of alerts) {
      const key = alertKey(alert);
      if (after.has(key)) continue;
      after.set(key, alert);
      if (!before.has(key)) events.push({ event: "alert", vm, alert });
    }
    for (const [key, alert] of before) {
      if (!after.has(key)) events.push({ event: "resolved", vm, alert });
    }
    this.#active.set(vm, after);
    return events;
  }

  /** Records a failed check of `vm` (connect, connection or check error); returns what to report. */
  failed(vm: string, error: unknown, now: Date = new Date()): WatchEvent[] {
    const outage = this.#outages.get(vm);
    if (outage !== undefined) {
      outage.failures++;
      return [];
    }
    this.#outages.set(vm, { since: now, failures: 1 });
    return [{ event: "alert", vm, alert: unreachableAlert(error) }];
  }

  /** Whether `vm`'s agent is lost (its last check failed). */
  isDown(vm: string): boolean {
    return this.#outages.has(vm);
  }

  /** The alerts active for `vm`: those of its last successful check, and `agent_unreachable` during an outage. */
  active(vm: string): Alert[] {
    const alerts = [...(this.#active.get(vm)?.values() ?? [])];
    return this.#outages.has(vm) ? [unreachableAlert(undefined), ...alerts] : alerts;
  }
}

/** What makes two alerts of one VM the same alert. */
export function alertKey(alert: Pick<Alert, "detector" | "summary">): string {
  return `${alert.detector}\u0000${alert.summary}`;
}

const UNREACHABLE_SEVERITY: Severity = "high";

function unreachableAlert(error: unknown): Alert {
  return {
    detector: AGENT_UNREACHABLE,
    severity: UNREACHABLE_SEVERITY,
    summary: "the agent cannot be reached or the check failed",
    evidence: error === undefined ? {} : { error: errorText(error) },
  };
}

/** An error as one line of evidence (its message, and its cause's). */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return error.message.includes(cause.slice(2)) ? error.message : `${error.message}${cause}`;
}
