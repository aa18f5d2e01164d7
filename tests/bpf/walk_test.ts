// Real eBPF on this machine's kernel (run as root): the walkers' resumable walk,
// through both loop paths.
import assert from "node:assert/strict";
import { LoadedProgram } from "../../agent/program.ts";
import { bpfObject } from "../../bpf/objects.ts";
import { AddrTag, decodeRecords, RecordKind } from "../../bpf/records.ts";
import { startSleepers } from "../../ids/cli/workload.ts";

const ALL = 0xffff_ffff;

function walkParams(start: bigint, limit: number): Uint8Array {
  const params = new Uint8Array(16);
  new DataView(params.buffer).setBigUint64(0, start, true);
  new DataView(params.buffer).setUint32(8, limit, true);
  return params;
}

/** Runs a walk to its end; returns the tasks it reported, its fires and its closing record. */
function walk(program: LoadedProgram, limit = ALL) {
  const run = program.run(walkParams(0n, limit));
  const tasks: bigint[] = [];
  const kinds: number[] = [];
  for (;;) {
    const step = run.next();
    if (step.done) return { tasks, fires: step.value.fires, last: kinds.at(-1) };
    for (const record of decodeRecords(step.value)) {
      kinds.push(record.kind);
      if (record.kind === RecordKind.Addr && record.value === BigInt(AddrTag.Task)) {
        tasks.push(record.addr);
      }
    }
  }
}

function loadObject(name: string, elf: Uint8Array): LoadedProgram {
  return LoadedProgram.load(name, elf);
}

Deno.test("walk_tasks without bpf_loop (the 5.10 path) resumes across fires and finds the same tasks", async () => {
  const bounded = loadObject(
    "walk_tasks",
    bpfObject("walk_tasks", "bounded"),
  );
  const looped = loadObject("walk_tasks", bpfObject("walk_tasks"));
  const workload = await startSleepers(40);
  try {
    const a = walk(bounded);
    const b = walk(looped);
    // 32 tasks per fire on the bounded path: more than 40 tasks need several fires.
    assert.ok(a.fires > 1, `bounded path fired ${a.fires} times`);
    assert.equal(b.fires, 1);
    assert.equal(a.last, RecordKind.End);
    assert.equal(b.last, RecordKind.End);
    assert.deepEqual(new Set(a.tasks), new Set(b.tasks));
  } finally {
    await workload.stop();
    bounded.close();
    looped.close();
  }
});

Deno.test("walk_modules without bpf_loop loads and passes the verifier", () => {
  const program = loadObject(
    "walk_modules",
    bpfObject("walk_modules", "bounded"),
  );
  program.close();
});

Deno.test("walk_tasks pauses when its ring buffer fills and resumes where it stopped", async () => {
  const program = loadObject("walk_tasks", bpfObject("walk_tasks"));
  // A 4 MiB ring holds a few hundred tasks with their pages: 800 more force pauses.
  const workload = await startSleepers(800);
  try {
    const result = walk(program);
    assert.ok(result.fires > 1, `walk fired ${result.fires} times`);
    assert.equal(result.last, RecordKind.End);
    assert.equal(new Set(result.tasks).size, result.tasks.length, "no task twice");
    assert.ok(result.tasks.length >= 800, `found ${result.tasks.length} tasks`);
  } finally {
    await workload.stop();
    program.close();
  }
});

Deno.test("walk_tasks stops at its limit", () => {
  const program = loadObject("walk_tasks", bpfObject("walk_tasks"));
  try {
    const result = walk(program, 5);
    assert.equal(result.tasks.length, 5);
    assert.equal(result.last, RecordKind.End);
  } finally {
    program.close();
  }
});
