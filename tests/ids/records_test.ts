// bpf/records.ts: decoding the records the eBPF programs write (the TypeScript side of common.h).
import { concatBytes } from "../../wire/bytes.ts";
import assert from "node:assert/strict";
import { decodeRecords, RECORD_HEADER_BYTES, RecordKind } from "../../bpf/records.ts";

/** Encodes one record as struct record_hdr + payload. */
function record(kind: number, addr: bigint, value: bigint, payload = new Uint8Array()): Uint8Array {
  const bytes = new Uint8Array(RECORD_HEADER_BYTES + payload.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, kind, true);
  view.setUint32(4, payload.byteLength, true);
  view.setBigUint64(8, addr, true);
  view.setBigInt64(16, value, true);
  bytes.set(payload, RECORD_HEADER_BYTES);
  return bytes;
}

Deno.test("decodeRecords() decodes packed records with their payloads in order", () => {
  const page = Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff);
  const bytes = concatBytes(
    record(RecordKind.Addr, 0xffff_8881_0000_0000n, 1n),
    record(RecordKind.Page, 0xffff_ffff_8100_0000n, 0n, page),
    record(RecordKind.Fault, 0n, -14n),
    record(RecordKind.End, 0n, 42n),
  );
  const records = [...decodeRecords(bytes)];
  assert.deepEqual(records.map((r) => r.kind), [
    RecordKind.Addr,
    RecordKind.Page,
    RecordKind.Fault,
    RecordKind.End,
  ]);
  assert.equal(records[0]!.addr, 0xffff_8881_0000_0000n);
  assert.equal(records[1]!.addr, 0xffff_ffff_8100_0000n, "addresses above 2^63 stay unsigned");
  assert.deepEqual(records[1]!.payload, page);
  assert.equal(records[2]!.value, -14n, "values are signed");
  assert.equal(records[3]!.value, 42n);
  assert.equal(records[0]!.payload.byteLength, 0);
});

Deno.test("decodeRecords() decodes a chunk that is a view into a larger buffer", () => {
  const inner = record(RecordKind.End, 7n, 3n);
  const outer = new Uint8Array(inner.byteLength + 13);
  outer.set(inner, 5);
  const records = [...decodeRecords(outer.subarray(5, 5 + inner.byteLength))];
  assert.equal(records.length, 1);
  assert.equal(records[0]!.addr, 7n);
  assert.equal(records[0]!.value, 3n);
});

Deno.test("decodeRecords() of no bytes yields no record", () => {
  assert.deepEqual([...decodeRecords(new Uint8Array())], []);
});

Deno.test("decodeRecords() rejects a truncated header", () => {
  const bytes = concatBytes(record(RecordKind.End, 0n, 1n), new Uint8Array(10));
  assert.throws(() => [...decodeRecords(bytes)], /Truncated record header at byte 24 of 34/);
});

Deno.test("decodeRecords() rejects a payload that runs past the end of its chunk", () => {
  const whole = record(RecordKind.Page, 0x1000n, 0n, new Uint8Array(4096));
  const cut = whole.subarray(0, RECORD_HEADER_BYTES + 100);
  assert.throws(
    () => [...decodeRecords(cut)],
    /Record of 4096 bytes at byte 0 runs past the end of its chunk/,
  );
});
