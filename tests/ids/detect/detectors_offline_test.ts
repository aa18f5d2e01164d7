// Every detector runs offline, over memory captured from this machine (tests/testdata/memory,
// host-6.18: the pages of one bulk task walk) and a snapshot built from it: no agent, no Guest,
// no kernel. A clean snapshot raises no alert; a detector that needs memory the capture lacks
// says why it cannot run; what the policy or the baseline does not allow is reported.
import assert from "node:assert/strict";
import { KernelMemory } from "../../../ids/memory/memory.ts";
import { listTasks } from "../../../ids/os/tasks.ts";
import { DETECTORS } from "../../../ids/check/check.ts";
import type { DetectorConfig, Snapshot } from "../../../ids/detect/detector.ts";
import type { Alert } from "../../../ids/detect/alert.ts";
import { DEFAULT_POLICY } from "../../../ids/detect/policy.ts";
import { fixtureCache, fixtureProfile, loadMemoryFixture } from "../../_helpers/memory_fixture.ts";

const fixture = await loadMemoryFixture("host-6.18");
const profile = await fixtureProfile(fixture);
const start = BigInt(fixture.start);

/** A snapshot over the captured pages alone: a page the capture lacks is a fault. */
async function capturedSnapshot(): Promise<Snapshot> {
  const mem = new KernelMemory(fixtureCache(fixture));
  const processes = await listTasks(mem, profile, { start });
  return {
    profile,
    mem,
    processes,
    taskListStart: start,
    modules: [],
    listening: ["tcp/22"],
    retakeProcesses: () => listTasks(new KernelMemory(fixtureCache(fixture)), profile, { start }),
    retakeModules: () => Promise.resolve([]),
    freshMemory: () => new KernelMemory(fixtureCache(fixture)),
    captureList: () => Promise.resolve(),
  };
}

/** What `detector` does with `snapshot`: its alerts, or the error that stopped it, as text. */
async function outcome(
  name: string,
  snapshot: Snapshot,
  config: DetectorConfig = { policy: DEFAULT_POLICY },
): Promise<Alert[] | string> {
  const detector = DETECTORS.find((d) => d.name === name)!;
  try {
    return await detector.run(snapshot, config);
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

Deno.test("every detector has a case here", () => {
  assert.deepEqual(DETECTORS.map((d) => d.name), [
    "hidden_module",
    "syscall_hook",
    "hidden_process",
    "credentials",
    "policy",
    "baseline",
  ]);
});

Deno.test("each detector, run offline on the captured clean snapshot, alerts nothing or says why it cannot run", async (t) => {
  const cases: [string, Alert[] | string][] = [
    // This machine has no loadable modules and no data symbols in kallsyms.
    [
      "hidden_module",
      "DetectorSkipped: Kernel has no module list: kallsyms has no data symbol modules " +
      "(CONFIG_MODULES off, or kallsyms without data symbols: CONFIG_KALLSYMS_ALL off)",
    ],
    ["syscall_hook", "DetectorSkipped: kallsyms has neither sys_call_table nor x64_sys_call"],
    // The capture holds the task walk's pages, not the pid IDR's: a read beyond it faults.
    [
      "hidden_process",
      "MemoryFault: Cannot read guest memory at 0xffffffff83076000: not in the cache",
    ],
    ["credentials", []],
    ["policy", []],
    ["baseline", "DetectorSkipped: no baseline given (--baseline FILE)"],
  ];
  for (const [name, expected] of cases) {
    await t.step(name, async () => {
      assert.deepEqual(await outcome(name, await capturedSnapshot()), expected);
    });
  }
});

Deno.test("the policy and baseline detectors report what the captured snapshot breaks", async () => {
  const snapshot = await capturedSnapshot();
  const policy = await outcome("policy", snapshot, {
    policy: { ...DEFAULT_POLICY, listening: ["tcp/80"] },
  });
  assert.ok(typeof policy !== "string", policy as string);
  assert.deepEqual(policy.map((a) => a.summary), [
    "listening socket tcp/22 is not allowed by the policy",
  ]);
  const baseline = await outcome("baseline", snapshot, {
    policy: DEFAULT_POLICY,
    baseline: {
      version: 1,
      taken: "2026-01-01T00:00:00Z",
      release: fixture.release,
      modules: [],
      listening: [],
      root_processes: snapshot.processes.map((p) => p.comm),
    },
  });
  assert.ok(typeof baseline !== "string", baseline as string);
  assert.deepEqual(baseline.map((a) => a.summary), [
    "listening socket tcp/22 is new since the baseline",
  ]);
});
