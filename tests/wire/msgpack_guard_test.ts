import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import {
  checkMsgpackShape,
  MAX_MSGPACK_DEPTH,
  MsgpackShapeError,
} from "../../wire/msgpack_guard.ts";
import { decodePayload, FrameError } from "../../wire/frame.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("checkMsgpackShape() accepts every kind of value the encoder writes", () => {
  const values: unknown[] = [
    null,
    true,
    false,
    0,
    127,
    -32,
    -33,
    255,
    65_535,
    2 ** 32 - 1,
    2 ** 53 - 1,
    -(2 ** 31),
    1.5,
    0xffff_ffff_ffff_ffffn,
    "",
    "a".repeat(31),
    "b".repeat(255),
    "c".repeat(70_000),
    new Uint8Array(0),
    new Uint8Array(300),
    new Uint8Array(70_000),
    [],
    Array.from({ length: 20 }, (_, i) => i),
    Array.from({ length: 70_000 }, () => 1),
    {},
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
    { type: "request", id: 1, op: "run", args: { handle: 3, params: new Uint8Array(16) } },
    [[[[{ a: [1, { b: null }] }]]]],
    new Date(0), // a timestamp ext
  ];
  for (const value of values) {
    const encoded = encode(value, { useBigInt64: true });
    checkMsgpackShape(encoded);
  }
});

Deno.test("checkMsgpackShape() refuses containers that claim more elements than bytes remain", async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["array32 claiming 2^23", bytes(0xdd, 0x00, 0x80, 0x00, 0x00), /claims 8388608 elements/],
    ["map32 claiming 2^31 pairs", bytes(0xdf, 0x80, 0x00, 0x00, 0x00), /claims 4294967296/],
    ["array16 of 3 with 2 present", bytes(0xdc, 0x00, 0x03, 0x01, 0x02), /claims 3 elements/],
    ["fixarray of 2 with 1 present", bytes(0x92, 0x01), /claims 2 elements/],
    ["str32 longer than the payload", bytes(0xdb, 0x00, 0x01, 0x00, 0x00, 0x61), /runs past/],
    ["bin8 longer than the payload", bytes(0xc4, 0x05, 0x00), /runs past/],
    ["the unused tag 0xc1", bytes(0xc1), /no msgpack type/],
    ["trailing bytes", bytes(0x01, 0x02), /1 bytes follow/],
    ["nothing at all", bytes(), /runs past/],
  ];
  for (const [name, payload, pattern] of cases) {
    await t.step(name, () => assert.throws(() => checkMsgpackShape(payload), pattern));
  }
});

Deno.test("checkMsgpackShape() refuses nesting deeper than its bound", () => {
  const deep = new Uint8Array(MAX_MSGPACK_DEPTH + 2).fill(0x91);
  deep[deep.length - 1] = 0x01;
  assert.throws(() => checkMsgpackShape(deep), MsgpackShapeError);
  const fine = new Uint8Array(MAX_MSGPACK_DEPTH + 1).fill(0x91);
  fine[fine.length - 1] = 0x01;
  checkMsgpackShape(fine);
});

Deno.test("decodePayload() refuses 8 MiB of nested one-element arrays at once", () => {
  const payload = new Uint8Array(8 * 1024 * 1024).fill(0x91);
  // At once: the guard stops at the first byte past the depth limit, having read
  // MAX_MSGPACK_DEPTH + 1 of the 8 MiB (the time it takes: bench/decode_bounds.ts).
  assert.throws(
    () => decodePayload(payload),
    (error: unknown) =>
      error instanceof FrameError &&
      error.message ===
        `Cannot decode frame: msgpack nests deeper than ${MAX_MSGPACK_DEPTH} at byte ${
          MAX_MSGPACK_DEPTH + 1
        }`,
  );
});
