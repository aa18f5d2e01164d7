// Facts checked against `bpftool btf dump file /sys/kernel/btf/vmlinux format raw` on the machine
// the fixture was captured on (Linux 6.18, x86-64, CONFIG_MODULES off).
import assert from "node:assert/strict";
import { Btf } from "../../../ids/profile/btf.ts";
import { vmlinuxBtfBytes } from "../../_helpers/profile_fixtures.ts";

const bytes = await vmlinuxBtfBytes();

Deno.test("Btf.parse() reads a real 6.18 vmlinux BTF", () => {
  // How long it takes: bench/decode_bounds.ts.
  const btf = Btf.parse(bytes);
  assert.equal(btf.typeCount, 126700);
});

Deno.test("Btf finds task_struct, cred and list_head facts of a real 6.18 kernel", () => {
  const btf = Btf.parse(bytes);
  assert.equal(btf.structSize("task_struct"), 3264);
  assert.equal(btf.structSize("cred"), 184);
  assert.equal(btf.structSize("list_head"), 16);
  const offsets = Object.fromEntries(
    [
      "__state",
      "flags",
      "tasks",
      "pid",
      "tgid",
      "real_parent",
      "group_leader",
      "real_cred",
      "cred",
      "comm",
    ]
      .map((m) => [m, btf.memberOf("task_struct", m)?.offset]),
  );
  assert.deepEqual(offsets, {
    __state: 24,
    flags: 44,
    tasks: 1056,
    pid: 1264,
    tgid: 1268,
    real_parent: 1280,
    group_leader: 1328,
    real_cred: 1728,
    cred: 1736,
    comm: 1752,
  });
  assert.equal(btf.memberOf("task_struct", "comm")?.size, 16);
  assert.equal(btf.memberOf("task_struct", "state"), undefined);
  assert.equal(btf.memberOf("cred", "uid.val")?.offset, 8);
  assert.equal(btf.memberOf("cred", "gid.val")?.offset, 12);
  assert.equal(btf.memberOf("cred", "euid.val")?.offset, 24);
});

Deno.test("Btf finds struct module with mem[] in a real 6.18 kernel", () => {
  const btf = Btf.parse(bytes);
  assert.equal(btf.structSize("module"), 768);
  const mem = btf.memberOf("module", "mem");
  assert.ok(mem);
  assert.equal(mem.offset, 320);
  assert.equal(btf.array(mem.typeId)?.count, 7);
  assert.equal(btf.structSize("module_memory"), 16);
  assert.equal(btf.memberOf("module", "mem[6].size")?.offset, 320 + 6 * 16 + 12);
  assert.equal(btf.memberOf("module", "core_layout"), undefined);
  assert.equal(btf.memberOf("module", "name")?.size, 56);
  assert.equal(btf.enumValue("module_state", "MODULE_STATE_UNFORMED"), 3);
  assert.equal(btf.enumValue("mod_mem_type", "MOD_MEM_NUM_TYPES"), 7);
  assert.equal(btf.enumValue("mod_mem_type", "MOD_INVALID"), -1);
});
