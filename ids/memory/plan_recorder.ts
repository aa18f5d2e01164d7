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
import { type CapturePlan, coalesce, type FieldRange } from "./plan.ts";

// Made-up addresses, far from any kernel address: the object, and one region per pointer.
const OBJECT_BASE = 0x1000_0000_0000_0000n;
const FOLLOW_BASE = 0x2000_0000_0000_0000n;
const REGION = 1n << 32n;

class RecordingMemory implements MemoryReader {
  readonly object: FieldRange[] = [];
  /** By pointer offset: the made-up address it returned and the reads through it. */
  readonly follows = new Map<number, { base: bigint; ranges: FieldRange[] }>();

  read(addr: bigint, len: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(len);
    if (addr >= OBJECT_BASE && addr < OBJECT_BASE + REGION) {
      const offset = Number(addr - OBJECT_BASE);
      this.object.push({ offset, len });
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
