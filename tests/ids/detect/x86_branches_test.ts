import assert from "node:assert/strict";
import { decodeBranches, DecodeError } from "../../../ids/detect/x86_branches.ts";
import { objdump } from "../../_helpers/objdump.ts";

// x64_sys_call() of this machine's 6.18 kernel, read through the agent (loaded at BASE).
const BASE = 0xffffffff812491a0n;
const code = await Deno.readFile(
  new URL("../../testdata/x86/x64_sys_call-6.18.bin", import.meta.url),
);
const inside = (target: bigint) => target >= BASE && target < BASE + BigInt(code.length);

Deno.test("decodeBranches() reads the whole of a real x64_sys_call", () => {
  const branches = decodeBranches(code, BASE);
  const jcc = branches.filter((b) => b.kind === "jcc");
  const exits = branches.filter((b) => b.kind === "jmp" || b.kind === "call");
  assert.ok(jcc.length > 300, `only ${jcc.length} conditional jumps`);
  assert.ok(jcc.every((b) => inside(b.target)), "a conditional jump leaves the function");
  // One tail jump per system call handler (some handlers serve several numbers).
  const handlers = new Set(exits.filter((b) => !inside(b.target)).map((b) => b.target));
  assert.ok(handlers.size > 350, `only ${handlers.size} handlers`);
  assert.equal(branches.filter((b) => b.kind === "indirect").length, 0);
});

Deno.test("decodeBranches() sees a patched tail jump go elsewhere", () => {
  const original = decodeBranches(code, BASE);
  const tail = original.find((b) => b.kind === "jmp" && !inside(b.target))!;
  const patched = code.slice();
  const hook = 0xffffffffc0a01000n; // a module address
  const rel = Number(hook - (BASE + BigInt(tail.offset + 5)));
  new DataView(patched.buffer).setInt32(tail.offset + 1, rel, true);
  const after = decodeBranches(patched, BASE);
  assert.equal(after.length, original.length);
  assert.equal(after.find((b) => b.offset === tail.offset)?.target, hook);
});

Deno.test("decodeBranches() reports an indirect jump and refuses unknown code", () => {
  // movabs rax, imm64; jmp rax: what a hook writes when rel32 cannot reach.
  const trampoline = new Uint8Array([0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xe0]);
  assert.deepEqual(decodeBranches(trampoline, 0n), [{ offset: 10, kind: "indirect", target: 0n }]);
  assert.throws(
    () => decodeBranches(new Uint8Array([0x90, 0x0f, 0x05]), 0n), // nop; syscall
    (e) => e instanceof DecodeError && e.offset === 1 && /0f 05/.test(e.message),
  );
  assert.throws(() => decodeBranches(new Uint8Array([0xe9, 0, 0]), 0n), DecodeError);
});

Deno.test("decodeBranches() finds the branches objdump finds in a real x64_sys_call", async () => {
  const reference = await objdump(code, BASE);
  assert.deepEqual(reference.bad, []);
  assert.deepEqual(decodeBranches(code, BASE), reference.branches);
});

Deno.test("decodeBranches() takes 16-bit immediates after an operand-size prefix, as objdump does", async () => {
  const bytes = new Uint8Array([
    ...[0x66, 0x81, 0xf8, 0x34, 0x12], // cmp ax, 0x1234
    ...[0xeb, 0x00], // jmp +0
    ...[0x66, 0xc7, 0x00, 0x34, 0x12], // mov word [rax], 0x1234
    ...[0x66, 0xb8, 0x34, 0x12], // mov ax, 0x1234
    ...[0x66, 0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8], // REX.W wins: movabs rax, imm64
    ...[0xff, 0xe0], // jmp rax
    ...[0xe8, 0, 0, 0, 0], // call +0
    ...[0x0f, 0x84, 0x10, 0, 0, 0], // je +16
    ...[0x66, 0x81, 0xc1, 0xe9, 0x00], // add cx, 0xe9: the e9 is an immediate, not a jmp
  ]);
  const base = 0xffffffff81000000n;
  const reference = await objdump(bytes, base);
  assert.deepEqual(reference.bad, []);
  const branches = decodeBranches(bytes, base);
  assert.deepEqual(branches, reference.branches);
  assert.deepEqual(branches.map((b) => b.offset), [5, 27, 29, 34]);
});

Deno.test("decodeBranches() refuses prefixes it cannot place", async (t) => {
  const cases: [string, number[]][] = [
    ["an operand-size prefix on a rel32 jump (rel16 on AMD)", [0x66, 0xe9, 0, 0, 0, 0]],
    ["an operand-size prefix on a conditional jump", [0x66, 0x0f, 0x84, 0, 0, 0, 0]],
    ["a legacy prefix after REX", [0x48, 0x66, 0xb8, 0x34, 0x12]],
    ["two REX prefixes", [0x48, 0x48, 0x89, 0xc0]],
    ["c7 /1 (no such instruction)", [0xc7, 0xc8, 0, 0, 0, 0]],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, () => {
      assert.throws(() => decodeBranches(new Uint8Array(bytes), 0n), DecodeError);
    });
  }
});
