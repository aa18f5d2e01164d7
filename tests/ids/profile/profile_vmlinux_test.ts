// The profile of this machine's own kernel (Linux 6.18, CONFIG_MODULES off, kallsyms without data
// symbols), from the captured BTF and a kallsyms excerpt. Offsets checked with bpftool.
import assert from "node:assert/strict";
import { Btf } from "../../../ids/profile/btf.ts";
import { KernelProfile } from "../../../ids/profile/profile.ts";
import { credLayout, taskLayout } from "../../../ids/os/tasks_layout.ts";
import { moduleLayout, moduleLayoutNote } from "../../../ids/os/modules_layout.ts";
import { fixtureKallsyms, vmlinuxBtfBytes } from "../../_helpers/profile_fixtures.ts";

Deno.test("KernelProfile of a real 6.18 kernel has task layouts and no module list", async () => {
  const p = new KernelProfile({
    release: "6.18.44",
    btf: Btf.parse(await vmlinuxBtfBytes()),
    kallsyms: fixtureKallsyms("machine-6.18"),
    pageSize: 4096,
  });
  assert.equal(taskLayout(p).size, 3264);
  assert.equal(taskLayout(p).stateMember, "__state");
  assert.deepEqual(taskLayout(p).state, { offset: 24, size: 4 });
  assert.deepEqual(taskLayout(p).tasks, { offset: 1056, size: 16 });
  assert.deepEqual(taskLayout(p).comm, { offset: 1752, size: 16 });
  assert.deepEqual(taskLayout(p).real_parent, { offset: 1280, size: 8 });
  assert.equal(credLayout(p).size, 184);
  assert.deepEqual(credLayout(p).euid, { offset: 24, size: 4 });
  assert.equal(p.initTask, undefined);
  assert.equal(moduleLayout(p), undefined);
  assert.match(moduleLayoutNote(p) ?? "", /kallsyms has no data symbol modules/);
});

Deno.test("KernelProfile of a real 6.18 BTF with a modules symbol uses mem[]", async () => {
  // Same BTF as if kallsyms had data symbols: struct module is in BTF even without modules.
  const p = new KernelProfile({
    release: "6.18.44",
    btf: Btf.parse(await vmlinuxBtfBytes()),
    kallsyms: fixtureKallsyms("guest-6.1"),
    pageSize: 4096,
  });
  const modules = moduleLayout(p);
  assert.ok(modules);
  assert.equal(modules.memory.source, "mem");
  assert.deepEqual(modules.memory.base, { offset: 320, size: 8 });
  assert.equal(modules.memory.sizes.length, 7);
  assert.deepEqual(modules.memory.sizes[6], { offset: 428, size: 4 });
  assert.deepEqual(modules.name, { offset: 24, size: 56, length: 56 });
  assert.deepEqual(modules.list, { offset: 8, size: 16 });
});
