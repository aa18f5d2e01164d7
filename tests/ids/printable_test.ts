import assert from "node:assert/strict";
import { printable, terminalSafeJson } from "../../ids/printable.ts";
import { formatAddress } from "../../ids/memory/address.ts";

Deno.test("printable() shows terminal escapes, controls and bidi overrides as escapes", async (t) => {
  const cases: [string, string, string][] = [
    ["cursor up, erase line", "\x1b[1A\x1b[2Kevil", "\\x1b[1A\\x1b[2Kevil"],
    ["newline and carriage return", "a\nb\rc", "a\\x0ab\\x0dc"],
    ["DEL and 8-bit CSI", "a\x7fb\x9bc", "a\\x7fb\\x9bc"],
    ["right-to-left override", "abc\u202edef", "abc\\u202edef"],
    ["line separator", "a\u2028b", "a\\u2028b"],
    [
      "plain text and other Unicode",
      "sshd: root@pts/0 ümlaut 日本",
      "sshd: root@pts/0 ümlaut 日本",
    ],
  ];
  for (const [name, input, shown] of cases) {
    await t.step(name, () => assert.equal(printable(input), shown));
  }
});

Deno.test("terminalSafeJson() escapes what JSON.stringify leaves raw and keeps the same value", () => {
  const value = { comm: "a\x9b2J\u202eb\x1b", n: 1 };
  const json = terminalSafeJson(JSON.stringify(value, null, 2));
  for (const raw of ["\x7f", "\x9b", "\u202e", "\x1b"]) assert.ok(!json.includes(raw), raw);
  assert.match(json, /\n {2}"n": 1/, "its own whitespace stays");
  assert.deepEqual(JSON.parse(json), value);
});

Deno.test("formatAddress() never formats a negative or too large value as an address", () => {
  assert.equal(formatAddress(0xffff_8880_0000_1000n), "0xffff888000001000");
  assert.equal(formatAddress(0n), "0x0");
  assert.equal(formatAddress(-0x67n), "invalid address (-0x67)");
  assert.equal(formatAddress(1n << 64n), "invalid address (0x10000000000000000)");
});
