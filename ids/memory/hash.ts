/**
 * `bulk` and `fields` mode for hash tables: one request in which the generic
 * hash walker (bpf/walk_hash.bpf.c) reads every bucket of some tables in the
 * guest and streams back the heads of the non-empty chains and the pages of
 * the objects on them and of what some of their pointers point to (bulk), or
 * only the byte ranges a capture plan names (fields). Pages go into the page
 * cache, ranges and the bucket heads into the range cache, every bucket the walker
 * did not report holding an empty chain. The OS views then read the tables
 * from memory as usual, without the empty buckets' megabytes on the wire.
 *
 * @module
 */
import { type BpfRecord, RecordKind } from "../../bpf/records.ts";
import type { KernelMemory } from "./memory.ts";
import { firstFault, type ProgramSet } from "./programs.ts";
import {
  type CapturePlan,
  checkRanges,
  type FieldRange,
  PLAN_LIMITS,
  storeFields,
} from "./plan.ts";
import type { GuardedPlan } from "./plan_recorder.ts";

/** One hash table of chains. */
export interface HashTable {
  /** Address of the bucket array. */
  base: bigint;
  /** Buckets. */
  count: number;
  /** Bytes per bucket. */
  stride: number;
  /** Offset of the chain's first pointer in a bucket. */
  head: number;
  /** Whether chains are `hlist_nulls` (end in an odd value) rather than `hlist` (end in NULL). */
  nulls: boolean;
  /** Offset of the chain node (its next pointer) in each object. */
  link: number;
}

/** A pointer in each object to follow, and when. */
export interface HashFollow {
  /** Offset of the pointer in the object. */
  pointer: number;
  /** Offset of the byte in the object that decides. */
  guard: number;
  /** Follow when the guard byte's value v is below 32 and bit v is set. */
  mask: number;
  /** Bytes to fetch from where it points (as pages). */
  span: number;
  /** With a capture plan: the ranges to fetch from where it points instead. */
  ranges?: FieldRange[];
}

/** What to walk: up to {@linkcode HASH_LIMITS}`.tables` tables of objects alike. */
export interface HashWalkSpec {
  /** The tables, walked in order. */
  tables: HashTable[];
  /** Bytes of each object to fetch (the pages that cover them). */
  span: number;
  /** Pointers to follow. */
  follows: HashFollow[];
  /**
   * A capture plan (`fields` mode): the ranges of each object to fetch
   * instead of pages; they include each table's link.
   */
  ranges?: FieldRange[];
}

/** Bounds of bpf/walk_hash.bpf.c: keep in step. */
export const HASH_LIMITS = { tables: 4, follows: 2, span: 8 * 4096 } as const;

/** What a hash walk found. */
export interface HashWalkResult {
  /** Objects visited. */
  objects: number;
  /** Non-empty chains. */
  chains: number;
  /** Pages that went into the cache. */
  pages: number;
}

/** Encodes `spec` as struct walk_hash_params (after the agent's header). */
export function encodeHashWalk(spec: HashWalkSpec, limit = 0xffff_ffff): Uint8Array {
  if (spec.tables.length > HASH_LIMITS.tables) {
    throw new Error(
      `Hash walk has ${spec.tables.length} tables, the walker takes ${HASH_LIMITS.tables}`,
    );
  }
  if (spec.follows.length > HASH_LIMITS.follows) {
    throw new Error(
      `Hash walk has ${spec.follows.length} follows, the walker takes ${HASH_LIMITS.follows}`,
    );
  }
  for (const span of [spec.span, ...spec.follows.map((f) => f.span)]) {
    if (span <= 0 || span > HASH_LIMITS.span) {
      throw new Error(`Hash walk span ${span} is out of range`);
    }
  }
  const rangesAt = 24 + HASH_LIMITS.tables * 24;
  const followsAt = rangesAt + PLAN_LIMITS.ranges * 4;
  const followBytes = 16 + PLAN_LIMITS.ranges * 4;
  const bytes = new Uint8Array(followsAt + HASH_LIMITS.follows * followBytes);
  const view = new DataView(bytes.buffer);
  const putRanges = (at: number, ranges: FieldRange[], what: string) => {
    checkRanges(ranges, what);
    ranges.forEach((r, i) => {
      view.setUint16(at + i * 4, r.offset, true);
      view.setUint16(at + i * 4 + 2, r.len, true);
    });
  };
  view.setUint32(0, spec.tables.length, true);
  view.setUint32(4, spec.span, true);
  view.setUint32(8, limit, true);
  view.setUint32(12, spec.follows.length, true);
  if (spec.ranges !== undefined) {
    if (spec.ranges.length === 0) throw new Error("Hash walk capture plan has no ranges");
    view.setUint32(16, spec.ranges.length, true);
    putRanges(rangesAt, spec.ranges, "the object");
  }
  spec.tables.forEach((t, i) => {
    const at = 24 + i * 24;
    view.setBigUint64(at, t.base, true);
    view.setUint32(at + 8, t.count, true);
    view.setUint16(at + 12, t.stride, true);
    view.setUint16(at + 14, t.head, true);
    view.setUint16(at + 16, t.link, true);
    view.setUint8(at + 18, t.nulls ? 1 : 0);
  });
  spec.follows.forEach((f, i) => {
    const at = followsAt + i * followBytes;
    view.setUint16(at, f.pointer, true);
    view.setUint16(at + 2, f.guard, true);
    view.setUint32(at + 4, f.mask >>> 0, true);
    view.setUint32(at + 8, f.span, true);
    if (spec.ranges !== undefined) {
      const ranges = f.ranges ?? [];
      view.setUint32(at + 12, ranges.length, true);
      putRanges(at + 16, ranges, `follow ${i}`);
    }
  });
  return bytes;
}

/**
 * Walks the tables of `spec` in the guest and fills `mem`'s caches: the
 * objects' pages, and the bucket heads (an empty chain's head as the end
 * marker the view tests for: NULL, or the nulls marker 1).
 */
export async function hashWalk(
  programs: ProgramSet,
  mem: KernelMemory,
  spec: HashWalkSpec,
): Promise<HashWalkResult> {
  return collectHashWalk(await programs.run("walk_hash", encodeHashWalk(spec)), mem, spec);
}

/** Puts what a hash walk of `spec` sent (`records`, in order) into `mem`'s caches. */
export function collectHashWalk(
  records: BpfRecord[],
  mem: KernelMemory,
  spec: HashWalkSpec,
): HashWalkResult {
  const fault = firstFault("Hash table walk", records);
  if (fault) throw fault;
  const plan: CapturePlan = {
    link: 0,
    ranges: spec.ranges ?? [],
    follows: spec.follows.map((f) => ({ pointer: f.pointer, ranges: f.ranges ?? [] })),
  };
  const ranges = mem.ranges;
  if (ranges === undefined) throw new Error("Hash table walk needs a memory with a range cache");
  const heads = new Map<bigint, bigint>();
  const result: HashWalkResult = { objects: 0, chains: 0, pages: 0 };
  let ended = false;
  for (const record of records) {
    if (record.kind === RecordKind.Page) {
      mem.cache.put(record.addr, record.payload);
      result.pages++;
    } else if (record.kind === RecordKind.Fields) {
      storeFields(plan, record, ranges);
    } else if (record.kind === RecordKind.Head) {
      heads.set(record.addr, BigInt.asUintN(64, record.value));
    } else if (record.kind === RecordKind.End) {
      result.objects = Number(record.value);
      ended = true;
    }
  }
  if (!ended) throw new Error("Hash table walk ended without its END record");
  result.chains = heads.size;
  for (const table of spec.tables) storeHeads(ranges, table, heads);
  return result;
}

function storeHeads(
  ranges: NonNullable<KernelMemory["ranges"]>,
  table: HashTable,
  heads: Map<bigint, bigint>,
): void {
  const empty = table.nulls ? 1n : 0n;
  const first = table.base + BigInt(table.head);
  if (table.stride === 8) {
    // Heads side by side: one range for the whole array, end markers but where a chain starts.
    const bytes = new Uint8Array(table.count * 8);
    const view = new DataView(bytes.buffer);
    if (table.nulls) { for (let i = 0; i < bytes.byteLength; i += 8) bytes[i] = 1; }
    const end = first + BigInt(bytes.byteLength);
    for (const [addr, head] of heads) {
      if (addr >= first && addr < end && (addr - first) % 8n === 0n) {
        view.setBigUint64(Number(addr - first), head, true);
      }
    }
    ranges.put(first, bytes);
    return;
  }
  for (let i = 0; i < table.count; i++) {
    const addr = first + BigInt(i * table.stride);
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, heads.get(addr) ?? empty, true);
    ranges.put(addr, bytes);
  }
}

/**
 * What the hash walker fetches of `tables` for a view whose reader's capture
 * plan is `plan`: in `bulk` mode the pages that cover each object's planned
 * ranges and those of what it points to, in `fields` mode the ranges
 * themselves; each pointer followed only for the guard values whose reader
 * reads through it.
 */
export function hashWalkSpec(
  tables: HashTable[],
  plan: GuardedPlan,
  mode: "bulk" | "fields",
): HashWalkSpec {
  const end = (ranges: FieldRange[]) => Math.max(...ranges.map((r) => r.offset + r.len));
  return {
    tables,
    span: end(plan.ranges),
    ...(mode === "fields" ? { ranges: plan.ranges } : {}),
    follows: plan.follows.map((f) => ({
      pointer: f.pointer,
      guard: plan.guard,
      mask: f.mask,
      span: end(f.ranges),
      ...(mode === "fields" ? { ranges: f.ranges } : {}),
    })),
  };
}
