import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "../../ids/duration.ts";

Deno.test("parseDuration() reads milliseconds, seconds, minutes and hours", async (t) => {
  for (
    const [text, ms] of [
      ["500ms", 500],
      ["5s", 5000],
      ["1m", 60_000],
      ["1.5s", 1500],
      ["2h", 7_200_000],
      [" 10s ", 10_000],
    ] as const
  ) {
    await t.step(text, () => assert.equal(parseDuration(text), ms));
  }
});

Deno.test("parseDuration() refuses bare numbers, unknown units, zero and huge values", async (t) => {
  for (const text of ["5", "5 s", "5sec", "-1s", "0s", "0.0001ms", "", "s", "1e3ms", "1000h"]) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseDuration(text), /^Error: Invalid duration/);
    });
  }
});

Deno.test("formatDuration() writes the largest unit that divides the duration", () => {
  assert.deepEqual(
    [500, 1000, 1500, 60_000, 90_000, 3_600_000].map(formatDuration),
    ["500ms", "1s", "1500ms", "1m", "90s", "1h"],
  );
  for (const text of ["250ms", "7s", "3m", "1h"]) {
    assert.equal(formatDuration(parseDuration(text)), text);
  }
});
