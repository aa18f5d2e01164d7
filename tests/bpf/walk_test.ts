// Real eBPF on this machine's kernel (run as root): both variants of the walkers (bpf_loop, and
// the bounded loop that kernels before 5.17 are sent), through the scenarios every variant must
// pass (tests/_helpers/walk_scenarios.ts), and the loop variant's pause on a full ring buffer.
// This kernel has no module list (CONFIG_MODULES off): walk_modules is exercised in the guests.
import assert from "node:assert/strict";
import { LoadedProgram } from "../../agent/program.ts";
import { bpfObject } from "../../bpf/objects.ts";
import { AddrTag, type BpfRecord, decodeRecords, RecordKind } from "../../bpf/records.ts";
import { encodeListWalk } from "../../ids/memory/bulk.ts";
import { Btf } from "../../ids/profile/btf.ts";
import { startSleepers } from "../../ids/cli/workload.ts";
import { IS_ROOT } from "../_helpers/agent.ts";
import { BOUNDED_BATCH, checkWalkVariant, type WalkRunner } from "../_helpers/walk_scenarios.ts";

/** Loads and runs a program in this process, as the agent does. */
const runHere: WalkRunner = (name, variant, params) => {
  const program = LoadedProgram.load(name, bpfObject(name, variant));
  try {
    const run = program.run(params);
    const records: BpfRecord[] = [];
    for (;;) {
      const step = run.next();
      if (step.done) return Promise.resolve({ records, fires: step.value.fires });
      for (const record of decodeRecords(step.value)) {
        records.push({ ...record, payload: record.payload.slice() });
      }
    }
  } finally {
    program.close();
  }
};

function taskOffsets() {
  const btf = Btf.parse(Deno.readFileSync("/sys/kernel/btf/vmlinux"));
  const offset = (path: string) => btf.memberOf("task_struct", path)!.offset;
  return { tasks: offset("tasks"), children: offset("children"), pid: offset("pid") };
}

for (const variant of ["bounded", "loop"] as const) {
  Deno.test({
    name:
      `the ${variant} walkers resume across fires, end a looping list with a FAULT, stop at their limit (root)`,
    ignore: !IS_ROOT,
    async fn() {
      // More tasks than one bounded fire visits.
      const workload = await startSleepers(2 * BOUNDED_BATCH);
      try {
        await checkWalkVariant(runHere, variant, taskOffsets(), 2 * BOUNDED_BATCH);
      } finally {
        await workload.stop();
      }
    },
  });
}

Deno.test({
  name: "walk_tasks (loop) pauses when its ring buffer fills and resumes where it stopped (root)",
  ignore: !IS_ROOT,
  async fn() {
    // A 4 MiB ring holds a few hundred tasks with their pages: 800 more force pauses. (A bounded
    // fire visits 32 tasks, at most 32 × 74 KiB, so the bounded walkers never fill their ring.)
    const workload = await startSleepers(800);
    try {
      const { records, fires } = await runHere("walk_tasks", "loop", encodeListWalk(0n));
      const tasks = records.filter((r) =>
        r.kind === RecordKind.Addr && r.value === BigInt(AddrTag.Task)
      ).map((r) => r.addr);
      assert.ok(fires > 1, `walk fired ${fires} times`);
      assert.ok(records.some((r) => r.kind === RecordKind.More), "a MORE record: it paused");
      assert.equal(records.at(-1)?.kind, RecordKind.End);
      assert.equal(new Set(tasks).size, tasks.length, "no task twice");
      assert.ok(tasks.length >= 800, `found ${tasks.length} tasks`);
    } finally {
      await workload.stop();
    }
  },
});
