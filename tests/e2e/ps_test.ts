// End to end (needs root: real eBPF): the IDS's process list, read from the kernel's task list
// through a real agent in page and bulk mode, against /proc read at the same time.
import assert from "node:assert/strict";
import type { ProcessInfo } from "../../ids/os/tasks.ts";
import {
  hasSetpriv,
  IS_ROOT,
  procSnapshot,
  sameComm,
  stableKey,
  stableProcesses,
  startSleepers,
  withGuest,
} from "../_helpers/agent.ts";
import { processView } from "../../ids/os/process_view.ts";

const ignore = !IS_ROOT;

Deno.test({
  name: "ps in page mode and in bulk mode equals /proc for every stable process (root)",
  ignore,
  fn: () =>
    withGuest(async (guest) => {
      const before = procSnapshot();
      const page = await guest.acquire(processView(), "page");
      const bulk = await guest.acquire(processView(), "bulk");
      const after = procSnapshot();
      const stable = stableProcesses(before, after);
      assert.ok(stable.length > 3, `only ${stable.length} stable processes in /proc`);

      for (const [mode, acquired] of [["page", page], ["bulk", bulk]] as const) {
        const byPid = new Map(acquired.items.map((p) => [p.pid, p]));
        assert.equal(byPid.size, acquired.items.length, `${mode}: a pid is listed twice`);
        assert.ok(acquired.items.every((p) => p.pid !== 0), `${mode}: pid 0 is listed`);
        for (const proc of stable) {
          const seen = byPid.get(proc.pid);
          assert.ok(seen, `${mode}: pid ${proc.pid} (${proc.comm}) is in /proc, not in the view`);
          assert.deepEqual(
            { pid: seen.pid, ppid: seen.ppid, uid: seen.uid },
            { pid: proc.pid, ppid: proc.ppid, uid: proc.uid },
            `${mode}: pid ${proc.pid} (${proc.comm}) differs from /proc`,
          );
          assert.ok(
            sameComm(proc, seen.comm),
            `${mode}: pid ${proc.pid} is ${seen.comm} in the view, ${proc.fullComm} in /proc`,
          );
          assert.equal(seen.tgid, seen.pid, `${mode}: the task list holds group leaders only`);
        }
      }

      const stablePids = new Set(stable.map((p) => p.pid));
      const pick = (items: ProcessInfo[]) =>
        items.filter((p) => stablePids.has(p.pid)).map(stableKey).sort();
      assert.deepEqual(pick(page.items), pick(bulk.items));

      // A walk that met a task ending under it takes the snapshot again: every attempt counts.
      assert.equal(bulk.cost.roundTrips, bulk.cost.attempts, "bulk mode is one request a snapshot");
      assert.equal(bulk.cost.misses, 0, "bulk mode prefetches every page the view reads");
      assert.ok(page.cost.roundTrips > 1, `page mode took ${page.cost.roundTrips} round trips`);
      assert.equal(
        page.cost.misses,
        page.cost.roundTrips - page.cost.attempts,
        "page mode: one miss per request, but the one finding the start task of each attempt",
      );
    }),
});

Deno.test({
  name: "ps shows the uid, gid, euid and parent of helper processes run as nobody (root)",
  ignore: ignore || !hasSetpriv(),
  fn: async () => {
    await using helpers = await startSleepers(3, true);
    await withGuest(async (guest) => {
      for (const mode of ["page", "bulk"] as const) {
        const { items } = await guest.acquire(processView(), mode);
        for (const pid of helpers.pids) {
          const proc = items.find((p) => p.pid === pid);
          assert.ok(proc, `${mode}: helper ${pid} is missing`);
          assert.deepEqual(
            {
              comm: proc.comm,
              ppid: proc.ppid,
              uid: proc.uid,
              euid: proc.euid,
              gid: proc.gid,
              kthread: proc.kthread,
            },
            { comm: "sleep", ppid: Deno.pid, uid: 65534, euid: 65534, gid: 65534, kthread: false },
            `${mode}: helper ${pid}`,
          );
          assert.equal(proc.state, "S", `${mode}: a sleeping helper is in state S`);
        }
      }
    });
  },
});

Deno.test({
  name: "ps marks kthreadd (pid 2) as a kernel thread and init (pid 1) as not one (root)",
  ignore,
  fn: () =>
    withGuest(async (guest) => {
      for (const mode of ["page", "bulk"] as const) {
        const { items } = await guest.acquire(processView(), mode);
        const init = items.find((p) => p.pid === 1);
        const kthreadd = items.find((p) => p.pid === 2);
        assert.equal(init?.kthread, false, `${mode}: pid 1`);
        assert.equal(init?.ppid, 0, `${mode}: pid 1's parent is the idle task`);
        assert.equal(kthreadd?.kthread, true, `${mode}: pid 2`);
        assert.equal(kthreadd?.comm, "kthreadd", `${mode}: pid 2`);
        assert.equal(kthreadd?.uid, 0, `${mode}: pid 2`);
      }
    }),
});

Deno.test({
  name: "ps --limit gives exactly N processes in both modes and bulk still misses nothing (root)",
  ignore,
  fn: () =>
    withGuest(async (guest, agent) => {
      for (const limit of [1, 5, 12]) {
        const page = await guest.acquire(processView(limit), "page");
        const bulk = await guest.acquire(processView(limit), "bulk");
        assert.equal(page.items.length, limit, `page mode, limit ${limit}`);
        assert.equal(bulk.items.length, limit, `bulk mode, limit ${limit}`);
        // Both walks start at the agent's own task (kallsyms has no init_task here); the
        // processes after it are the newest and may come and go between the two walks.
        for (const items of [page.items, bulk.items]) {
          assert.equal(items[0]?.pid, agent.pid, "the walk starts at the agent's task");
          assert.equal(new Set(items.map((p) => p.pid)).size, limit, "no process twice");
        }
        assert.equal(bulk.cost.roundTrips, 1, `bulk mode, limit ${limit}`);
        assert.equal(bulk.cost.misses, 0, `bulk mode, limit ${limit}`);
      }
    }),
});
