import assert from "node:assert/strict";
import { retryDelay, untilNextTick } from "../../../ids/watch/vm_loop.ts";

Deno.test("retryDelay() starts at the interval and doubles up to 8 intervals, at most a minute", () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 50].map((n) => retryDelay(1000, n)),
    [1000, 2000, 4000, 8000, 8000, 8000, 8000],
  );
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => retryDelay(10_000, n)), [
    10_000,
    20_000,
    40_000,
    60_000,
    60_000,
  ]);
  assert.equal(
    retryDelay(120_000, 3),
    120_000,
    "never shorter than an interval longer than a minute",
  );
});

Deno.test("untilNextTick() skips the ticks an overrunning check missed instead of stacking checks", () => {
  assert.equal(untilNextTick(1000, 200), 800);
  assert.equal(untilNextTick(1000, 0), 1000);
  assert.equal(untilNextTick(1000, 2300), 700, "a check of 2.3 intervals: next at the third tick");
  assert.equal(untilNextTick(1000, 1000), 1000);
});
