import assert from "node:assert/strict";
import { KernelProfile, ProfileError } from "../../../ids/profile/profile.ts";
import type { Btf } from "../../../ids/profile/btf.ts";
import type { Kallsyms } from "../../../ids/profile/kallsyms.ts";
import { fixtureBtf, fixtureKallsyms } from "../../_helpers/profile_fixtures.ts";

function profile(btf: Btf, kallsyms: Kallsyms = fixtureKallsyms("guest-6.1")): KernelProfile {
  return new KernelProfile({ release: "test", btf, kallsyms, pageSize: 4096 });
}

Deno.test("KernelProfile reads the task_struct layout of a 5.14+ kernel (__state)", () => {
  const p = profile(fixtureBtf("module_6_4"));
  assert.equal(p.release, "test");
  assert.equal(p.pageSize, 4096);
  assert.deepEqual(p.tasks, {
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
  assert.deepEqual(p.cred, {
    size: 32,
    uid: { offset: 4, size: 4 },
    euid: { offset: 20, size: 4 },
    gid: { offset: 8, size: 4 },
  });
  assert.deepEqual(p.listHead, {
    size: 16,
    next: { offset: 0, size: 8 },
    prev: { offset: 8, size: 8 },
  });
});

Deno.test("KernelProfile reads the task_struct layout of a pre-5.14 kernel (state)", () => {
  const p = profile(fixtureBtf("module_6_1"));
  assert.equal(p.tasks.stateMember, "state");
  assert.deepEqual(p.tasks.state, { offset: 8, size: 8 });
  assert.deepEqual(p.tasks.tasks, { offset: 40, size: 16 });
});

Deno.test("KernelProfile takes module base and sizes from mem[] on 6.4+", () => {
  const p = profile(fixtureBtf("module_6_4"));
  const modules = p.modules;
  assert.ok(modules, p.modulesNote);
  assert.equal(p.modulesNote, undefined);
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
  assert.equal(p.moduleStateName(2), "MODULE_STATE_GOING");
  assert.equal(p.moduleStateName(9), undefined);
});

Deno.test("KernelProfile takes module base and sizes from core_layout on 4.5 to 6.3", () => {
  const memory = profile(fixtureBtf("module_6_1")).modules?.memory;
  assert.deepEqual(memory, {
    source: "core_layout",
    base: { offset: 128, size: 8 },
    sizes: [{ offset: 136, size: 4 }, { offset: 192, size: 4 }],
  });
});

Deno.test("KernelProfile takes module base and sizes from module_core before 4.5", () => {
  const memory = profile(fixtureBtf("module_4_4")).modules?.memory;
  assert.deepEqual(memory, {
    source: "module_core",
    base: { offset: 96, size: 8 },
    sizes: [{ offset: 108, size: 4 }, { offset: 104, size: 4 }],
  });
});

Deno.test("KernelProfile reads init_task and the text range from kallsyms", () => {
  const p = profile(fixtureBtf("module_6_4"));
  assert.equal(p.initTask, 0xffffffff82613940n);
  assert.deepEqual(p.text, { start: 0xffffffff81000000n, end: 0xffffffff81e00000n });
});

Deno.test("KernelProfile explains a missing module list when kallsyms has no modules symbol", () => {
  // This machine: CONFIG_MODULES off and no data symbols; its BTF still has struct module.
  const p = profile(fixtureBtf("module_6_4"), fixtureKallsyms("machine-6.18"));
  assert.equal(p.modules, undefined);
  assert.match(
    p.modulesNote ?? "",
    /^Kernel has no module list: kallsyms has no data symbol modules/,
  );
  assert.equal(p.initTask, undefined);
  assert.equal(p.tasks.stateMember, "__state");
  assert.deepEqual(p.text, { start: 0xffffffff81000000n, end: 0xffffffff82276f48n });
});

Deno.test("KernelProfile explains a missing module list when BTF has no struct module", () => {
  const p = profile(fixtureBtf("no_module"));
  assert.equal(p.modules, undefined);
  assert.equal(
    p.modulesNote,
    "Kernel has no module list: BTF has no struct module (CONFIG_MODULES off)",
  );
  assert.equal(p.moduleStateName(0), undefined);
});

Deno.test("KernelProfile refuses a task_struct without a mandatory member", () => {
  assert.throws(
    () => profile(fixtureBtf("drift_missing")),
    new ProfileError("Kernel profile: struct task_struct has no member tasks"),
  );
});

Deno.test("KernelProfile refuses BTF without the kernel structs it needs", () => {
  assert.throws(
    () => profile(fixtureBtf("kinds")),
    new ProfileError("Kernel profile: BTF has no struct list_head"),
  );
});

Deno.test("KernelProfile refuses restricted kallsyms", () => {
  assert.throws(
    () => profile(fixtureBtf("module_6_4"), fixtureKallsyms("restricted")),
    /^ProfileError: Kernel profile: kallsyms addresses are all zero/,
  );
});
