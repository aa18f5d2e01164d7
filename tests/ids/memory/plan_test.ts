// Capture plans for fields mode, offline: coalescing, the walker's parameter layout, plans
// learned from the views' readers, and a walk simulated over captured memory that must need
// nothing beyond what the plan captures.
import assert from "node:assert/strict";
import { FieldsOf, RecordKind } from "../../../bpf/records.ts";
import { KernelMemory } from "../../../ids/memory/memory.ts";
import { PageCache } from "../../../ids/memory/page_cache.ts";
import {
  type CapturePlan,
  coalesce,
  encodePlan,
  PLAN_LIMITS,
  storeFields,
} from "../../../ids/memory/plan.ts";
import { RangeCache } from "../../../ids/memory/range_cache.ts";
import { listTasks } from "../../../ids/os/tasks.ts";
import { hex } from "../../../ids/cli/format.ts";
import { fixtureCache, fixtureProfile, loadMemoryFixture } from "../../_helpers/memory_fixture.ts";
import { taskCapturePlan } from "../../../ids/os/process_view.ts";
import { credLayout, taskLayout } from "../../../ids/os/tasks_layout.ts";

const fixture = await loadMemoryFixture("host-6.18");
const profile = await fixtureProfile(fixture);

Deno.test("coalesce() sorts, merges overlapping and nearby ranges, and keeps ranges copyable", () => {
  assert.deepEqual(
    coalesce([{ offset: 50, len: 4 }, { offset: 0, len: 8 }, { offset: 4, len: 8 }, {
      offset: 30,
      len: 4,
    }]),
    [{ offset: 0, len: 12 }, { offset: 30, len: 4 }, { offset: 50, len: 4 }],
  );
  assert.deepEqual(coalesce([{ offset: 0, len: 4 }, { offset: 12, len: 4 }]), [{
    offset: 0,
    len: 16,
  }], "a gap of 8 bytes rides along");
  const long = coalesce([{ offset: 0, len: 200 }, { offset: 200, len: 100 }]);
  assert.equal(long.length, 2, "no merged range is longer than the walker copies at once");
});

Deno.test("encodePlan() lays the plan out as struct walk_plan_params after the agent's header", () => {
  const plan: CapturePlan = {
    link: 1056,
    ranges: [{ offset: 24, len: 4 }, { offset: 1056, len: 8 }],
    follows: [{ pointer: 1728, ranges: [{ offset: 8, len: 20 }] }],
  };
  const bytes = encodePlan(plan, { addr: 0xffff_8881_0000_0000n, isHead: false, limit: 101 });
  const view = new DataView(bytes.buffer);
  assert.equal(bytes.length, 228);
  assert.equal(view.getBigUint64(0, true), 0xffff_8881_0000_0000n);
  assert.equal(view.getUint32(8, true), 101);
  assert.equal(view.getUint16(12, true), 1056);
  assert.deepEqual([view.getUint8(14), view.getUint8(15), view.getUint8(16)], [0, 2, 1]);
  assert.deepEqual([view.getUint16(24, true), view.getUint16(26, true)], [24, 4]);
  assert.deepEqual([view.getUint16(28, true), view.getUint16(30, true)], [1056, 8]);
  const follow = 24 + PLAN_LIMITS.ranges * 4;
  assert.deepEqual(
    [view.getUint16(follow, true), view.getUint16(follow + 2, true)],
    [1728, 1],
  );
  assert.deepEqual([view.getUint16(follow + 4, true), view.getUint16(follow + 6, true)], [8, 20]);
});

Deno.test("encodePlan() refuses plans the walker cannot carry out", () => {
  const start = { addr: 0n, isHead: false, limit: 1 };
  const many = Array.from({ length: 13 }, (_, i) => ({ offset: i * 100, len: 4 }));
  assert.throws(() => encodePlan({ link: 0, ranges: many, follows: [] }, start), /13 ranges/);
  assert.throws(
    () => encodePlan({ link: 0, ranges: [{ offset: 0, len: 300 }], follows: [] }, start),
    /cannot copy/,
  );
  const follow = { pointer: 0, ranges: [{ offset: 0, len: 4 }] };
  assert.throws(
    () => encodePlan({ link: 0, ranges: [], follows: [follow, follow, follow, follow] }, start),
    /4 follows/,
  );
});

Deno.test("the task plan is learned from readTask: its members, real_cred's ids, real_parent's tgid", async () => {
  const plan = await taskCapturePlan(profile);
  const t = taskLayout(profile);
  const covers = (ranges: CapturePlan["ranges"], offset: number, len: number) =>
    ranges.some((r) => r.offset <= offset && offset + len <= r.offset + r.len);
  for (const member of [t.pid, t.tgid, t.comm, t.real_cred, t.real_parent, t.flags, t.state]) {
    assert.ok(covers(plan.ranges, member.offset, member.size), `covers offset ${member.offset}`);
  }
  assert.ok(covers(plan.ranges, plan.link, 8), "the list link is captured");
  const byPointer = new Map(plan.follows.map((f) => [f.pointer, f.ranges]));
  const cred = byPointer.get(t.real_cred.offset);
  assert.ok(cred, "real_cred is followed");
  for (const id of [credLayout(profile).uid, credLayout(profile).euid, credLayout(profile).gid]) {
    assert.ok(covers(cred, id.offset, 4), `cred offset ${id.offset}`);
  }
  assert.deepEqual(byPointer.get(t.real_parent.offset), [{ offset: t.tgid.offset, len: 4 }]);
  assert.equal(byPointer.has(t.cred.offset), false, "cred (not real_cred) is not read");
});

/** What walk_plan would send for the fixture's tasks, made from the fixture's pages. */
async function simulatedCapture(plan: CapturePlan, pages: PageCache): Promise<RangeCache> {
  const source = new KernelMemory(pages);
  const ranges = new RangeCache();
  const start = BigInt(fixture.start);
  const record = async (addr: bigint, which: number, layout: CapturePlan["ranges"]) => {
    const parts = await Promise.all(layout.map((r) => source.read(addr + BigInt(r.offset), r.len)));
    const payload = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      payload.set(part, at);
      at += part.length;
    }
    storeFields(plan, { kind: RecordKind.Fields, addr, value: BigInt(which), payload }, ranges);
  };
  let task = start;
  do {
    await record(task, FieldsOf.Object, plan.ranges);
    for (const [i, follow] of plan.follows.entries()) {
      const target = await source.u64(task + BigInt(follow.pointer));
      if (target !== 0n) await record(target, FieldsOf.Follow0 + i, follow.ranges);
    }
    task = (await source.u64(task + BigInt(plan.link))) - BigInt(taskLayout(profile).tasks.offset);
  } while (task !== start);
  return ranges;
}

Deno.test("a walk with the task plan captures everything listTasks reads (no page needed)", async () => {
  const plan = await taskCapturePlan(profile);
  const ranges = await simulatedCapture(plan, fixtureCache(fixture));
  // No pages and no page source: any read outside the captured ranges is a fault.
  const memory = new KernelMemory(new PageCache(), undefined, ranges);
  const processes = await listTasks(memory, profile, { start: BigInt(fixture.start) });
  assert.deepEqual(processes.map((p) => ({ ...p, addr: hex(p.addr) })), fixture.expected);
});

Deno.test("storeFields() rejects a record shorter than its plan and an unknown part", () => {
  const plan: CapturePlan = { link: 0, ranges: [{ offset: 0, len: 8 }], follows: [] };
  const ranges = new RangeCache();
  const short = { kind: RecordKind.Fields, addr: 0x1000n, value: 0n, payload: new Uint8Array(4) };
  assert.throws(() => storeFields(plan, short, ranges), /shorter than its plan/);
  const unknown = { ...short, value: 7n, payload: new Uint8Array(8) };
  assert.throws(() => storeFields(plan, unknown, ranges), /unknown part 7/);
});

Deno.test("RangeCache finds a read inside a captured range, across a page boundary too", () => {
  const ranges = new RangeCache(4096);
  ranges.put(0xffff_8880_0000_0ffcn, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual([...ranges.get(0xffff_8880_0000_0ffen, 4)!], [3, 4, 5, 6]);
  assert.deepEqual([...ranges.get(0xffff_8880_0000_1000n, 4)!], [5, 6, 7, 8]);
  assert.equal(ranges.get(0xffff_8880_0000_1002n, 4), undefined, "runs past the range");
  assert.equal(ranges.size, 1);
});
