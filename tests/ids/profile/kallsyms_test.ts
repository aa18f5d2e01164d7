import assert from "node:assert/strict";
import { DATA_SYMBOL_TYPES, Kallsyms, KallsymsError } from "../../../ids/profile/kallsyms.ts";
import { fixtureKallsyms } from "../../_helpers/profile_fixtures.ts";

Deno.test("Kallsyms.parse() reads core and module symbols as bigints", () => {
  const ksyms = fixtureKallsyms("guest-6.1");
  assert.equal(ksyms.size, 24);
  assert.equal(ksyms.restricted, false);
  assert.equal(ksyms.lookup("init_task"), 0xffffffff82613940n);
  assert.deepEqual(ksyms.symbols("only_in_module"), [
    { name: "only_in_module", address: 0xffffffffc0b00000n, type: "t", module: "virtio_net" },
  ]);
  assert.equal(ksyms.lookup("only_in_module"), 0xffffffffc0b00000n);
  assert.equal(ksyms.lookup("no_such_symbol"), undefined);
});

Deno.test("Kallsyms.lookup() prefers core kernel symbols over module ones", () => {
  const ksyms = fixtureKallsyms("guest-6.1");
  // A module defining its own init_task must not shadow the kernel's.
  assert.equal(ksyms.lookup("init_task", { types: DATA_SYMBOL_TYPES }), 0xffffffff82613940n);
  assert.equal(ksyms.lookup("seq_show"), 0xffffffff810f0000n, "first core symbol in file order");
});

Deno.test("Kallsyms.lookup() prefers data symbols when asked for data", () => {
  const ksyms = fixtureKallsyms("guest-6.1");
  assert.equal(ksyms.lookup("modules", { types: DATA_SYMBOL_TYPES }), 0xffffffff8264b6f0n);
  assert.equal(ksyms.lookup("modules", { types: "T" }), 0xffffffff811fff00n);
  assert.equal(
    ksyms.lookup("last_unloaded_module", { types: DATA_SYMBOL_TYPES }),
    0xffffffff82a1c3c0n,
  );
  assert.equal(ksyms.lookup("schedule", { types: DATA_SYMBOL_TYPES }), undefined);
  assert.equal(ksyms.has("schedule", { types: "Tt" }), true);
});

Deno.test("Kallsyms.lookup() ranks candidates by the order of the requested types", () => {
  const ksyms = Kallsyms.parse(
    "ffffffff81000000 t dup\nffffffff82000000 D dup\nffffffff83000000 b dup\n",
  );
  assert.equal(ksyms.lookup("dup", { types: "bD" }), 0xffffffff83000000n);
  assert.equal(ksyms.lookup("dup", { types: "Db" }), 0xffffffff82000000n);
  assert.equal(ksyms.lookup("dup"), 0xffffffff81000000n);
});

Deno.test("Kallsyms.textRange() spans _stext to _etext", () => {
  assert.deepEqual(fixtureKallsyms("guest-6.1").textRange(), {
    start: 0xffffffff81000000n,
    end: 0xffffffff81e00000n,
  });
  assert.deepEqual(fixtureKallsyms("machine-6.18").textRange(), {
    start: 0xffffffff81000000n,
    end: 0xffffffff82276f48n,
  });
  assert.throws(
    () => Kallsyms.parse("ffffffff81000000 T _stext\n").textRange(),
    new KallsymsError("Cannot find the kernel text range: kallsyms has no _etext"),
  );
});

Deno.test("Kallsyms reports a kallsyms without data symbols by missing lookups", () => {
  const ksyms = fixtureKallsyms("machine-6.18");
  assert.equal(ksyms.restricted, false);
  assert.equal(ksyms.lookup("init_task", { types: DATA_SYMBOL_TYPES }), undefined);
  assert.equal(ksyms.lookup("x64_sys_call"), 0xffffffff812491a0n);
});

Deno.test("Kallsyms detects zeroed addresses and refuses lookups", () => {
  const ksyms = fixtureKallsyms("restricted");
  assert.equal(ksyms.restricted, true);
  assert.equal(ksyms.has("init_task"), true);
  assert.throws(
    () => ksyms.lookup("init_task"),
    new KallsymsError(
      "Cannot look up kernel symbol init_task: all kallsyms addresses are zero (kptr_restrict, or read without CAP_SYSLOG)",
    ),
  );
  assert.throws(() => ksyms.textRange(), /all kallsyms addresses are zero/);
  assert.equal(ksyms.lookup("no_such_symbol"), undefined);
});

Deno.test("Kallsyms.parse() rejects a malformed line with its number", () => {
  assert.throws(
    () => Kallsyms.parse("ffffffff81000000 T _stext\nnot a kallsyms line at all\n"),
    /^KallsymsError: Cannot parse kallsyms line 2: expected "address type name \[module\]"/,
  );
  assert.equal(Kallsyms.parse("").size, 0);
  assert.equal(Kallsyms.parse("").restricted, false);
});

Deno.test("Kallsyms.parse() reads a full-size kallsyms", () => {
  // How long it takes: bench/decode_bounds.ts.
  const lines: string[] = [];
  for (let i = 0; i < 150_000; i++) {
    lines.push(`${(0xffffffff81000000n + BigInt(i * 16)).toString(16)} t sym_${i}`);
  }
  const ksyms = Kallsyms.parse(lines.join("\n"));
  assert.equal(ksyms.size, 150_000);
  assert.equal(ksyms.lookup("sym_149999"), 0xffffffff81000000n + 149_999n * 16n);
});

Deno.test("Kallsyms.lookup() answers the same after many lookups build its index", () => {
  const ksyms = fixtureKallsyms("guest-6.1");
  const names = ["init_task", "modules", "seq_show", "only_in_module", "jiffies_64", "nope"];
  const first = names.map((n) => ksyms.lookup(n, { types: DATA_SYMBOL_TYPES }));
  for (let i = 0; i < 20; i++) ksyms.lookup("schedule");
  assert.deepEqual(names.map((n) => ksyms.lookup(n, { types: DATA_SYMBOL_TYPES })), first);
  assert.equal(ksyms.symbols("seq_show").length, 3);
});
