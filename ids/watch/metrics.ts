/**
 * The metrics of `ids watch`, per VM, as Prometheus metric families:
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `ebpfmonitor_check_duration_seconds` — the last check's duration | gauge | vm |
 * | `ebpfmonitor_checks_total` — checks run (failed ones too) | counter | vm |
 * | `ebpfmonitor_check_failures_total` — checks that failed (agent lost, deadline, error) | counter | vm |
 * | `ebpfmonitor_round_trips_total` — requests to the agent | counter | vm |
 * | `ebpfmonitor_bytes_total` — bytes on the wire, both directions | counter | vm |
 * | `ebpfmonitor_agent_up` — 1 when the last check reached the agent, else 0 | gauge | vm |
 * | `ebpfmonitor_alerts_total` — alert lines emitted | counter | vm, detector |
 * | `ebpfmonitor_alerts_active` — alerts active now | gauge | vm, detector, severity |
 *
 * Traffic counts every request of the watch, the profile's (BTF, kallsyms,
 * program loads at each connect) included. A series of `alerts_active` stays
 * (at 0) once it has been seen.
 *
 * @module
 */
import type { Alert } from "../detect/alert.ts";
import { type MetricFamily, renderExposition } from "./exposition.ts";
import type { WatchEvent } from "./tracker.ts";

/** What one check of one VM did. */
export interface CheckRecord {
  /** Whether it succeeded. */
  ok: boolean;
  /** Its wall time, connecting included, ms. */
  durationMs: number;
  /** Requests it sent. */
  roundTrips: number;
  /** Bytes it sent and received. */
  bytes: number;
}

interface VmSeries {
  durationSeconds: number;
  checks: number;
  failures: number;
  roundTrips: number;
  bytes: number;
  up: number;
  /** Emitted alerts by detector. */
  emitted: Map<string, number>;
  /** Active alerts by detector, then severity. */
  active: Map<string, Map<string, number>>;
}

/** The counters and gauges of a watch. */
export class WatchMetrics {
  readonly #vms = new Map<string, VmSeries>();

  /** @param vms the watched VMs' names (their series exist from the start) */
  constructor(vms: readonly string[]) {
    for (const vm of vms) this.#series(vm);
  }

  #series(vm: string): VmSeries {
    let series = this.#vms.get(vm);
    if (series === undefined) {
      series = {
        durationSeconds: 0,
        checks: 0,
        failures: 0,
        roundTrips: 0,
        bytes: 0,
        up: 0,
        emitted: new Map(),
        active: new Map(),
      };
      this.#vms.set(vm, series);
    }
    return series;
  }

  /** Counts one check of `vm`. */
  recordCheck(vm: string, check: CheckRecord): void {
    const series = this.#series(vm);
    series.durationSeconds = check.durationMs / 1000;
    series.checks++;
    if (!check.ok) series.failures++;
    series.roundTrips += check.roundTrips;
    series.bytes += check.bytes;
    series.up = check.ok ? 1 : 0;
  }

  /** Counts the alert lines among `events`. */
  recordEvents(events: readonly WatchEvent[]): void {
    for (const { event, vm, alert } of events) {
      if (event !== "alert") continue;
      const emitted = this.#series(vm).emitted;
      emitted.set(alert.detector, (emitted.get(alert.detector) ?? 0) + 1);
    }
  }

  /** Sets the alerts active for `vm` now. */
  setActive(vm: string, alerts: readonly Alert[]): void {
    const active = this.#series(vm).active;
    for (const bySeverity of active.values()) {
      for (const severity of bySeverity.keys()) bySeverity.set(severity, 0);
    }
    for (const alert of alerts) {
      let bySeverity = active.get(alert.detector);
      if (bySeverity === undefined) active.set(alert.detector, bySeverity = new Map());
      bySeverity.set(alert.severity, (bySeverity.get(alert.severity) ?? 0) + 1);
    }
  }

  /** The metric families, VMs in the order first seen. */
  families(): MetricFamily[] {
    const vms = [...this.#vms];
    const perVm = (
      name: string,
      help: string,
      type: "counter" | "gauge",
      value: (series: VmSeries) => number,
    ): MetricFamily => ({
      name,
      help,
      type,
      samples: vms.map(([vm, series]) => ({ labels: { vm }, value: value(series) })),
    });
    return [
      perVm(
        "ebpfmonitor_check_duration_seconds",
        "Duration of the last check of the VM, connecting included",
        "gauge",
        (s) => s.durationSeconds,
      ),
      perVm(
        "ebpfmonitor_checks_total",
        "Checks run, failed ones included",
        "counter",
        (s) => s.checks,
      ),
      perVm(
        "ebpfmonitor_check_failures_total",
        "Checks that failed: agent unreachable, connection lost, deadline passed or check error",
        "counter",
        (s) => s.failures,
      ),
      perVm(
        "ebpfmonitor_round_trips_total",
        "Requests sent to the agent",
        "counter",
        (s) => s.roundTrips,
      ),
      perVm(
        "ebpfmonitor_bytes_total",
        "Bytes exchanged with the agent, both directions",
        "counter",
        (s) => s.bytes,
      ),
      perVm(
        "ebpfmonitor_agent_up",
        "Whether the last check reached the agent (1) or not (0)",
        "gauge",
        (s) => s.up,
      ),
      {
        name: "ebpfmonitor_alerts_total",
        help: "Alert lines emitted (each alert once, when it appears)",
        type: "counter",
        samples: vms.flatMap(([vm, series]) =>
          [...series.emitted].map(([detector, value]) => ({ labels: { vm, detector }, value }))
        ),
      },
      {
        name: "ebpfmonitor_alerts_active",
        help: "Alerts active now (found by the last successful check, or the agent lost)",
        type: "gauge",
        samples: vms.flatMap(([vm, series]) =>
          [...series.active].flatMap(([detector, bySeverity]) =>
            [...bySeverity].map(([severity, value]) => ({
              labels: { vm, detector, severity },
              value,
            }))
          )
        ),
      },
    ];
  }

  /** The metrics in the text exposition format. */
  render(): string {
    return renderExposition(this.families());
  }
}
