import assert from "node:assert/strict";
import { Budget, DeadlinePassed, HostileAnswer } from "../../../ids/client/budget.ts";

const LIMITS = { deadlineMs: 60_000, maxBytes: 1000, maxRecords: 10 };

Deno.test("spendRecords() throws a HostileAnswer naming max_records past the budget", () => {
  const budget = new Budget(LIMITS);
  budget.spendRecords(10);
  assert.throws(
    () => budget.spendRecords(1),
    (error) =>
      error instanceof HostileAnswer && error.limit === "max_records" &&
      error.message ===
        "Hostile agent answer (hostile_agent): the agent sent more than 10 records for one view (limit max_records)",
  );
});

Deno.test("spendBytes() throws past the budget; startAcquisition() restarts the counters", () => {
  const budget = new Budget(LIMITS);
  budget.spendBytes(1000);
  budget.startAcquisition();
  budget.spendBytes(1000);
  assert.throws(
    () => budget.spendBytes(1),
    (e) => e instanceof HostileAnswer && e.limit === "max_bytes",
  );
});

Deno.test("check() throws DeadlinePassed once the deadline is behind", async () => {
  const budget = new Budget({ ...LIMITS, deadlineMs: 1 });
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.throws(
    () => budget.check(),
    (e) =>
      e instanceof DeadlinePassed &&
      e.message ===
        "The deadline of 1 ms passed before the agent's answers were done (limit deadline)",
  );
});

Deno.test("check() throws once the signal aborts", () => {
  const stop = new AbortController();
  const budget = new Budget(LIMITS, stop.signal);
  budget.check();
  stop.abort();
  assert.throws(() => budget.check(), /Stopped/);
});

Deno.test("pace() lets timers run during a long loop of work on received data", async () => {
  const budget = new Budget(LIMITS);
  let fired = false;
  setTimeout(() => fired = true, 0);
  // 200 ms of busy work in 4,000 paced steps: without yields the timer could not fire.
  let steps = 0;
  const until = performance.now() + 200;
  while (performance.now() < until || steps < 4_000) {
    const spin = performance.now() + 0.05;
    while (performance.now() < spin) { /* work */ }
    steps++;
    await budget.pace();
    if (fired) break;
  }
  assert.ok(fired, `the timer ran within ${steps} steps`);
});
