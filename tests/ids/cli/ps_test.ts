// `ids ps`'s order: by pid, and --limit N the N lowest pids wherever the walk started.
import assert from "node:assert/strict";
import { lowestPids } from "../../../ids/cli/ps.ts";
import type { ProcessInfo } from "../../../ids/os/tasks.ts";

function task(pid: number): ProcessInfo {
  return {
    pid,
    tgid: pid,
    ppid: 1,
    comm: `p${pid}`,
    uid: 0,
    euid: 0,
    gid: 0,
    state: "S",
    kthread: false,
    addr: 0xffff_8880_0000_0000n + BigInt(pid) * 0x1000n,
  };
}

// A walk that started at the agent's task (pid 4242) and went round the list: creation order,
// with pids that wrapped (30001 created before 7).
const WALKED = [4242, 4300, 30001, 7, 1, 2, 3, 100, 4000].map(task);

Deno.test("lowestPids() sorts by pid without changing its input", () => {
  const before = WALKED.map((p) => p.pid);
  assert.deepEqual(lowestPids(WALKED).map((p) => p.pid), [
    1,
    2,
    3,
    7,
    100,
    4000,
    4242,
    4300,
    30001,
  ]);
  assert.deepEqual(WALKED.map((p) => p.pid), before);
});

Deno.test("lowestPids() with a limit keeps the lowest pids, not the first walked", async (t) => {
  const cases: [number, number[]][] = [
    [1, [1]],
    [5, [1, 2, 3, 7, 100]],
    [9, [1, 2, 3, 7, 100, 4000, 4242, 4300, 30001]],
    [50, [1, 2, 3, 7, 100, 4000, 4242, 4300, 30001]],
  ];
  for (const [limit, pids] of cases) {
    await t.step(`--limit ${limit}`, () => {
      assert.deepEqual(lowestPids(WALKED, limit).map((p) => p.pid), pids);
    });
  }
});
