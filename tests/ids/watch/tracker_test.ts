import assert from "node:assert/strict";
import type { Alert } from "../../../ids/detect/alert.ts";
import {
  AGENT_REACHABLE,
  AGENT_UNREACHABLE,
  AlertTracker,
  type WatchEvent,
} from "../../../ids/watch/tracker.ts";

const alert = (summary: string, detector = "policy", evidence = {}): Alert => ({
  detector,
  severity: "medium",
  summary,
  evidence,
});

const brief = (events: WatchEvent[]) =>
  events.map((e) => `${e.event} ${e.vm} ${e.alert.detector}: ${e.alert.summary}`);

Deno.test("AlertTracker reports an alert when it appears, not again while it stays, and resolved when it goes", () => {
  const tracker = new AlertTracker();
  const a = alert("process nc (pid 7) is not allowed by the policy");
  const b = alert("module evil is not allowed by the policy");
  assert.deepEqual(brief(tracker.checked("web1", [a])), [`alert web1 policy: ${a.summary}`]);
  assert.deepEqual(brief(tracker.checked("web1", [a])), []);
  assert.deepEqual(brief(tracker.checked("web1", [b, a])), [`alert web1 policy: ${b.summary}`]);
  assert.deepEqual(brief(tracker.checked("web1", [b])), [`resolved web1 policy: ${a.summary}`]);
  assert.deepEqual(brief(tracker.checked("web1", [])), [`resolved web1 policy: ${b.summary}`]);
  assert.deepEqual(brief(tracker.checked("web1", [a])), [`alert web1 policy: ${a.summary}`]);
});

Deno.test("AlertTracker keys alerts by VM, detector and summary, not by evidence", () => {
  const tracker = new AlertTracker();
  tracker.checked("web1", [alert("same", "policy", { state: "S" })]);
  assert.deepEqual(tracker.checked("web1", [alert("same", "policy", { state: "R" })]), []);
  assert.deepEqual(brief(tracker.checked("web2", [alert("same")])), ["alert web2 policy: same"]);
  assert.deepEqual(
    brief(tracker.checked("web1", [alert("same"), alert("same", "baseline")])),
    ["alert web1 baseline: same"],
  );
  assert.deepEqual(brief(tracker.checked("web1", [alert("x"), alert("x")])).length, 3);
});

Deno.test("AlertTracker reports a lost agent once per outage and its return once", () => {
  const tracker = new AlertTracker();
  const a = alert("a");
  tracker.checked("web1", [a]);
  const t0 = new Date("2026-01-01T00:00:00Z");
  const lost = tracker.failed("web1", new Error("Cannot connect to tcp://h:1: refused"), t0);
  assert.deepEqual(lost, [{
    event: "alert",
    vm: "web1",
    alert: {
      detector: AGENT_UNREACHABLE,
      severity: "high",
      summary: "the agent cannot be reached or the check failed",
      evidence: { error: "Cannot connect to tcp://h:1: refused" },
    },
  }]);
  assert.deepEqual(tracker.failed("web1", new Error("again"), t0), []);
  assert.deepEqual(tracker.failed("web1", new Error("and again"), t0), []);
  assert.ok(tracker.isDown("web1"));
  assert.deepEqual(tracker.active("web1").map((x) => x.detector), [AGENT_UNREACHABLE, "policy"]);
  // Another VM is not affected.
  assert.equal(tracker.isDown("web2"), false);

  const back = tracker.checked("web1", [], new Date("2026-01-01T00:00:12.5Z"));
  assert.deepEqual(back, [
    {
      event: "alert",
      vm: "web1",
      alert: {
        detector: AGENT_REACHABLE,
        severity: "low",
        summary: "the agent is reachable again",
        evidence: { down_since: "2026-01-01T00:00:00.000Z", down_seconds: 12.5, failed_checks: 3 },
      },
    },
    { event: "resolved", vm: "web1", alert: a },
  ]);
  assert.equal(tracker.isDown("web1"), false);
  assert.deepEqual(tracker.checked("web1", []), []);
  assert.equal(tracker.failed("web1", "plain").length, 1, "a new outage is reported again");
});

Deno.test("AlertTracker keeps a VM's alerts through an outage: what is still there is not reported again", () => {
  const tracker = new AlertTracker();
  const a = alert("a");
  tracker.checked("web1", [a]);
  tracker.failed("web1", new Error("lost"));
  assert.deepEqual(brief(tracker.checked("web1", [a])), [
    "alert web1 agent_reachable: the agent is reachable again",
  ]);
});

Deno.test("AlertTracker reports a first check that fails as a lost agent", () => {
  const tracker = new AlertTracker();
  assert.deepEqual(brief(tracker.failed("db", new Error("x", { cause: new Error("refused") }))), [
    "alert db agent_unreachable: the agent cannot be reached or the check failed",
  ]);
  assert.deepEqual(
    tracker.active("db")[0]?.evidence,
    {},
    "active() does not hold the first error",
  );
});
