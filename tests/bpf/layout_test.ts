// C and TypeScript cannot drift: each compiled object's own BTF (bpf/objects.gen.ts) says where its
// parameter and record structs hold each field; the IDS's encoders (ids/memory/*) and decoder
// (bpf/records.ts) must put and find every field there. Each encoder writes distinct values, and
// each is read back at the offset and size the object's BTF gives the C member. No root.
import assert from "node:assert/strict";
import { elfSection } from "../../bpf/elf.ts";
import { bpfObject, PROGRAM_NAMES, type ProgramName, programVariants } from "../../bpf/objects.ts";
import {
  AddrTag,
  decodeRecords,
  FaultCode,
  FieldsOf,
  PARAMS_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  RecordKind,
} from "../../bpf/records.ts";
import { encodeReadPage, encodeReadPages, READ_PAGES_MAX } from "../../ids/memory/agent_pages.ts";
import { encodeListWalk } from "../../ids/memory/bulk.ts";
import { encodeHashWalk, HASH_LIMITS, type HashWalkSpec } from "../../ids/memory/hash.ts";
import { type CapturePlan, encodePlan, PLAN_LIMITS } from "../../ids/memory/plan.ts";
import { Btf } from "../../ids/profile/btf.ts";

/** The object's BTF, for each variant of `name`. */
function objectBtfs(name: ProgramName): [string, Btf][] {
  return programVariants(name).map((variant) => {
    const section = elfSection(bpfObject(name, variant), ".BTF");
    assert.ok(section, `${name} (${variant}) has a .BTF section`);
    return [`${name} (${variant})`, Btf.parse(section.slice())];
  });
}

/** Asserts the IDS's bytes fit the C struct (whose tail may be padding). */
function assertFits(label: string, btf: Btf, struct: string, bytes: Uint8Array): void {
  const size = btf.structSize(struct);
  assert.ok(size !== undefined && size > 0, `${label}: BTF has struct ${struct}`);
  assert.ok(bytes.length <= size - PARAMS_HEADER_BYTES, `${label}: ${bytes.length} bytes fit`);
  assert.ok(
    bytes.length > size - PARAMS_HEADER_BYTES - 8,
    `${label}: ${bytes.length} bytes fill it`,
  );
}

/** Reads the member `path` of the params struct from the IDS's bytes (after the agent's header). */
function readParam(btf: Btf, struct: string, path: string, bytes: Uint8Array): bigint {
  const member = btf.memberOf(struct, path);
  assert.ok(member, `${struct} has ${path}`);
  const at = member.offset - PARAMS_HEADER_BYTES;
  assert.ok(
    at >= 0 && at + member.size <= bytes.length,
    `${struct}.${path} lies in the bytes sent`,
  );
  let value = 0n;
  for (let i = member.size - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[at + i]!);
  return value;
}

/** Asserts each `path: value` of `expected` is what the C side reads from `bytes`. */
function assertParams(
  label: string,
  btf: Btf,
  struct: string,
  bytes: Uint8Array,
  expected: Record<string, bigint | number>,
): void {
  for (const [path, value] of Object.entries(expected)) {
    assert.equal(readParam(btf, struct, path, bytes), BigInt(value), `${label}: ${struct}.${path}`);
  }
}

/** Elements of the array member `path` of `struct`. */
function arrayCount(btf: Btf, struct: string, path: string): number | undefined {
  const member = btf.memberOf(struct, path);
  return member && btf.array(member.typeId)?.count;
}

Deno.test("every object's record_hdr and params_hdr are what bpf/records.ts decodes", () => {
  let withRecordType = 0;
  for (const name of PROGRAM_NAMES) {
    for (const [label, btf] of objectBtfs(name)) {
      assert.equal(btf.structSize("params_hdr"), PARAMS_HEADER_BYTES, label);
      // Only objects with a variable of the type (walk_plan, walk_hash: scratch) carry it.
      if (btf.findStruct("record_hdr") === undefined) continue;
      withRecordType++;
      assert.equal(btf.structSize("record_hdr"), RECORD_HEADER_BYTES, label);
      // A record laid out by the C struct's offsets decodes to the same fields.
      const bytes = new Uint8Array(RECORD_HEADER_BYTES + 3);
      const view = new DataView(bytes.buffer);
      const put = (path: string, value: bigint) => {
        const m = btf.memberOf("record_hdr", path)!;
        if (m.size === 4) view.setUint32(m.offset, Number(value), true);
        else view.setBigUint64(m.offset, BigInt.asUintN(64, value), true);
      };
      put("kind", BigInt(RecordKind.Fields));
      put("len", 3n);
      put("addr", 0xffff_8880_1234_5678n);
      put("value", -3n);
      const [record] = [...decodeRecords(bytes)];
      assert.deepEqual(
        {
          kind: record?.kind,
          addr: record?.addr,
          value: record?.value,
          len: record?.payload.length,
        },
        { kind: RecordKind.Fields, addr: 0xffff_8880_1234_5678n, value: -3n, len: 3 },
        label,
      );
    }
  }
  assert.ok(withRecordType >= 4, `${withRecordType} objects have record_hdr in their BTF`);
});

Deno.test("bpf/records.ts's constants are bpf/common.h's", async () => {
  // Enumerators and #defines are not in the objects' BTF: read from the header itself.
  const header = await Deno.readTextFile(new URL("../../bpf/common.h", import.meta.url));
  const value = (name: string) => {
    const m = new RegExp(`\\b${name}\\s*=?\\s*(\\d+)`).exec(header);
    assert.ok(m, `common.h defines ${name}`);
    return Number(m[1]);
  };
  assert.deepEqual(RecordKind, {
    Page: value("REC_PAGE"),
    Addr: value("REC_ADDR"),
    Fault: value("REC_FAULT"),
    More: value("REC_MORE"),
    End: value("REC_END"),
    Fields: value("REC_FIELDS"),
    Head: value("REC_HEAD"),
  });
  assert.deepEqual(FieldsOf, {
    Object: value("FIELDS_OBJECT"),
    Follow0: value("FIELDS_FOLLOW_0"),
    Anchor: value("FIELDS_ANCHOR"),
  });
  assert.deepEqual(AddrTag, {
    Start: value("TAG_START"),
    Task: value("TAG_TASK"),
    Module: value("TAG_MODULE"),
  });
  assert.deepEqual(FaultCode, {
    LoopBound: value("FAULT_LOOP_BOUND"),
    Cycle: value("FAULT_CYCLE"),
    RingFull: value("FAULT_RING_FULL"),
  });
});

Deno.test("read_page and read_pages take the parameters ids/memory/agent_pages.ts encodes", () => {
  for (const [label, btf] of objectBtfs("read_page")) {
    const bytes = encodeReadPage(0xffff_8880_0abc_d000n);
    assertFits(label, btf, "read_page_params", bytes);
    assertParams(label, btf, "read_page_params", bytes, { addr: 0xffff_8880_0abc_d000n });
  }
  for (const [label, btf] of objectBtfs("read_pages")) {
    const pages = [0xffff_8880_0000_1000n, 0xffff_8880_0000_2000n, 0xffff_8880_0000_3000n];
    const bytes = encodeReadPages(pages);
    assert.equal(arrayCount(btf, "read_pages_params", "addrs"), READ_PAGES_MAX, label);
    assertParams(label, btf, "read_pages_params", bytes, {
      count: 3,
      "addrs[0]": pages[0]!,
      "addrs[1]": pages[1]!,
      "addrs[2]": pages[2]!,
    });
  }
});

Deno.test("walk_tasks and walk_modules take the parameters ids/memory/bulk.ts encodes", () => {
  const bytes = encodeListWalk(0xffff_8880_0123_4560n, 4242);
  for (const [name, start] of [["walk_tasks", "start"], ["walk_modules", "head"]] as const) {
    for (const [label, btf] of objectBtfs(name)) {
      const struct = `${name}_params`;
      assertFits(label, btf, struct, bytes);
      assertParams(label, btf, struct, bytes, { [start]: 0xffff_8880_0123_4560n, limit: 4242 });
    }
  }
});

Deno.test("walk_plan takes the parameters ids/memory/plan.ts encodes", () => {
  const plan: CapturePlan = {
    link: 1056,
    ranges: [{ offset: 8, len: 16 }, { offset: 1056, len: 8 }],
    follows: [
      { pointer: 1280, ranges: [{ offset: 24, len: 4 }] },
      { pointer: 1800, ranges: [{ offset: 4, len: 8 }, { offset: 40, len: 12 }] },
    ],
  };
  const bytes = encodePlan(plan, { addr: 0xffff_8880_0555_0000n, isHead: true, limit: 77 });
  for (const [label, btf] of objectBtfs("walk_plan")) {
    const struct = "walk_plan_params";
    assertFits(label, btf, struct, bytes);
    assert.equal(arrayCount(btf, struct, "ranges"), PLAN_LIMITS.ranges, label);
    assert.equal(arrayCount(btf, struct, "follows"), PLAN_LIMITS.follows, label);
    assert.equal(arrayCount(btf, struct, "follows[0].ranges"), PLAN_LIMITS.ranges, label);
    assertParams(label, btf, struct, bytes, {
      start: 0xffff_8880_0555_0000n,
      limit: 77,
      link: 1056,
      start_is_head: 1,
      nranges: 2,
      nfollows: 2,
      "ranges[0].offset": 8,
      "ranges[0].len": 16,
      "ranges[1].offset": 1056,
      "ranges[1].len": 8,
      "follows[0].pointer": 1280,
      "follows[0].nranges": 1,
      "follows[0].ranges[0].offset": 24,
      "follows[0].ranges[0].len": 4,
      "follows[1].pointer": 1800,
      "follows[1].nranges": 2,
      "follows[1].ranges[1].offset": 40,
      "follows[1].ranges[1].len": 12,
    });
  }
});

Deno.test("walk_hash takes the parameters ids/memory/hash.ts encodes", () => {
  const spec: HashWalkSpec = {
    tables: [
      { base: 0xffff_8880_0100_0000n, count: 16384, stride: 16, head: 8, nulls: false, link: 1208 },
      { base: 0xffff_8880_0200_0000n, count: 262144, stride: 8, head: 0, nulls: true, link: 104 },
    ],
    span: 2048,
    follows: [{ pointer: 640, guard: 18, mask: 0x8000_0400, span: 4096, ranges: [] }],
    ranges: [{ offset: 0, len: 40 }, { offset: 104, len: 16 }],
  };
  const bytes = encodeHashWalk(spec, 999);
  for (const [label, btf] of objectBtfs("walk_hash")) {
    const struct = "walk_hash_params";
    assertFits(label, btf, struct, bytes);
    assert.equal(arrayCount(btf, struct, "tables"), HASH_LIMITS.tables, label);
    assert.equal(arrayCount(btf, struct, "follows"), HASH_LIMITS.follows, label);
    assert.equal(arrayCount(btf, struct, "ranges"), PLAN_LIMITS.ranges, label);
    assert.equal(arrayCount(btf, struct, "follows[0].ranges"), PLAN_LIMITS.ranges, label);
    assertParams(label, btf, struct, bytes, {
      ntables: 2,
      span: 2048,
      limit: 999,
      nfollows: 1,
      nranges: 2,
      "tables[0].base": 0xffff_8880_0100_0000n,
      "tables[0].count": 16384,
      "tables[0].stride": 16,
      "tables[0].head": 8,
      "tables[0].link": 1208,
      "tables[0].nulls": 0,
      "tables[1].base": 0xffff_8880_0200_0000n,
      "tables[1].count": 262144,
      "tables[1].stride": 8,
      "tables[1].head": 0,
      "tables[1].link": 104,
      "tables[1].nulls": 1,
      "ranges[0].len": 40,
      "ranges[1].offset": 104,
      "ranges[1].len": 16,
      "follows[0].pointer": 640,
      "follows[0].guard": 18,
      "follows[0].mask": 0x8000_0400,
      "follows[0].span": 4096,
      "follows[0].nranges": 0,
    });
  }
});
