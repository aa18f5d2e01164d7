// The process view over captured memory, with no kernel access: the pages of one bulk walk of
// this machine's task list (tests/testdata/memory/host-6.18.json.gz, written by
// tests/_helpers/capture.ts) and its captured BTF (tests/testdata/btf/vmlinux-6.18.btf.gz).
import assert from "node:assert/strict";
import { KernelMemory, MemoryFault } from "../../../ids/memory/memory.ts";
import type { PageCache } from "../../../ids/memory/page_cache.ts";
import { ListWalkError } from "../../../ids/os/list.ts";
import { Budget, DeadlinePassed, HostileAnswer } from "../../../ids/client/budget.ts";
import { listTasks, readTask, stateLetter } from "../../../ids/os/tasks.ts";
import type { KernelProfile } from "../../../ids/profile/profile.ts";
import { hex } from "../../../ids/cli/format.ts";
import {
  fixtureCache,
  fixtureProfile,
  loadMemoryFixture,
  type MemoryFixture,
} from "../../_helpers/memory_fixture.ts";
import { taskLayout } from "../../../ids/os/tasks_layout.ts";

const fixture = await loadMemoryFixture("host-6.18");
const profile = await fixtureProfile(fixture);
const start = BigInt(fixture.start);

/** The memory layer over the fixture's pages alone: a page it lacks is a fault. */
function memory(cache: PageCache = fixtureCache(fixture)): KernelMemory {
  return new KernelMemory(cache);
}

const asFixture = (p: Awaited<ReturnType<typeof listTasks>>[number]) => ({
  ...p,
  addr: hex(p.addr),
});

/** The task addresses in list order, read from the fixture. */
async function taskAddresses(): Promise<bigint[]> {
  return (await listTasks(memory(), profile, { start })).map((p) => p.addr);
}

/** Writes `value` as the tasks.next pointer of `task` in a copy of the fixture's pages. */
function withNext(
  fixture: MemoryFixture,
  profile: KernelProfile,
  task: bigint,
  value: bigint,
): PageCache {
  const cache = fixtureCache(fixture);
  const at = task + BigInt(taskLayout(profile).tasks.offset + profile.listHead.next.offset);
  const page = cache.pageOf(at);
  const bytes = cache.get(page);
  assert.ok(bytes, `the fixture holds the page of 0x${at.toString(16)}`);
  const copy = bytes.slice();
  new DataView(copy.buffer).setBigUint64(Number(at - page), value, true);
  cache.put(page, copy);
  return cache;
}

Deno.test("the memory fixture is small and comes from the captured BTF's kernel", () => {
  assert.match(fixture.release, /^6\.18\./);
  assert.equal(fixture.pageSize, 4096);
  assert.ok(Object.keys(fixture.pages).length > 10);
  assert.ok(fixture.expected.length > 10);
  assert.equal(profile.initTask, undefined, "no init_task: the walk starts at the agent's task");
});

Deno.test("listTasks over captured memory gives the ps result of capture time", async () => {
  const mem = memory();
  const processes = await listTasks(mem, profile, { start });
  assert.deepEqual(processes.map(asFixture), fixture.expected);
  assert.equal(mem.misses, 0);
});

Deno.test("listTasks over captured memory agrees with /proc of capture time", async () => {
  const processes = await listTasks(memory(), profile, { start });
  const byPid = new Map(processes.map((p) => [p.pid, p]));
  assert.ok(fixture.proc.length > 10);
  for (const proc of fixture.proc) {
    const seen = byPid.get(proc.pid);
    assert.ok(seen, `pid ${proc.pid} (${proc.comm}) was in /proc`);
    assert.equal(seen.ppid, proc.ppid, `ppid of ${proc.pid}`);
    assert.equal(seen.uid, proc.uid, `uid of ${proc.pid}`);
    // Kernel threads: 6.x /proc prints the kthread's full name or a kworker's workqueue after it.
    assert.ok(
      seen.comm === proc.comm || (proc.ppid === 2 && proc.fullComm.startsWith(seen.comm)),
      `comm of ${proc.pid}: ${seen.comm} in memory, ${proc.fullComm} in /proc`,
    );
  }
  assert.ok(processes.every((p) => p.pid !== 0), "the idle task is not listed");
  assert.equal(processes[0]?.addr, start, "the list starts at the start task");
  assert.equal(processes.find((p) => p.pid === 2)?.kthread, true);
  assert.equal(processes.find((p) => p.pid === 1)?.kthread, false);
});

Deno.test("listTasks stops after limit processes", async () => {
  const processes = await listTasks(memory(), profile, { start, limit: 7 });
  assert.deepEqual(processes.map(asFixture), fixture.expected.slice(0, 7));
});

Deno.test("listTasks starting from another task of the list lists the same processes", async () => {
  const third = BigInt(fixture.expected[2]!.addr);
  const processes = await listTasks(memory(), profile, { start: third });
  const sorted = (list: { pid: number }[]) => list.map((p) => p.pid).sort((a, b) => a - b);
  assert.deepEqual(sorted(processes), sorted(fixture.expected));
  assert.equal(processes[0]?.addr, third);
});

Deno.test("readTask reads one task_struct with its creds and parent", async () => {
  const expected = fixture.expected.find((p) => p.pid === 1)!;
  const task = await readTask(memory(), profile, BigInt(expected.addr));
  assert.deepEqual(asFixture(task), expected);
});

Deno.test("listTasks without init_task or a start task says why it cannot walk", async () => {
  await assert.rejects(listTasks(memory(), profile), /kallsyms has no init_task and no start task/);
});

Deno.test("listTasks reports a list whose next pointer loops back to an earlier task", async () => {
  const tasks = await taskAddresses();
  const [, second, , , fifth] = tasks;
  const cache = withNext(
    fixture,
    profile,
    fifth!,
    second! + BigInt(taskLayout(profile).tasks.offset),
  );
  const error = await listTasks(memory(cache), profile, { start }).catch((e) => e);
  assert.ok(error instanceof ListWalkError, String(error));
  assert.match(error.message, /task list .* loops back without reaching its start/);
  assert.equal(error.addr, fifth);
});

Deno.test("listTasks reports a next pointer outside kernel memory", async () => {
  const tasks = await taskAddresses();
  const third = tasks[2]!;
  const cache = withNext(fixture, profile, third, 0x1000n);
  const error = await listTasks(memory(cache), profile, { start }).catch((e) => e);
  assert.ok(error instanceof ListWalkError, String(error));
  assert.match(error.message, /next points outside kernel memory/);
  assert.equal(error.addr, third);
});

Deno.test("listTasks over memory missing a task's pages fails with MemoryFault", async () => {
  // A kernel address the walk never copied: the view cannot read it without a page source.
  const tasks = await taskAddresses();
  const cache = withNext(fixture, profile, tasks[3]!, 0xffff_8880_dead_0000n);
  await assert.rejects(listTasks(memory(cache), profile, { start }), MemoryFault);
});

Deno.test("stateLetter() gives the letters /proc shows", async (t) => {
  const cases: [string, number, number, string][] = [
    ["TASK_RUNNING", 0, 0, "R"],
    ["TASK_INTERRUPTIBLE", 1, 0, "S"],
    ["TASK_UNINTERRUPTIBLE", 2, 0, "D"],
    ["TASK_IDLE (UNINTERRUPTIBLE | NOLOAD)", 0x402, 0, "I"],
    ["__TASK_STOPPED", 4, 0, "T"],
    ["__TASK_TRACED", 8, 0, "t"],
    ["EXIT_DEAD", 0, 16, "X"],
    ["EXIT_ZOMBIE", 0, 32, "Z"],
    ["TASK_PARKED", 0x40, 0, "P"],
    ["TASK_KILLABLE (WAKEKILL | UNINTERRUPTIBLE)", 0x102, 0, "D"],
    ["TASK_FROZEN (6.1+)", 0x8000, 0, "D"],
    ["TASK_RTLOCK_WAIT (5.15+)", 0x1000, 0, "D"],
  ];
  for (const [name, state, exitState, letter] of cases) {
    await t.step(`${name} is ${letter}`, () => assert.equal(stateLetter(state, exitState), letter));
  }
});

Deno.test("listTasks refuses a list longer than maxTasks as a hostile answer naming max_tasks", async () => {
  const all = fixture.expected.length;
  assert.deepEqual(
    (await listTasks(memory(), profile, { start, maxTasks: all + 1 })).length,
    all,
    "a list within the ceiling is listed whole",
  );
  const error = await listTasks(memory(), profile, { start, maxTasks: 5 }).catch((e) => e);
  assert.ok(error instanceof HostileAnswer, String(error));
  assert.equal(error.limit, "max_tasks");
  assert.equal(
    error.message,
    "Hostile agent answer (hostile_agent): the task list holds more than 5 tasks (limit max_tasks)",
  );
});

Deno.test("a walk over cached memory stops at its budget's deadline", async () => {
  // The deadline has passed before the walk starts: its first paced look at the clock ends it.
  const budget = new Budget({ deadlineMs: 1, maxBytes: 1 << 20, maxRecords: 1 << 20 });
  await new Promise((resolve) => setTimeout(resolve, 5));
  const mem = new KernelMemory(fixtureCache(fixture), undefined, undefined, budget);
  await assert.rejects(listTasks(mem, profile, { start }), DeadlinePassed);
});
