import assert from "node:assert/strict";
import { KernelProfile, ProfileError } from "../../../ids/profile/profile.ts";
import type { Btf } from "../../../ids/profile/btf.ts";
import type { Kallsyms } from "../../../ids/profile/kallsyms.ts";
import { fixtureBtf, fixtureKallsyms } from "../../_helpers/profile_fixtures.ts";

function profile(btf: Btf, kallsyms: Kallsyms = fixtureKallsyms("guest-6.1")): KernelProfile {
  return new KernelProfile({ release: "test", btf, kallsyms, pageSize: 4096 });
}

Deno.test("KernelProfile reads the release, the page size and struct list_head", () => {
  const p = profile(fixtureBtf("module_6_4"));
  assert.equal(p.release, "test");
  assert.equal(p.pageSize, 4096);
  assert.deepEqual(p.listHead, {
    size: 16,
    next: { offset: 0, size: 8 },
    prev: { offset: 8, size: 8 },
  });
});

Deno.test("KernelProfile reads init_task and the text range from kallsyms", () => {
  const p = profile(fixtureBtf("module_6_4"));
  assert.equal(p.initTask, 0xffffffff82613940n);
  assert.deepEqual(p.text, { start: 0xffffffff81000000n, end: 0xffffffff81e00000n });
});

Deno.test("KernelProfile of a kernel without data symbols has no init_task, and the text range", () => {
  // This machine: CONFIG_MODULES off and no data symbols.
  const p = profile(fixtureBtf("module_6_4"), fixtureKallsyms("machine-6.18"));
  assert.equal(p.initTask, undefined);
  assert.deepEqual(p.text, { start: 0xffffffff81000000n, end: 0xffffffff82276f48n });
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
