/**
 * Capture plans for `fields` mode: which byte ranges of each object on a
 * kernel list the OS views read, and which pointers they follow, encoded as
 * the parameters of the generic walker (bpf/walk_plan.bpf.c), and the
 * decoding of what the walker sends back into a {@linkcode RangeCache}.
 *
 * @module
 */
import { type BpfRecord, FieldsOf, RecordKind } from "../../bpf/records.ts";
import type { RangeCache } from "./range_cache.ts";

/** A byte range relative to the start of an object. */
export interface FieldRange {
  /** Offset in the object. */
  offset: number;
  /** Bytes. */
  len: number;
}

/** A pointer in the object, and the ranges to capture where it points. */
export interface FollowPlan {
  /** Offset of the pointer in the walked object. */
  pointer: number;
  /** Ranges of the pointed-to object. */
  ranges: FieldRange[];
}

/** What to capture of every object on a list. */
export interface CapturePlan {
  /** Offset of the list_head's next pointer in each object. */
  link: number;
  /** Ranges of each object (the link included). */
  ranges: FieldRange[];
  /** Pointers to follow. */
  follows: FollowPlan[];
}

/** Bounds of bpf/walk_plan.bpf.c: keep in step. */
export const PLAN_LIMITS = { ranges: 12, follows: 3, rangeBytes: 255, recordBytes: 1024 } as const;

/** Bytes of the walker's parameters after the agent's header (struct walk_plan_params). */
const PARAMS_BYTES = 24 + PLAN_LIMITS.ranges * 4 +
  PLAN_LIMITS.follows * (4 + PLAN_LIMITS.ranges * 4);

/**
 * Sorts ranges and merges those that overlap or lie within `gap` bytes of each
 * other (one read instead of two; the gap bytes ride along).
 */
export function coalesce(ranges: FieldRange[], gap = 8): FieldRange[] {
  const sorted = [...ranges].sort((a, b) => a.offset - b.offset);
  const out: FieldRange[] = [];
  for (const range of sorted) {
    const last = out[out.length - 1];
    const end = range.offset + range.len;
    if (
      last && range.offset <= last.offset + last.len + gap &&
      end - last.offset <= PLAN_LIMITS.rangeBytes
    ) {
      last.len = Math.max(last.len, end - last.offset);
    } else {
      out.push({ ...range });
    }
  }
  return out;
}

/** Throws when the walkers cannot copy `ranges` (too many, too long, or past one record). */
export function checkRanges(ranges: FieldRange[], what: string): void {
  if (ranges.length > PLAN_LIMITS.ranges) {
    throw new Error(
      `Capture plan: ${what} has ${ranges.length} ranges, the walker takes ${PLAN_LIMITS.ranges}`,
    );
  }
  let total = 0;
  for (const { offset, len } of ranges) {
    if (len <= 0 || len > PLAN_LIMITS.rangeBytes || offset < 0 || offset > 0xffff) {
      throw new Error(`Capture plan: ${what} has a range ${offset}+${len} the walker cannot copy`);
    }
    total += len;
  }
  if (total >= PLAN_LIMITS.recordBytes - PLAN_LIMITS.rangeBytes) {
    throw new Error(`Capture plan: ${what} captures ${total} bytes, more than one record holds`);
  }
}

/** Where a plan's walk starts. */
export interface PlanStart {
  /** An object on the list (0: the agent's own task), or a list head. */
  addr: bigint;
  /** Whether `addr` is a list head rather than an object. */
  isHead: boolean;
  /** Objects to visit at most. */
  limit: number;
}

/** Encodes the walker's parameters. */
export function encodePlan(plan: CapturePlan, start: PlanStart): Uint8Array {
  checkRanges(plan.ranges, "the object");
  if (plan.follows.length > PLAN_LIMITS.follows) {
    throw new Error(
      `Capture plan: ${plan.follows.length} follows, the walker takes ${PLAN_LIMITS.follows}`,
    );
  }
  const bytes = new Uint8Array(PARAMS_BYTES);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, start.addr, true);
  view.setUint32(8, Math.min(start.limit, 0xffff_ffff), true);
  view.setUint16(12, plan.link, true);
  view.setUint8(14, start.isHead ? 1 : 0);
  view.setUint8(15, plan.ranges.length);
  view.setUint8(16, plan.follows.length);
  const putRanges = (at: number, ranges: FieldRange[]) => {
    ranges.forEach((r, i) => {
      view.setUint16(at + i * 4, r.offset, true);
      view.setUint16(at + i * 4 + 2, r.len, true);
    });
  };
  putRanges(24, plan.ranges);
  plan.follows.forEach((follow, i) => {
    checkRanges(follow.ranges, `follow ${i}`);
    const at = 24 + PLAN_LIMITS.ranges * 4 + i * (4 + PLAN_LIMITS.ranges * 4);
    view.setUint16(at, follow.pointer, true);
    view.setUint16(at + 2, follow.ranges.length, true);
    putRanges(at + 4, follow.ranges);
  });
  return bytes;
}

/** Puts the ranges of one FIELDS record into `ranges`, as the plan lays them out. */
export function storeFields(plan: CapturePlan, record: BpfRecord, ranges: RangeCache): void {
  const which = Number(record.value);
  const layout = which === FieldsOf.Object
    ? plan.ranges
    : which === FieldsOf.Anchor
    ? [{ offset: 0, len: 8 }]
    : plan.follows[which - FieldsOf.Follow0]?.ranges;
  if (layout === undefined) throw new Error(`FIELDS record for unknown part ${which}`);
  let at = 0;
  for (const { offset, len } of layout) {
    if (at + len > record.payload.byteLength) {
      throw new Error(`FIELDS record at 0x${record.addr.toString(16)} is shorter than its plan`);
    }
    ranges.put(record.addr + BigInt(offset), record.payload.subarray(at, at + len));
    at += len;
  }
}

/** Whether a record is a FIELDS record. */
export function isFields(record: BpfRecord): boolean {
  return record.kind === RecordKind.Fields;
}
