import assert from "node:assert/strict";
import { WatchMetrics } from "../../../ids/watch/metrics.ts";
import { AlertTracker } from "../../../ids/watch/tracker.ts";
import { parseExposition, sampleValue } from "../../_helpers/prometheus.ts";

const EXPECTED = [
  ["ebpfmonitor_check_duration_seconds", "gauge"],
  ["ebpfmonitor_checks_total", "counter"],
  ["ebpfmonitor_check_failures_total", "counter"],
  ["ebpfmonitor_round_trips_total", "counter"],
  ["ebpfmonitor_bytes_total", "counter"],
  ["ebpfmonitor_agent_up", "gauge"],
  ["ebpfmonitor_alerts_total", "counter"],
  ["ebpfmonitor_alerts_active", "gauge"],
];

Deno.test("WatchMetrics has every family, with every VM's series from the start", () => {
  const families = parseExposition(new WatchMetrics(["web1", 'we"b2']).render());
  assert.deepEqual([...families].map(([name, f]) => [name, f.type]), EXPECTED);
  for (const vm of ["web1", 'we"b2']) {
    assert.equal(sampleValue(families, "ebpfmonitor_checks_total", { vm }), 0);
    assert.equal(sampleValue(families, "ebpfmonitor_agent_up", { vm }), 0);
  }
  assert.deepEqual(families.get("ebpfmonitor_alerts_total")?.samples, []);
});

Deno.test("WatchMetrics counts checks, failures, traffic and alerts, and gauges the active alerts", () => {
  const metrics = new WatchMetrics(["web1", "web2"]);
  const tracker = new AlertTracker();
  const policy = (summary: string, severity: "medium" | "high") => ({
    detector: "policy",
    severity,
    summary,
    evidence: {},
  });
  const step = (vm: string, ok: boolean, alerts = [policy("a", "medium")]) => {
    metrics.recordCheck(vm, { ok, durationMs: 1500, roundTrips: 2, bytes: 1000 });
    const events = ok ? tracker.checked(vm, alerts) : tracker.failed(vm, new Error("lost"));
    metrics.recordEvents(events);
    metrics.setActive(vm, tracker.active(vm));
  };
  step("web1", true, [policy("a", "medium"), policy("b", "high"), policy("c", "high")]);
  step("web1", true, [policy("a", "medium"), policy("b", "high"), policy("c", "high")]);
  step("web1", false);
  step("web1", false);
  step("web2", true, []);
  let m = parseExposition(metrics.render());
  const v = (name: string, labels: Record<string, string>) => sampleValue(m, name, labels);
  assert.equal(v("ebpfmonitor_checks_total", { vm: "web1" }), 4);
  assert.equal(v("ebpfmonitor_check_failures_total", { vm: "web1" }), 2);
  assert.equal(v("ebpfmonitor_round_trips_total", { vm: "web1" }), 8);
  assert.equal(v("ebpfmonitor_bytes_total", { vm: "web1" }), 4000);
  assert.equal(v("ebpfmonitor_check_duration_seconds", { vm: "web1" }), 1.5);
  assert.equal(v("ebpfmonitor_agent_up", { vm: "web1" }), 0);
  assert.equal(v("ebpfmonitor_agent_up", { vm: "web2" }), 1);
  assert.equal(v("ebpfmonitor_alerts_total", { vm: "web1", detector: "policy" }), 3);
  assert.equal(v("ebpfmonitor_alerts_total", { vm: "web1", detector: "agent_unreachable" }), 1);
  assert.equal(v("ebpfmonitor_alerts_total", { vm: "web2", detector: "policy" }), undefined);
  const active = (vm: string, detector: string, severity: string) =>
    v("ebpfmonitor_alerts_active", { vm, detector, severity });
  assert.equal(active("web1", "policy", "high"), 2);
  assert.equal(active("web1", "policy", "medium"), 1);
  assert.equal(active("web1", "agent_unreachable", "high"), 1);

  step("web1", true, []);
  m = parseExposition(metrics.render());
  assert.equal(v("ebpfmonitor_agent_up", { vm: "web1" }), 1);
  assert.equal(active("web1", "policy", "high"), 0, "a resolved series stays, at 0");
  assert.equal(active("web1", "agent_unreachable", "high"), 0);
  assert.equal(v("ebpfmonitor_alerts_total", { vm: "web1", detector: "agent_reachable" }), 1);
  assert.equal(v("ebpfmonitor_alerts_total", { vm: "web1", detector: "policy" }), 3);
});
