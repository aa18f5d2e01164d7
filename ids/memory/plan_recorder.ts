/**
 * Learns a capture plan by running a view's per-object reader once against a
 * memory that records every read instead of answering it: reads inside the
 * object become its ranges; an 8-byte read hands back a made-up pointer, and
 * reads through that pointer become the ranges to capture where the real
 * pointer points. So the plan is derived from the view's own code and cannot
 * drift from it.
 *
 * @module
 */
import type { MemoryReader } from "./memory.ts";
import { type CapturePlan, coalesce, type FieldRange, type FollowPlan } from "./plan.ts";

// Made-up addresses, far from any kernel address: the object, and one region per pointer.
const OBJECT_BASE = 0x1000_0000_0000_0000n;
const FOLLOW_BASE = 0x2000_0000_0000_0000n;
const REGION = 1n << 32n;

class RecordingMemory implements MemoryReader {
  readonly object: FieldRange[] = [];
  /** By pointer offset: the made-up address it returned and the reads through it. */
  readonly follows = new Map<number, { base: bigint; ranges: FieldRange[] }>();
  /** Bytes of the object that reads return (by offset); the others read as zero. */
  readonly #preset: ReadonlyMap<number, number>;

  constructor(preset: ReadonlyMap<number, number> = new Map()) {
    this.#preset = preset;
  }

  read(addr: bigint, len: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(len);
    if (addr >= OBJECT_BASE && addr < OBJECT_BASE + REGION) {
      const offset = Number(addr - OBJECT_BASE);
      this.object.push({ offset, len });
      for (let i = 0; i < len; i++) bytes[i] = this.#preset.get(offset + i) ?? 0;
      if (len === 8) {
        let follow = this.follows.get(offset);
        if (follow === undefined) {
          follow = { base: FOLLOW_BASE + BigInt(this.follows.size) * REGION, ranges: [] };
          this.follows.set(offset, follow);
        }
        new DataView(bytes.buffer).setBigUint64(0, follow.base, true);
      }
      return Promise.resolve(bytes);
    }
    for (const follow of this.follows.values()) {
      if (addr >= follow.base && addr < follow.base + REGION) {
        follow.ranges.push({ offset: Number(addr - follow.base), len });
        return Promise.resolve(bytes); // a pointer read here is NULL: one level of follows
      }
    }
    return Promise.reject(
      new Error(
        `Cannot plan: the view read 0x${addr.toString(16)}, outside its object and pointers`,
      ),
    );
  }

  async u64(addr: bigint): Promise<bigint> {
    return new DataView((await this.read(addr, 8)).buffer).getBigUint64(0, true);
  }

  async u32(addr: bigint): Promise<number> {
    return new DataView((await this.read(addr, 4)).buffer).getUint32(0, true);
  }

  async i32(addr: bigint): Promise<number> {
    return new DataView((await this.read(addr, 4)).buffer).getInt32(0, true);
  }

  async cString(addr: bigint, max: number): Promise<string> {
    await this.read(addr, max);
    return "";
  }
}

/**
 * The capture plan of `readObject` (a view's reader of one object on a list
 * whose next pointer is at `link`).
 */
export async function recordPlan(
  readObject: (mem: MemoryReader, obj: bigint) => Promise<unknown>,
  link: number,
): Promise<CapturePlan> {
  const memory = new RecordingMemory();
  await readObject(memory, OBJECT_BASE);
  const follows = [...memory.follows.entries()]
    .filter(([, follow]) => follow.ranges.length > 0)
    .map(([pointer, follow]) => ({ pointer, ranges: coalesce(follow.ranges) }));
  return {
    link,
    ranges: coalesce([...memory.object, { offset: link, len: 8 }]),
    follows,
  };
}

/** A pointer to follow only when the object's guard byte has one of some values. */
export interface GuardedFollowPlan extends FollowPlan {
  /** Bit v set: follow when the guard byte is v (values below 32). */
  mask: number;
}

/** A capture plan for objects whose reader reads differently by their contents. */
export interface GuardedPlan {
  /** Ranges of each object (the links included). */
  ranges: FieldRange[];
  /** Offset of the guard byte in the object. */
  guard: number;
  /** Pointers to follow, each for some guard values. */
  follows: GuardedFollowPlan[];
}

/** One case of {@linkcode recordGuardedPlan}: a reader and the object bytes it meets. */
export interface PlanCase {
  /** The view's reader of one object. */
  read: (mem: MemoryReader, obj: bigint) => Promise<unknown>;
  /** Bytes of the object, by offset (the others read as zero). */
  preset: ReadonlyMap<number, number>;
}

/**
 * The capture plan of a view's readers when what they read depends on the
 * object: each case runs a reader on an object with some bytes preset, and the
 * plan holds every range any case read, the chain links at `links`, and each
 * pointer any case followed, with the guard byte's values (at `guard`, below
 * 32) of the cases that followed it.
 */
export async function recordGuardedPlan(
  cases: PlanCase[],
  links: number[],
  guard: number,
): Promise<GuardedPlan> {
  const object: FieldRange[] = links.map((offset) => ({ offset, len: 8 }));
  const follows = new Map<number, { ranges: FieldRange[]; mask: number }>();
  for (const { read, preset } of cases) {
    const value = preset.get(guard) ?? 0;
    if (value >= 32) throw new Error(`Cannot plan: guard value ${value} is not below 32`);
    const memory = new RecordingMemory(preset);
    await read(memory, OBJECT_BASE);
    object.push(...memory.object);
    for (const [pointer, follow] of memory.follows) {
      if (follow.ranges.length === 0) continue;
      const merged = follows.get(pointer) ?? { ranges: [], mask: 0 };
      merged.ranges.push(...follow.ranges);
      merged.mask = (merged.mask | (1 << value)) >>> 0;
      follows.set(pointer, merged);
    }
  }
  return {
    ranges: coalesce(object),
    guard,
    follows: [...follows.entries()].map(([pointer, f]) => ({
      pointer,
      ranges: coalesce(f.ranges),
      mask: f.mask,
    })),
  };
}
