import assert from "node:assert/strict";
import { DEFAULT_GUEST_LIMITS, parseLimits } from "../../ids/limits.ts";

Deno.test("parseLimits() sets the named limits over the defaults", () => {
  assert.deepEqual(parseLimits("deadline=30s, max_tasks=200000,max_hash_buckets=1048576"), {
    ...DEFAULT_GUEST_LIMITS,
    deadlineMs: 30_000,
    maxTasks: 200_000,
    maxHashBuckets: 1_048_576,
  });
  assert.deepEqual(parseLimits(""), DEFAULT_GUEST_LIMITS);
});

Deno.test("parseLimits() refuses unknown names and values that are no positive integer", async (t) => {
  const cases: [string, RegExp][] = [
    ["max_task=5", /Unknown limit "max_task=5": use name=value with deadline, max_bytes, /],
    ["max_tasks", /Invalid limit max_tasks="": expected a positive integer/],
    ["max_tasks=0", /Invalid limit max_tasks="0": expected a positive integer$/],
    ["max_bytes=1e9", /Invalid limit max_bytes="1e9": expected a positive integer$/],
    ["deadline=30", /Invalid duration "30"/],
  ];
  for (const [text, error] of cases) {
    await t.step(text, () => assert.throws(() => parseLimits(text), error));
  }
});
