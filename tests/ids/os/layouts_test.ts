// The views' layouts (ids/os/tasks_layout.ts, modules_layout.ts) on small BTF fixtures: each
// kernel drift decision, and what a kernel without modules or with a broken task_struct gets.
import assert from "node:assert/strict";
import { KernelProfile, ProfileError } from "../../../ids/profile/profile.ts";
import type { Btf } from "../../../ids/profile/btf.ts";
import type { Kallsyms } from "../../../ids/profile/kallsyms.ts";
import { credLayout, taskLayout } from "../../../ids/os/tasks_layout.ts";
import { moduleLayout, moduleLayoutNote, moduleStateName } from "../../../ids/os/modules_layout.ts";
import { fixtureBtf, fixtureKallsyms } from "../../_helpers/profile_fixtures.ts";

function profile(btf: Btf, kallsyms: Kallsyms = fixtureKallsyms("guest-6.1")): KernelProfile {
  return new KernelProfile({ release: "test", btf, kallsyms, pageSize: 4096 });
}

Deno.test("taskLayout() and credLayout() read the task_struct and cred layout of a 5.14+ kernel (__state)", () => {
  const p = profile(fixtureBtf("module_6_4"));
  assert.deepEqual(taskLayout(p), {
    size: 160,
    tasks: { offset: 40, size: 16 },
    pid: { offset: 68, size: 4 },
    tgid: { offset: 72, size: 4 },
    real_parent: { offset: 80, size: 8 },
    group_leader: { offset: 112, size: 8 },
    comm: { offset: 136, size: 16 },
    cred: { offset: 128, size: 8 },
    real_cred: { offset: 120, size: 8 },
    flags: { offset: 24, size: 4 },
    state: { offset: 8, size: 4 },
    stateMember: "__state",
    exit_state: { offset: 64, size: 4 },
  });
  assert.deepEqual(credLayout(p), {
    size: 32,
    uid: { offset: 4, size: 4 },
    euid: { offset: 20, size: 4 },
    gid: { offset: 8, size: 4 },
  });
});

Deno.test("taskLayout() reads the task_struct layout of a pre-5.14 kernel (state)", () => {
  const p = profile(fixtureBtf("module_6_1"));
  assert.equal(taskLayout(p).stateMember, "state");
  assert.deepEqual(taskLayout(p).state, { offset: 8, size: 8 });
  assert.deepEqual(taskLayout(p).tasks, { offset: 40, size: 16 });
});

Deno.test("moduleLayout() takes module base and sizes from mem[] on 6.4+", () => {
  const p = profile(fixtureBtf("module_6_4"));
  const modules = moduleLayout(p);
  assert.ok(modules, moduleLayoutNote(p));
  assert.equal(moduleLayoutNote(p), undefined);
  assert.equal(modules.listHead, 0xffffffff8264b6f0n);
  assert.equal(modules.size, 224);
  assert.deepEqual(modules.list, { offset: 8, size: 16 });
  assert.deepEqual(modules.name, { offset: 24, size: 56, length: 56 });
  assert.deepEqual(modules.state, { offset: 0, size: 4 });
  assert.equal(modules.memory.source, "mem");
  assert.deepEqual(modules.memory.base, { offset: 104, size: 8 });
  // One size per mod_mem_type below MOD_MEM_NUM_TYPES, as /proc/modules adds them.
  assert.deepEqual(
    modules.memory.sizes,
    [0, 1, 2, 3, 4, 5, 6].map((t) => ({ offset: 104 + 16 * t + 12, size: 4 })),
  );
  assert.deepEqual(modules.states, {
    MODULE_STATE_LIVE: 0,
    MODULE_STATE_COMING: 1,
    MODULE_STATE_GOING: 2,
    MODULE_STATE_UNFORMED: 3,
  });
  assert.equal(moduleStateName(p, 2), "MODULE_STATE_GOING");
  assert.equal(moduleStateName(p, 9), undefined);
});

Deno.test("moduleLayout() takes module base and sizes from core_layout on 4.5 to 6.3", () => {
  const memory = moduleLayout(profile(fixtureBtf("module_6_1")))?.memory;
  assert.deepEqual(memory, {
    source: "core_layout",
    base: { offset: 128, size: 8 },
    sizes: [{ offset: 136, size: 4 }, { offset: 192, size: 4 }],
  });
});

Deno.test("moduleLayout() takes module base and sizes from module_core before 4.5", () => {
  const memory = moduleLayout(profile(fixtureBtf("module_4_4")))?.memory;
  assert.deepEqual(memory, {
    source: "module_core",
    base: { offset: 96, size: 8 },
    sizes: [{ offset: 108, size: 4 }, { offset: 104, size: 4 }],
  });
});

Deno.test("moduleLayoutNote() explains a missing module list when kallsyms has no modules symbol", () => {
  // This machine: CONFIG_MODULES off and no data symbols; its BTF still has struct module.
  const p = profile(fixtureBtf("module_6_4"), fixtureKallsyms("machine-6.18"));
  assert.equal(moduleLayout(p), undefined);
  assert.match(
    moduleLayoutNote(p) ?? "",
    /^Kernel has no module list: kallsyms has no data symbol modules/,
  );
  assert.equal(taskLayout(p).stateMember, "__state");
});

Deno.test("moduleLayoutNote() explains a missing module list when BTF has no struct module", () => {
  const p = profile(fixtureBtf("no_module"));
  assert.equal(moduleLayout(p), undefined);
  assert.equal(
    moduleLayoutNote(p),
    "Kernel has no module list: BTF has no struct module (CONFIG_MODULES off)",
  );
  assert.equal(moduleStateName(p, 0), undefined);
});

Deno.test("taskLayout() refuses a task_struct without a mandatory member", () => {
  assert.throws(
    () => taskLayout(profile(fixtureBtf("drift_missing"))),
    new ProfileError("Kernel profile: struct task_struct has no member tasks"),
  );
});
