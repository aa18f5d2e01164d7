// Which variant of each eBPF program the IDS sends each kernel, decided offline from the objects'
// own instructions and the kernels' real BTF (tests/testdata/btf/vmlinux-*.btf.gz). That those
// variants load and run on each kernel: tests/vm/guest_test.ts (guests) and tests/bpf/walk_test.ts
// (this machine).
import assert from "node:assert/strict";
import { bpfObject, PROGRAM_NAMES, programVariants } from "../../bpf/objects.ts";
import { chooseVariant, objectNeeds } from "../../bpf/variants.ts";
import { Btf } from "../../ids/profile/btf.ts";
import { bpfFeatures } from "../../ids/profile/bpf_features.ts";
import { vmlinuxBtfBytes } from "../_helpers/profile_fixtures.ts";
import { expectedVariants } from "../_helpers/variants.ts";

const BPF_FUNC_LOOP = 181;
const WALKERS = ["walk_tasks", "walk_modules", "walk_plan", "walk_hash"] as const;

Deno.test("objectNeeds() finds bpf_loop and its callback's function pointer only in the loop variants", () => {
  for (const name of PROGRAM_NAMES) {
    for (const variant of programVariants(name)) {
      const needs = objectNeeds(bpfObject(name, variant));
      const label = `${name} (${variant})`;
      assert.equal(needs.helpers.includes(BPF_FUNC_LOOP), variant === "loop", label);
      assert.equal(needs.pseudoFunc, variant === "loop", label);
      // bpf_ringbuf_output (130) or bpf_ringbuf_reserve (131) and bpf_probe_read_kernel (113).
      assert.ok(needs.helpers.includes(113), label);
    }
  }
  assert.deepEqual(programVariants("read_page"), ["plain"]);
  for (const name of WALKERS) assert.deepEqual(programVariants(name), ["loop", "bounded"]);
});

Deno.test("objectNeeds() rejects bytes that are not an eBPF object", () => {
  assert.throws(
    () => objectNeeds(new TextEncoder().encode("not an ELF file at all, but long enough to read")),
    { message: "Not a 64-bit little-endian ELF object" },
  );
});

Deno.test("each kernel is sent the bounded walkers before 5.17 and the bpf_loop ones after", async (t) => {
  const cases = [
    ["5.10", "bounded", false],
    ["6.1", "loop", true],
    ["6.12", "loop", true],
    ["6.18", "loop", true],
  ] as const;
  for (const [kernel, walkers, pseudoFunc] of cases) {
    await t.step(kernel, async () => {
      const features = bpfFeatures(Btf.parse(await vmlinuxBtfBytes(kernel)));
      assert.equal(features.pseudoFunc, pseudoFunc);
      assert.equal(features.helpers.has(BPF_FUNC_LOOP), walkers === "loop");
      const chosen = Object.fromEntries(PROGRAM_NAMES.map((n) => [n, chooseVariant(n, features)]));
      assert.deepEqual(chosen, expectedVariants(walkers));
    });
  }
});

Deno.test("chooseVariant() says what every variant lacks when none fits", () => {
  const features = { helpers: new Set([1, 2, 14, 35, 113, 130, 131, 132, 133]), pseudoFunc: false };
  assert.throws(() => chooseVariant("walk_tasks", features), {
    message: "No variant of walk_tasks can load on this kernel: " +
      "loop needs helper 134, helper 181, function pointers (BPF_PSEUDO_FUNC, Linux 5.13); " +
      "bounded needs helper 134",
  });
});
