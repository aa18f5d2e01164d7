/**
 * What every walker variant must do, run through any way of loading and
 * firing a program (directly on this machine, or through a guest's agent):
 * resume a walk across fires, end a looping list with a FAULT record (never a
 * hang), and stop at its limit. Used by tests/bpf/walk_test.ts (this
 * machine's kernel) and tests/vm/guest_test.ts (each guest kernel).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ProgramName, VariantName } from "../../bpf/objects.ts";
import { AddrTag, type BpfRecord, FaultCode, FieldsOf, RecordKind } from "../../bpf/records.ts";
import { encodeListWalk } from "../../ids/memory/bulk.ts";
import { encodePlan } from "../../ids/memory/plan.ts";

/** Loads `name` in `variant`, runs it once to its end with `params`, unloads it. */
export type WalkRunner = (
  name: ProgramName,
  variant: VariantName,
  params: Uint8Array,
) => Promise<{ records: BpfRecord[]; fires: number }>;

/** Offsets in the kernel's `task_struct`. */
export interface TaskOffsets {
  /** `tasks` (the task list's node). */
  tasks: number;
  /** `children` (a list head; empty for a task without children). */
  children: number;
  /** `pid`. */
  pid: number;
}

/** Objects one fire of a bounded walker visits at most (BATCH_UNROLLED in bpf/walk.h). */
export const BOUNDED_BATCH = 32;

const ALL = 0xffff_ffff;

/**
 * Runs the scenarios on `variant` of the walkers; `minTasks` is how many tasks
 * the kernel has at least (more than {@link BOUNDED_BATCH} makes the bounded
 * walks span several fires).
 */
export async function checkWalkVariant(
  run: WalkRunner,
  variant: VariantName,
  offsets: TaskOffsets,
  minTasks: number,
  modulesHead?: bigint,
): Promise<void> {
  const label = (what: string) => `${what} (${variant})`;
  const fireBound = (objects: number) =>
    variant === "bounded" ? Math.ceil(objects / BOUNDED_BATCH) : 1;

  // walk_tasks: the whole list, resumed across fires on the bounded path.
  const tasks = await run("walk_tasks", variant, encodeListWalk(0n, ALL));
  const taskAddrs = tasks.records.filter((r) =>
    r.kind === RecordKind.Addr && r.value === BigInt(AddrTag.Task)
  ).map((r) => r.addr);
  const tasksEnd = tasks.records.at(-1);
  assert.equal(tasksEnd?.kind, RecordKind.End, label("walk_tasks ends with END"));
  assert.equal(Number(tasksEnd.value), taskAddrs.length, label("walk_tasks counts its tasks"));
  assert.ok(taskAddrs.length >= minTasks, label(`walk_tasks found ${taskAddrs.length} tasks`));
  assert.equal(new Set(taskAddrs).size, taskAddrs.length, label("walk_tasks: no task twice"));
  assert.ok(
    tasks.fires >= fireBound(taskAddrs.length),
    label(`walk_tasks: ${tasks.fires} fires for ${taskAddrs.length} tasks`),
  );

  // walk_tasks stops at its limit.
  const limited = await run("walk_tasks", variant, encodeListWalk(0n, 5));
  assert.equal(
    limited.records.filter((r) => r.kind === RecordKind.Addr && r.value === BigInt(AddrTag.Task))
      .length,
    5,
    label("walk_tasks stops at its limit"),
  );
  assert.equal(limited.records.at(-1)?.kind, RecordKind.End, label("a limited walk ends"));

  // walk_plan over the task list: each task's pid and children head, across fires.
  const plan = {
    link: offsets.tasks,
    ranges: [{ offset: offsets.pid, len: 4 }, { offset: offsets.children, len: 16 }],
    follows: [],
  };
  const planned = await run(
    "walk_plan",
    variant,
    encodePlan(plan, { addr: 0n, isHead: false, limit: ALL }),
  );
  const objects = planned.records.filter((r) =>
    r.kind === RecordKind.Fields && r.value === BigInt(FieldsOf.Object)
  );
  const planEnd = planned.records.at(-1);
  assert.equal(planEnd?.kind, RecordKind.End, label("walk_plan ends with END"));
  assert.equal(Number(planEnd.value), objects.length, label("walk_plan counts its objects"));
  assert.ok(objects.length >= minTasks, label(`walk_plan found ${objects.length} tasks`));
  assert.ok(
    planned.fires >= fireBound(objects.length),
    label(`walk_plan: ${planned.fires} fires for ${objects.length} tasks`),
  );

  // A looping list: from the `prev` word of an empty list head L, the chain goes to L, and L
  // points to itself — a cycle that never comes back to the start. It ends in a FAULT record.
  const empty = objects.find((r) => {
    const view = new DataView(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength);
    const head = r.addr + BigInt(offsets.children);
    return view.getBigUint64(4, true) === head && view.getBigUint64(12, true) === head;
  });
  assert.ok(empty, label("a task without children"));
  const head = empty.addr + BigInt(offsets.children);
  const looped = await run(
    "walk_plan",
    variant,
    encodePlan({ link: 0, ranges: [{ offset: 0, len: 8 }], follows: [] }, {
      addr: head + 8n,
      isHead: false,
      limit: ALL,
    }),
  );
  const fault = looped.records.at(-1);
  assert.equal(fault?.kind, RecordKind.Fault, label("a looping list ends with a FAULT record"));
  assert.equal(fault.addr, head, label("the FAULT names where the list looped"));
  assert.equal(fault.value, BigInt(-FaultCode.Cycle), label("the FAULT says the list loops"));
  assert.equal(looped.fires, 1, label("a looping list ends in one fire"));

  // walk_modules: the module list, when the kernel has one.
  if (modulesHead !== undefined) {
    const modules = await run("walk_modules", variant, encodeListWalk(modulesHead, ALL));
    const found = modules.records.filter((r) =>
      r.kind === RecordKind.Addr && r.value === BigInt(AddrTag.Module)
    );
    const end = modules.records.at(-1);
    assert.equal(end?.kind, RecordKind.End, label("walk_modules ends with END"));
    assert.equal(Number(end.value), found.length, label("walk_modules counts its modules"));
    assert.ok(found.length > 0, label("walk_modules found modules"));
  }
}
