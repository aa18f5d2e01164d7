import assert from "node:assert/strict";
import { decodePayload, encodeFrame } from "../../wire/frame.ts";
import {
  argBigint,
  argBool,
  argBytes,
  argString,
  argUint,
  chunkMessage,
  errorMessage,
  isOp,
  type Message,
  OPS,
  parseMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  requestMessage,
  resultMessage,
} from "../../wire/protocol.ts";

/** Encodes and decodes like the wire does, then validates. */
function overTheWire(value: unknown): Message {
  return parseMessage(decodePayload(encodeFrame(value).subarray(4)));
}

function assertProtocolError(fn: () => unknown, code: string, message: string | RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${error}`);
    assert.equal(error.code, code);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

Deno.test("the protocol version is 1 and the op names are fixed", () => {
  assert.equal(PROTOCOL_VERSION, 1);
  assert.deepEqual(OPS, [
    "hello",
    "ping",
    "kernel_info",
    "btf",
    "kallsyms",
    "load",
    "run",
    "unload",
    "attest",
  ]);
  assert.ok(isOp("btf"));
  assert.ok(!isOp("format_disk"));
  assert.ok(!isOp(3));
});

Deno.test("every message type round-trips over the wire", async (t) => {
  const cases: [string, Message][] = [
    [
      "request",
      requestMessage(1, "hello", { version: PROTOCOL_VERSION, nonce: new Uint8Array(32) }),
    ],
    ["request with a kernel address", requestMessage(7, "run", { addr: 0xffffffff81e00000n })],
    ["request with the largest id", requestMessage(0xffff_ffff, "ping")],
    ["chunk", chunkMessage(2, 0, new Uint8Array([1, 2, 3, 250]))],
    ["empty chunk", chunkMessage(2, 4_000_000_000, new Uint8Array(0))],
    [
      "result",
      resultMessage(2, { pages: 3, base: 0xffff_8880_0000_0000n, raw: new Uint8Array(4) }),
    ],
    ["result without body", resultMessage(3)],
    ["error", errorMessage(4, "bad_args", "Argument object must be bytes")],
    ["connection error", errorMessage(0, "unauthenticated", "Peer did not authenticate")],
  ];
  for (const [name, message] of cases) {
    await t.step(name, () => {
      assert.deepEqual(overTheWire(message), message);
    });
  }
});

Deno.test("parseMessage() fills in omitted request args", () => {
  assert.deepEqual(parseMessage({ type: "request", id: 9, op: "ping" }), {
    type: "request",
    id: 9,
    op: "ping",
    args: {},
  });
});

Deno.test("parseMessage() accepts an unknown op so it can be answered with an error", () => {
  const message = parseMessage({ type: "request", id: 1, op: "format_disk", args: {} });
  assert.equal(message.type === "request" && message.op, "format_disk");
});

Deno.test("parseMessage() rejects values that are not exactly a message", async (t) => {
  const bytes = new Uint8Array(1);
  const cases: [string, unknown, string][] = [
    ["nil", null, "Message must be a map, got nil"],
    ["an array", [1, 2], "Message must be a map, got array"],
    ["bytes", bytes, "Message must be a map, got bytes"],
    ["a string", "request", "Message must be a map, got string"],
    ["a date", new Date(0), "Message must be a map, got object"],
    ["missing type", { id: 1 }, "Missing field type in message"],
    ["numeric type", { type: 1, id: 1 }, "Message field type must be a string, got 1"],
    ["unknown type", { type: "hack", id: 1 }, 'Unknown message type "hack"'],
    ["inherited type name", { type: "toString", id: 1 }, 'Unknown message type "toString"'],
    [
      "missing id",
      { type: "request", op: "ping", args: {} },
      "Missing field id in request message",
    ],
    [
      "id 0 on a request",
      { type: "request", id: 0, op: "ping" },
      "Field id of request message must be an integer from 1 to 4294967295, got 0",
    ],
    [
      "negative id",
      { type: "result", id: -1, body: null },
      "Field id of result message must be an integer from 1 to 4294967295, got -1",
    ],
    [
      "fractional id",
      { type: "chunk", id: 1.5, seq: 0, data: bytes },
      "Field id of chunk message must be an integer from 1 to 4294967295, got 1.5",
    ],
    [
      "id over 32 bits",
      { type: "result", id: 2 ** 32, body: null },
      "Field id of result message must be an integer from 1 to 4294967295, got 4294967296",
    ],
    [
      "bigint id",
      { type: "result", id: 5n, body: null },
      "Field id of result message must be an integer from 1 to 4294967295, got 5n",
    ],
    [
      "string id",
      { type: "error", id: "1", code: "x", message: "y" },
      'Field id of error message must be an integer from 0 to 4294967295, got "1"',
    ],
    [
      "op not a string",
      { type: "request", id: 1, op: 5 },
      "Field op of request message must be a string, got 5",
    ],
    [
      "empty op",
      { type: "request", id: 1, op: "" },
      "Field op of request message must not be empty",
    ],
    [
      "args as an array",
      { type: "request", id: 1, op: "run", args: [1] },
      "Field args of request message must be a map, got array",
    ],
    [
      "args nil",
      { type: "request", id: 1, op: "run", args: null },
      "Field args of request message must be a map, got nil",
    ],
    [
      "chunk data as a string",
      { type: "chunk", id: 1, seq: 0, data: "abc" },
      'Field data of chunk message must be bytes, got "abc"',
    ],
    [
      "chunk data as an array",
      { type: "chunk", id: 1, seq: 0, data: [1, 2] },
      "Field data of chunk message must be bytes, got array",
    ],
    [
      "negative seq",
      { type: "chunk", id: 1, seq: -1, data: bytes },
      "Field seq of chunk message must be an integer from 0 to 4294967295, got -1",
    ],
    [
      "chunk without seq",
      { type: "chunk", id: 1, data: bytes },
      "Missing field seq in chunk message",
    ],
    ["result without body", { type: "result", id: 1 }, "Missing field body in result message"],
    [
      "error without message",
      { type: "error", id: 0, code: "x" },
      "Missing field message in error message",
    ],
    [
      "error code not a string",
      { type: "error", id: 0, code: 3, message: "m" },
      "Field code of error message must be a string, got 3",
    ],
    [
      "empty error code",
      { type: "error", id: 0, code: "", message: "m" },
      "Field code of error message must not be empty",
    ],
    [
      "an extra field",
      { type: "result", id: 1, body: null, admin: true },
      'Unexpected field "admin" in result message',
    ],
    [
      "a field of another message type",
      { type: "request", id: 1, op: "ping", seq: 0 },
      'Unexpected field "seq" in request message',
    ],
  ];
  for (const [name, value, message] of cases) {
    await t.step(name, () => {
      assertProtocolError(() => parseMessage(value), "malformed", message);
    });
  }
});

Deno.test("parseMessage() rejects invalid messages decoded from msgpack", () => {
  assertProtocolError(
    () => overTheWire({ type: "chunk", id: 1, seq: 0, data: "not bytes" }),
    "malformed",
    'Field data of chunk message must be bytes, got "not bytes"',
  );
  assertProtocolError(
    () => overTheWire(new Map<unknown, unknown>([[1, "request"]])),
    "malformed",
    "Missing field type in message",
  );
});

Deno.test("message constructors refuse out-of-range values", () => {
  assertProtocolError(() => requestMessage(0, "ping"), "malformed", /^Field id of request/);
  assertProtocolError(() => chunkMessage(1, -1, new Uint8Array()), "malformed", /^Field seq/);
  assertProtocolError(() => errorMessage(-1, "x", "y"), "malformed", /^Field id of error/);
});

Deno.test("argument helpers return well-typed arguments", () => {
  const object = new Uint8Array([0x7f, 0x45, 0x4c, 0x46]);
  const args = {
    name: "walk_tasks",
    object,
    handle: 3,
    big_handle: 3n,
    addr: 0xffffffff81000000n,
    small_addr: 4096,
    follow: true,
    nothing: null,
  };
  assert.equal(argString(args, "name"), "walk_tasks");
  assert.equal(argBytes(args, "object"), object);
  assert.equal(argUint(args, "handle"), 3);
  assert.equal(argUint(args, "big_handle"), 3);
  assert.equal(argBigint(args, "addr"), 0xffffffff81000000n);
  assert.equal(argBigint(args, "small_addr"), 4096n);
  assert.equal(argBool(args, "follow"), true);
  assert.equal(argUint(args, "limit", 100), 100);
  assert.equal(argString(args, "nothing", "default"), "default");
  assert.equal(argBigint(args, "missing", 0n), 0n);
});

Deno.test("argument helpers reject missing and mistyped arguments", async (t) => {
  const args: Record<string, unknown> = {
    text: "x",
    negative: -1,
    fraction: 1.5,
    huge: 2 ** 53,
    huge_bigint: 1n << 53n,
    over_u64: 1n << 64n,
    negative_bigint: -1n,
  };
  const cases: [string, () => unknown, string][] = [
    ["missing string", () => argString(args, "name"), "Missing argument name"],
    ["number as string", () => argString({ name: 1 }, "name"), "Argument name must be a string"],
    ["string as bytes", () => argBytes(args, "text"), "Argument text must be bytes"],
    ["array as bytes", () => argBytes({ object: [1] }, "object"), "Argument object must be bytes"],
    ["missing bytes", () => argBytes({}, "object"), "Missing argument object"],
    ["string as uint", () => argUint(args, "text"), "Argument text must be a non-negative integer"],
    [
      "negative uint",
      () => argUint(args, "negative"),
      "Argument negative must be a non-negative integer",
    ],
    [
      "fractional uint",
      () => argUint(args, "fraction"),
      "Argument fraction must be a non-negative integer",
    ],
    ["unsafe uint", () => argUint(args, "huge"), "Argument huge must be a non-negative integer"],
    [
      "unsafe bigint uint",
      () => argUint(args, "huge_bigint"),
      "Argument huge_bigint must be a non-negative integer",
    ],
    [
      "string as bigint",
      () => argBigint(args, "text"),
      "Argument text must be an unsigned 64-bit integer",
    ],
    [
      "bigint over 64 bits",
      () => argBigint(args, "over_u64"),
      "Argument over_u64 must be an unsigned 64-bit integer",
    ],
    [
      "negative bigint",
      () => argBigint(args, "negative_bigint"),
      "Argument negative_bigint must be an unsigned 64-bit integer",
    ],
    [
      "fraction as bigint",
      () => argBigint(args, "fraction"),
      "Argument fraction must be an unsigned 64-bit integer",
    ],
    ["string as bool", () => argBool(args, "text"), "Argument text must be a boolean"],
    ["inherited key", () => argString({}, "toString"), "Missing argument toString"],
  ];
  for (const [name, fn, message] of cases) {
    await t.step(name, () => assertProtocolError(fn, "bad_args", message));
  }
});
