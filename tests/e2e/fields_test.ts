// End to end (root: real eBPF): fields mode against page and bulk mode and /proc, and lists far
// longer than one fire of the walkers holds.
import assert from "node:assert/strict";
import type { ProcessInfo } from "../../ids/os/tasks.ts";
import { startSleepers as startWorkload } from "../../ids/cli/workload.ts";
import { IS_ROOT, procSnapshot, stableKey, stableProcesses, withGuest } from "../_helpers/agent.ts";
import { processView } from "../../ids/os/process_view.ts";

const ignore = !IS_ROOT;

Deno.test({
  name: "fields mode lists what page and bulk mode list, in one request with no page read (root)",
  ignore,
  fn: () =>
    withGuest(async (guest) => {
      const before = procSnapshot();
      const page = await guest.acquire(processView(), "page");
      const bulk = await guest.acquire(processView(), "bulk");
      const fields = await guest.acquire(processView(), "fields");
      const after = procSnapshot();
      const stable = new Set(stableProcesses(before, after).map((p) => p.pid));
      const pick = (items: ProcessInfo[]) =>
        items.filter((p) => stable.has(p.pid)).map(stableKey).sort();
      assert.ok(stable.size > 3);
      assert.deepEqual(pick(fields.items), pick(bulk.items));
      assert.deepEqual(pick(fields.items), pick(page.items));
      assert.equal(fields.cost.roundTrips, 1);
      assert.equal(fields.cost.misses, 0);
      assert.ok(
        fields.cost.bytes < bulk.cost.bytes / 10,
        `fields sent ${fields.cost.bytes} bytes, bulk ${bulk.cost.bytes}`,
      );
    }),
});

Deno.test({
  name: "fields mode sends at most 32 KiB for 100 processes (root)",
  ignore,
  fn: async () => {
    const workload = await startWorkload(100); // at least 100 processes, whatever else runs
    try {
      await withGuest(async (guest) => {
        const { items, cost } = await guest.acquire(processView(100), "fields");
        assert.equal(items.length, 100);
        assert.ok(cost.bytes <= 32 * 1024, `${cost.bytes} bytes on the wire`);
      });
    } finally {
      await workload.stop();
    }
  },
});

Deno.test({
  name:
    "10,000 processes: bulk and fields mode list every one, resuming the walk across fires (root)",
  ignore,
  fn: async () => {
    const workload = await startWorkload(10_000);
    try {
      await withGuest(async (guest) => {
        for (const mode of ["fields", "bulk"] as const) {
          const { items, cost } = await guest.acquire(processView(), mode);
          const pids = new Set(items.map((p) => p.pid));
          const missing = workload.pids.filter((pid) => !pids.has(pid));
          assert.deepEqual(missing, [], `${mode}: helper processes missing from the task list`);
          assert.ok(items.length >= 10_000, `${mode}: ${items.length} processes`);
          assert.equal(pids.size, items.length, `${mode}: a pid twice`);
          assert.equal(cost.roundTrips, 1, `${mode}: one request`);
          assert.equal(cost.misses, 0, `${mode}: no page read`);
        }
      });
    } finally {
      await workload.stop();
    }
  },
});
