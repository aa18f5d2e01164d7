import assert from "node:assert/strict";
import { parseBaseline, takeBaseline } from "../../../ids/detect/baseline.ts";
import { baselineDetector } from "../../../ids/detect/baseline_drift.ts";
import type { Snapshot } from "../../../ids/detect/detector.ts";
import { DEFAULT_POLICY, matches, parsePolicy } from "../../../ids/detect/policy.ts";
import { policyDetector } from "../../../ids/detect/policy_violation.ts";
import type { ModuleInfo } from "../../../ids/os/modules.ts";
import type { ProcessInfo } from "../../../ids/os/tasks.ts";

const process = (pid: number, comm: string, uid = 0, kthread = false): ProcessInfo => ({
  pid,
  tgid: pid,
  ppid: 1,
  comm,
  uid,
  euid: uid,
  gid: uid,
  state: "S",
  kthread,
  addr: 0xffff888000000000n + BigInt(pid) * 0x4000n,
});
const module = (name: string): ModuleInfo => ({
  name,
  base: 0xffffffffc0000000n,
  size: 4096,
  state: "Live",
  addr: 0xffffffffc0001000n,
});

/** A snapshot of views only: these detectors read no memory. */
function snapshot(
  processes: ProcessInfo[],
  modules: ModuleInfo[],
  listening?: string[],
): Snapshot {
  const fail = () => Promise.reject(new Error("not read by this detector"));
  return {
    profile: undefined as never,
    mem: undefined as never,
    processes,
    taskListStart: processes[0]!.addr,
    modules,
    listening,
    retakeProcesses: fail,
    retakeModules: fail,
    freshMemory: () => undefined as never,
  };
}

Deno.test("parsePolicy() takes every key and refuses what it does not know", () => {
  const policy = parsePolicy(
    `{"processes":["sshd","kworker/*"],"modules":["ext4"],"listening":["tcp/22","udp/*"]}`,
  );
  assert.deepEqual(policy.processes, ["sshd", "kworker/*"]);
  assert.deepEqual(policy.root_from_user, DEFAULT_POLICY.root_from_user);
  assert.throws(() => parsePolicy(`{"process":[]}`), /unknown key "process"/);
  assert.throws(() => parsePolicy(`{"modules":"ext4"}`), /"modules" must be an array/);
  assert.throws(() => parsePolicy(`{"listening":["22"]}`), /not proto\/port/);
  assert.throws(() => parsePolicy(`{"listening":["tcp/70000"]}`), /not proto\/port/);
  assert.throws(() => parsePolicy(`[`, "policy p.json"), /Cannot parse policy p\.json/);
});

Deno.test("matches() takes exact names and prefixes before a trailing *", () => {
  assert.ok(matches("kworker/0:1", ["kworker/*"]));
  assert.ok(matches("tcp/22", ["tcp/*"]));
  assert.ok(!matches("sshd2", ["sshd"]));
  assert.ok(!matches("udp/22", ["tcp/*"]));
});

Deno.test("the policy detector reports user processes, modules and listeners not allowed", async () => {
  const policy = parsePolicy(
    `{"processes":["init","sh"],"modules":["virtio*"],"listening":["tcp/7070","udp/*"]}`,
  );
  const alerts = await policyDetector.run(
    snapshot(
      [process(1, "init"), process(2, "kthreadd", 0, true), process(99, "nc")],
      [module("virtio_net"), module("evil")],
      ["tcp/7070", "tcp/4444", "udp/53"],
    ),
    { policy },
  );
  assert.deepEqual(alerts.map((a) => a.summary), [
    "process nc (pid 99) is not allowed by the policy",
    "module evil is not allowed by the policy",
    "listening socket tcp/4444 is not allowed by the policy",
  ]);
  assert.deepEqual(await policyDetector.run(snapshot([process(99, "nc")], []), DEFAULT_CONFIG), []);
});

const DEFAULT_CONFIG = { policy: DEFAULT_POLICY };

Deno.test("the baseline detector reports what is new since the baseline, and round-trips it", async () => {
  const then = takeBaseline("6.1.0-56-amd64", [process(1, "init"), process(7, "sshd", 1000)], [
    module("ext4"),
  ], ["tcp/22"]);
  assert.deepEqual(then.root_processes, ["init"]); // sshd runs as uid 1000 here
  const baseline = parseBaseline(JSON.stringify(then));
  const alerts = await baselineDetector.run(
    snapshot(
      [process(1, "init"), process(50, "backdoor"), process(51, "worker", 1000)],
      [module("ext4"), module("rootkit")],
      ["tcp/22", "tcp/31337"],
    ),
    { policy: DEFAULT_POLICY, baseline },
  );
  assert.deepEqual(alerts.map((a) => a.summary), [
    "module rootkit is new since the baseline",
    "listening socket tcp/31337 is new since the baseline",
    "root process backdoor (pid 50) is new since the baseline",
  ]);
  await assert.rejects(
    () => baselineDetector.run(snapshot([process(1, "init")], []), DEFAULT_CONFIG),
    /no baseline given/,
  );
  assert.throws(() => parseBaseline(`{"version":2}`), /not an ebpfmonitor baseline/);
});
