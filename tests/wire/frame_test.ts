import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import {
  decodePayload,
  encodeFrame,
  FrameError,
  FrameReader,
  MAX_FRAME_BYTES,
} from "../../wire/frame.ts";
import { concatBytes } from "../../wire/bytes.ts";
import { chunkStream, rawFrame, split } from "../_helpers/streams.ts";

const SAMPLES: [string, unknown][] = [
  ["a map with strings and small integers", { type: "ping", id: 1, n: -5 }],
  ["a kernel address as a bigint", { addr: 0xffffffff81000000n }],
  ["the largest uint64", 0xffff_ffff_ffff_ffffn],
  ["a negative int64", -(1n << 63n)],
  ["bytes", new Uint8Array([0, 1, 2, 255])],
  ["nested arrays and nil", [1, [2, [3, null]], "x", true, 1.5]],
  ["an empty map", {}],
];

async function readAll(reader: FrameReader): Promise<unknown[]> {
  const values: unknown[] = [];
  for (let value = await reader.next(); value !== null; value = await reader.next()) {
    values.push(value);
  }
  return values;
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  message: string | RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof FrameError, `expected a FrameError, got ${error}`);
    assert.equal(error.code, code);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}

Deno.test("encodeFrame() writes a big-endian length prefix followed by the msgpack payload", () => {
  const frame = encodeFrame({ a: 1 });
  const payload = encode({ a: 1 });
  assert.deepEqual([...frame.subarray(0, 4)], [0, 0, 0, payload.length]);
  assert.deepEqual(frame.subarray(4), payload);
});

Deno.test("FrameReader round-trips values through encodeFrame", async (t) => {
  for (const [name, value] of SAMPLES) {
    await t.step(name, async () => {
      const reader = new FrameReader(chunkStream([encodeFrame(value)]).stream);
      assert.deepEqual(await reader.next(), value);
      assert.equal(await reader.next(), null);
    });
  }
});

Deno.test("FrameReader reads frames delivered one byte at a time", async () => {
  const values = SAMPLES.map(([, value]) => value);
  const bytes = concatBytes(...values.map((value) => encodeFrame(value)));
  const reader = new FrameReader(chunkStream(split(bytes, 1)).stream);
  assert.deepEqual(await readAll(reader), values);
  assert.equal(reader.bytesRead, bytes.length);
  assert.equal(reader.framesRead, values.length);
});

Deno.test("FrameReader reads frames split at arbitrary chunk boundaries", async (t) => {
  const values = SAMPLES.map(([, value]) => value);
  const bytes = concatBytes(...values.map((value) => encodeFrame(value)));
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let round = 0; round < 20; round++) {
    await t.step(`random split ${round}`, async () => {
      const chunks: Uint8Array[] = [];
      for (let offset = 0; offset < bytes.length;) {
        const size = 1 + Math.floor(random() * 12);
        chunks.push(bytes.slice(offset, offset + size));
        offset += size;
      }
      const reader = new FrameReader(chunkStream(chunks).stream);
      assert.deepEqual(await readAll(reader), values);
    });
  }
});

Deno.test("FrameReader reads several frames from one chunk", async () => {
  const values = [{ a: 1 }, { b: new Uint8Array([7]) }, "three"];
  const reader = new FrameReader(
    chunkStream([concatBytes(...values.map((v) => encodeFrame(v)))]).stream,
  );
  assert.deepEqual(await readAll(reader), values);
});

Deno.test("FrameReader assembles a large frame spread over many chunks", async () => {
  const data = new Uint8Array(3 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const frame = encodeFrame({ data });
  const reader = new FrameReader(chunkStream(split(frame, 65536)).stream);
  const value = await reader.next() as { data: Uint8Array };
  assert.equal(value.data.length, data.length);
  assert.deepEqual(value.data, data);
  assert.equal(await reader.next(), null);
});

Deno.test("FrameReader handles many small frames in many small chunks", async () => {
  // How long it takes (linear in the bytes): bench/decode_bounds.ts.
  const count = 20000;
  const bytes = concatBytes(...Array.from({ length: count }, (_, i) => encodeFrame({ i })));
  const reader = new FrameReader(chunkStream(split(bytes, 3)).stream);
  const values = await readAll(reader);
  assert.equal(values.length, count);
  assert.deepEqual(values[count - 1], { i: count - 1 });
});

Deno.test("FrameReader returns null at a clean end of stream", async (t) => {
  await t.step("empty stream", async () => {
    assert.equal(await new FrameReader(chunkStream([]).stream).next(), null);
  });
  await t.step("after the last frame, repeatedly", async () => {
    const reader = new FrameReader(chunkStream([encodeFrame(1)]).stream);
    assert.equal(await reader.next(), 1);
    assert.equal(await reader.next(), null);
    assert.equal(await reader.next(), null);
  });
});

Deno.test("FrameReader rejects a frame truncated by the end of the stream", async (t) => {
  await t.step("in the payload", async () => {
    const frame = rawFrame(new Uint8Array(36).fill(0xc0));
    const reader = new FrameReader(chunkStream(split(frame.subarray(0, 12), 5)).stream);
    await rejectsWith(
      reader.next(),
      "truncated",
      "Connection closed in the middle of a frame (12 of 40 bytes)",
    );
  });
  await t.step("in the length prefix", async () => {
    const reader = new FrameReader(chunkStream([new Uint8Array([0, 0])]).stream);
    await rejectsWith(
      reader.next(),
      "truncated",
      "Connection closed in the middle of a frame prefix (2 of 4 bytes)",
    );
  });
  await t.step("after a complete frame", async () => {
    const bytes = concatBytes(encodeFrame("ok"), rawFrame(new Uint8Array(8)).subarray(0, 6));
    const reader = new FrameReader(chunkStream([bytes]).stream);
    assert.equal(await reader.next(), "ok");
    await rejectsWith(
      reader.next(),
      "truncated",
      "Connection closed in the middle of a frame (6 of 12 bytes)",
    );
  });
});

Deno.test("FrameReader rejects an oversized length prefix without reading the payload", async () => {
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, 9_000_000, false);
  const payload = split(new Uint8Array(9_000_000), 1 << 20);
  const { stream, pulls } = chunkStream([prefix, ...payload]);
  await rejectsWith(
    new FrameReader(stream).next(),
    "oversized",
    "Frame of 9000000 bytes exceeds the maximum of 8388608",
  );
  assert.equal(pulls(), 1);
});

Deno.test("FrameReader honours a per-reader maximum frame size", async () => {
  const frame = encodeFrame("a string of 20 chars");
  const small = new FrameReader(chunkStream([frame]).stream, { maxFrameBytes: 16 });
  assert.equal(small.maxFrameBytes, 16);
  await rejectsWith(small.next(), "oversized", "Frame of 21 bytes exceeds the maximum of 16");
  const exact = new FrameReader(chunkStream([frame]).stream, { maxFrameBytes: 21 });
  assert.equal(await exact.next(), "a string of 20 chars");
});

Deno.test("FrameReader rejects payloads that are not one msgpack value", async (t) => {
  const cases: [string, number[]][] = [
    ["a reserved type byte", [0xc1]],
    ["a value cut short", [0x92, 0x01]],
    ["trailing bytes after the value", [0x01, 0x02]],
    ["an empty payload", []],
    ["a str header longer than the payload", [0xd9, 0x20, 0x61]],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, async () => {
      const reader = new FrameReader(chunkStream([rawFrame(new Uint8Array(bytes))]).stream);
      await rejectsWith(reader.next(), "malformed", /^Cannot decode frame: .+/);
    });
  }
});

Deno.test("encodeFrame() refuses a payload over the maximum", () => {
  assert.equal(MAX_FRAME_BYTES, 8 * 1024 * 1024);
  assert.throws(() => encodeFrame(new Uint8Array(9_000_000)), {
    name: "FrameError",
    code: "oversized",
    message: "Frame of 9000005 bytes exceeds the maximum of 8388608",
  });
  assert.throws(() => encodeFrame("a string of 20 chars", { maxFrameBytes: 20 }), {
    code: "oversized",
    message: "Frame of 21 bytes exceeds the maximum of 20",
  });
});

Deno.test("encodeFrame() reports values msgpack cannot encode", () => {
  assert.throws(() => encodeFrame({ f: Symbol("x") }), (error: unknown) => {
    assert.ok(error instanceof FrameError);
    assert.equal(error.code, "unencodable");
    assert.match(error.message, /^Cannot encode frame: /);
    return true;
  });
});

Deno.test("encodeFrame() returns independent buffers", () => {
  const first = encodeFrame("first");
  const second = encodeFrame("second");
  assert.equal(decodePayload(first.subarray(4)), "first");
  assert.equal(decodePayload(second.subarray(4)), "second");
});

Deno.test("FrameReader.cancel() stops reading and later reads end", async () => {
  const { stream } = chunkStream([encodeFrame(1), encodeFrame(2)]);
  const reader = new FrameReader(stream);
  assert.equal(await reader.next(), 1);
  await reader.cancel();
  assert.equal(await reader.next(), null);
});

Deno.test("FrameReader refuses a second read while one is pending", async () => {
  const reader = new FrameReader(chunkStream([encodeFrame(1)]).stream);
  const first = reader.next();
  await assert.rejects(reader.next(), {
    message: "Cannot read a frame while another read is pending",
  });
  assert.equal(await first, 1);
});

/** A `Deno.Conn`-like reader over `bytes`, returning at most `step` bytes per read. */
function byteReader(
  bytes: Uint8Array,
  step: number,
): { read(p: Uint8Array): Promise<number | null>; reads: () => number } {
  let offset = 0;
  let reads = 0;
  return {
    read(p: Uint8Array) {
      reads++;
      if (offset === bytes.length) return Promise.resolve(null);
      const count = Math.min(p.length, step, bytes.length - offset);
      p.set(bytes.subarray(offset, offset + count));
      offset += count;
      return Promise.resolve(count);
    },
    reads: () => reads,
  };
}

Deno.test("FrameReader reads frames from a byte reader (a Deno.Conn or SecureStream)", async (t) => {
  const values = ["small", { n: 1n << 60n }, new Uint8Array(200_000).fill(9), [1, 2, 3], null];
  const bytes = concatBytes(...values.map((value) => encodeFrame(value)));
  for (const step of [1, 7, 4096, 70_000, 1 << 20]) {
    await t.step(`${step} bytes per read`, async () => {
      const reader = new FrameReader(byteReader(bytes, step));
      for (const value of values) assert.deepEqual(await reader.next(), value);
      assert.equal(await reader.next(), null);
      assert.equal(reader.bytesRead, bytes.length);
    });
  }
});

Deno.test("FrameReader keeps decoded views valid while it reads more from a byte reader", async () => {
  const frames = Array.from({ length: 500 }, (_, i) => encodeFrame(new Uint8Array(100).fill(i)));
  const reader = new FrameReader(byteReader(concatBytes(...frames), 3000));
  const kept: Uint8Array[] = [];
  for (let i = 0; i < frames.length; i++) kept.push((await reader.next()) as Uint8Array);
  kept.forEach((view, i) => assert.deepEqual(view, new Uint8Array(100).fill(i)));
});

Deno.test("FrameReader rejects a large frame cut off in a byte reader", async () => {
  const frame = encodeFrame(new Uint8Array(300_000));
  const reader = new FrameReader(byteReader(frame.subarray(0, 200_000), 50_000));
  await assert.rejects(reader.next(), (error: unknown) => {
    assert.ok(error instanceof FrameError);
    assert.equal(error.code, "truncated");
    assert.equal(
      error.message,
      `Connection closed in the middle of a frame (200000 of ${frame.length} bytes)`,
    );
    return true;
  });
});
