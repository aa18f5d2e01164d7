import assert from "node:assert/strict";
import { Btf, BtfError, BtfKind } from "../../../ids/profile/btf.ts";
import { buildBtf, fixtureBtf, testdata } from "../../_helpers/profile_fixtures.ts";

Deno.test("Btf.parse() rejects a truncated header", () => {
  assert.throws(
    () => Btf.parse(new Uint8Array([0x9f, 0xeb, 1, 0])),
    new BtfError("Cannot parse BTF: truncated header (4 bytes, need 24)"),
  );
});

Deno.test("Btf.parse() rejects a bad magic", () => {
  const bytes = new Uint8Array(24);
  bytes.set([0x34, 0x12, 1]);
  assert.throws(() => Btf.parse(bytes), new BtfError("Cannot parse BTF: bad magic 0x1234"));
});

Deno.test("Btf.parse() rejects big-endian BTF", () => {
  const bytes = testdata("btf/task_5_14.btf").slice();
  bytes.set([0xeb, 0x9f]);
  assert.throws(() => Btf.parse(bytes), /big-endian BTF is not supported/);
});

Deno.test("Btf.parse() rejects an unsupported version", () => {
  const bytes = testdata("btf/task_5_14.btf").slice();
  bytes[2] = 2;
  assert.throws(() => Btf.parse(bytes), new BtfError("Cannot parse BTF: unsupported version 2"));
});

Deno.test("Btf.parse() rejects a blob cut short", async (t) => {
  const whole = testdata("btf/module_6_4.btf");
  await t.step("in the string section", () => {
    assert.throws(
      () => Btf.parse(whole.subarray(0, whole.length - 1)),
      /^BtfError: Cannot parse BTF: truncated string section/,
    );
  });
  await t.step("in the type section", () => {
    assert.throws(
      () => Btf.parse(whole.subarray(0, 100)),
      /^BtfError: Cannot parse BTF: truncated type section/,
    );
  });
});

Deno.test("Btf.parse() rejects a type record running past the type section", () => {
  // A struct claiming 3 members (36 bytes of trailer) with none present.
  const bytes = buildBtf([{ kind: BtfKind.STRUCT, name: "s", vlen: 3, sizeOrType: 8 }]);
  assert.throws(
    () => Btf.parse(bytes),
    new BtfError("Cannot parse BTF: truncated type 1 at offset 24"),
  );
});

Deno.test("Btf.parse() rejects an unknown kind", () => {
  const bytes = buildBtf([
    { kind: BtfKind.INT, name: "int", sizeOrType: 4, extra: [32] },
    { kind: 25, name: "future", sizeOrType: 0 },
  ]);
  assert.throws(
    () => Btf.parse(bytes),
    new BtfError("Cannot parse BTF: unknown kind 25 of type 2"),
  );
});

Deno.test("Btf.parse() rejects garbage", () => {
  const garbage = new Uint8Array(4096).map((_, i) => (i * 7919 + 13) & 0xff);
  assert.throws(() => Btf.parse(garbage), BtfError);
});

Deno.test("Btf.parse() rejects a name offset outside the string section", () => {
  const bytes = buildBtf([{ kind: BtfKind.INT, name: "int", sizeOrType: 4, extra: [32] }]);
  new DataView(bytes.buffer).setUint32(24, 999, true);
  assert.throws(() => Btf.parse(bytes), /name offset 999 of type 1 is outside the string section/);
});

Deno.test("Btf reads every kind clang emits", () => {
  const btf = fixtureBtf("kinds");
  const kinds = new Set<string>();
  for (let id = 1; id < btf.typeCount; id++) kinds.add(btf.kindName(id));
  assert.deepEqual(
    [...kinds].sort(),
    [
      "array",
      "const",
      "datasec",
      "decl_tag",
      "enum",
      "float",
      "func",
      "func_proto",
      "fwd",
      "int",
      "ptr",
      "restrict",
      "struct",
      "type_tag",
      "typedef",
      "union",
      "var",
      "volatile",
    ],
  );
  assert.equal(btf.structSize("tagged"), 72);
  assert.equal(btf.memberOf("tagged", "buffer")?.kind, "ptr");
  assert.equal(btf.memberOf("tagged", "jiffies")?.size, 8);
  assert.equal(btf.memberOf("tagged", "jiffies")?.kind, "int");
  assert.equal(btf.memberOf("tagged", "ratio")?.kind, "float");
  assert.equal(btf.memberOf("tagged", "value.as_float")?.offset, 68);
  assert.equal(btf.memberOf("tagged", "anon_enum")?.kind, "enum");
});

Deno.test("Btf.sizeOf() resolves typedef, const, volatile and restrict", () => {
  const btf = fixtureBtf("kinds");
  const cv = btf.findTypedef("cv_tagged_t");
  assert.ok(cv !== undefined);
  assert.equal(btf.kindName(cv), "typedef");
  assert.equal(btf.sizeOf(cv), 72);
  assert.equal(btf.kindName(btf.resolve(cv)), "struct");
  assert.equal(btf.name(btf.resolve(cv)), "tagged");
  const opaque = btf.findTypedef("opaque_t");
  assert.ok(opaque !== undefined);
  assert.equal(btf.sizeOf(opaque), undefined, "a fwd has no size");
  assert.equal(btf.sizeOf(0), undefined, "void has no size");
});

Deno.test("Btf.array() gives element type and count, also for nested arrays", () => {
  const btf = fixtureBtf("kinds");
  const bytes = btf.memberOf("tagged", "bytes");
  assert.ok(bytes);
  assert.equal(bytes.size, 15);
  const outer = btf.array(bytes.typeId);
  assert.ok(outer);
  assert.equal(outer.count, 3);
  assert.equal(outer.elemSize, 5);
  const inner = btf.array(outer.elemTypeId);
  assert.deepEqual([inner?.count, inner?.elemSize], [5, 1]);
  assert.equal(btf.memberOf("tagged", "bytes[2][4]")?.offset, 48 + 14);
  assert.equal(btf.memberOf("tagged", "bytes[3]"), undefined, "index out of range");
  assert.equal(btf.array(btf.findStruct("tagged") ?? 0), undefined);
});

Deno.test("Btf.memberOf() finds direct, nested and anonymous members", async (t) => {
  const btf = fixtureBtf("module_6_4");
  const cases: [string, string, number, number][] = [
    ["task_struct", "__state", 8, 4],
    ["task_struct", "tasks", 40, 16],
    ["task_struct", "tasks.prev", 48, 8],
    ["task_struct", "comm", 136, 16],
    ["task_struct", "thread_info.flags", 0, 8],
    ["task_struct", "utime", 152, 8], // in an anonymous union
    ["task_struct", "stime_hi", 156, 4], // in an anonymous struct in an anonymous union
    ["cred", "uid.val", 4, 4],
    ["cred", "euid.val", 20, 4],
    ["module", "version", 80, 8], // anonymous union > anonymous struct
    ["module", "abi_padding", 80, 16],
    ["module", "mem", 104, 112],
    ["module", "mem[0].base", 104, 8],
    ["module", "mem[6].size", 212, 4],
  ];
  for (const [struct, path, offset, size] of cases) {
    await t.step(`${struct}.${path}`, () => {
      const info = btf.memberOf(struct, path);
      assert.ok(info, `${struct}.${path} not found`);
      assert.equal(info.offset, offset);
      assert.equal(info.size, size);
      assert.equal(info.bitOffset, offset * 8);
      assert.equal(info.bitSize, 0);
    });
  }
});

Deno.test("Btf.memberOf() returns undefined for a missing struct or member", () => {
  const btf = fixtureBtf("module_6_4");
  assert.equal(btf.memberOf("task_struct", "state"), undefined);
  assert.equal(btf.memberOf("task_struct", "tasks.nope"), undefined);
  assert.equal(btf.memberOf("module", "core_layout"), undefined);
  assert.equal(btf.memberOf("no_such_struct", "x"), undefined);
  assert.equal(btf.memberOf("task_struct", "bad path!"), undefined);
});

Deno.test("Btf.memberOf() decodes kind_flag bitfields", () => {
  const btf = fixtureBtf("task_5_14");
  const migrated = btf.memberOf("task_struct", "sched_migrated");
  assert.deepEqual(
    [migrated?.offset, migrated?.bitOffset, migrated?.bitSize, migrated?.size],
    [32, 258, 3, 4],
  );
  const id = btf.findStruct("task_struct");
  assert.ok(id !== undefined && btf.kindFlag(id));
  assert.equal(btf.memberOf("task_struct", "tasks")?.bitSize, 0);
});

Deno.test("Btf.memberOf() resolves the member type of a volatile long state", () => {
  const btf = fixtureBtf("task_5_13");
  const state = btf.memberOf("task_struct", "state");
  assert.ok(state);
  assert.deepEqual([state.offset, state.size, state.kind], [8, 8, "int"]);
  assert.equal(btf.kindName(state.typeId), "volatile");
  assert.equal(btf.memberOf("task_struct", "__state"), undefined);
});

Deno.test("Btf.enumValue() finds enumerators by enum name", () => {
  const btf = fixtureBtf("module_6_4");
  assert.equal(btf.enumValue("module_state", "MODULE_STATE_LIVE"), 0);
  assert.equal(btf.enumValue("module_state", "MODULE_STATE_UNFORMED"), 3);
  assert.equal(btf.enumValue("mod_mem_type", "MOD_TEXT"), 0);
  assert.equal(btf.enumValue("mod_mem_type", "MOD_MEM_NUM_TYPES"), 7);
  assert.equal(btf.enumValue("mod_mem_type", "MOD_NOPE"), undefined);
  assert.equal(btf.enumValue("no_such_enum", "MOD_TEXT"), undefined);
});

Deno.test("Btf reads signed enums and enum64", () => {
  const btf = Btf.parse(buildBtf([
    {
      kind: BtfKind.ENUM,
      name: "signed_enum",
      vlen: 2,
      kindFlag: true,
      sizeOrType: 4,
      extra: [{ name: "NEG" }, -1, { name: "POS" }, 5],
    },
    {
      kind: BtfKind.ENUM64,
      name: "wide",
      vlen: 2,
      sizeOrType: 8,
      extra: [{ name: "BIG" }, 0, 0x80000000, { name: "SMALL" }, 9, 0],
    },
    {
      kind: BtfKind.ENUM64,
      name: "wide_signed",
      vlen: 1,
      kindFlag: true,
      sizeOrType: 8,
      extra: [{ name: "MINUS_TWO" }, 0xfffffffe, 0xffffffff],
    },
  ]));
  assert.equal(btf.enumValue("signed_enum", "NEG"), -1);
  assert.equal(btf.enumValue("signed_enum", "POS"), 5);
  const wide = btf.findEnum("wide");
  assert.ok(wide !== undefined);
  assert.equal(btf.kindName(wide), "enum64");
  assert.equal(btf.sizeOf(wide), 8);
  assert.equal(btf.enumValues(wide)[0]?.value64, 0x8000000000000000n);
  assert.equal(btf.enumValue("wide", "SMALL"), 9);
  assert.equal(btf.enumValue("wide_signed", "MINUS_TWO"), -2);
});

Deno.test("Btf.findStruct() prefers the struct with members over a fwd or an empty one", () => {
  const btf = Btf.parse(buildBtf([
    { kind: BtfKind.INT, name: "int", sizeOrType: 4, extra: [32] },
    { kind: BtfKind.FWD, name: "module", sizeOrType: 0 },
    { kind: BtfKind.STRUCT, name: "module", sizeOrType: 0 },
    {
      kind: BtfKind.STRUCT,
      name: "module",
      vlen: 1,
      sizeOrType: 4,
      extra: [{ name: "state" }, 1, 0],
    },
    { kind: BtfKind.UNION, name: "module", vlen: 0, sizeOrType: 0 },
  ]));
  assert.deepEqual(btf.typesNamed("module"), [2, 3, 4, 5]);
  assert.equal(btf.findStruct("module"), 4);
  assert.equal(btf.findStruct("module", { union: true }), 5);
  assert.equal(btf.memberOf("module", "state")?.size, 4);
  assert.equal(btf.findStruct("int"), undefined);
});

Deno.test("Btf rejects type ids out of range", () => {
  const btf = fixtureBtf("task_5_14");
  assert.throws(() => btf.kind(btf.typeCount), /BTF type id \d+ is out of range/);
  assert.equal(btf.kind(0), BtfKind.UNKN);
  assert.equal(btf.name(0), "");
});
