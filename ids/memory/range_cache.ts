/**
 * Byte ranges of guest memory that `fields` mode captured: exactly the
 * members the OS views read, not whole pages. Indexed by page so that a read
 * finds the range that holds it quickly.
 *
 * @module
 */

/** A range as seen from one page it touches: offsets relative to that page's start. */
interface Range {
  /** Offset of the range's first byte (negative when it starts in an earlier page). */
  lo: number;
  /** Offset just past its last byte. */
  hi: number;
  bytes: Uint8Array;
}

/** Captured byte ranges, looked up by the read they satisfy. */
export class RangeCache {
  // Keyed by page number as a plain number (exact: below 2^52), far cheaper than bigint keys.
  readonly #byPage = new Map<number, Range[]>();
  readonly #shift: bigint;
  readonly #offsetMask: bigint;
  #count = 0;

  /** @param pageSize the guest's page size (ranges are indexed by the pages they touch) */
  constructor(pageSize = 4096) {
    this.#shift = BigInt(Math.log2(pageSize));
    this.#offsetMask = BigInt(pageSize - 1);
  }

  /** Number of ranges held. */
  get size(): number {
    return this.#count;
  }

  /** Stores the bytes at `addr`. */
  put(addr: bigint, bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    const first = Number(addr >> this.#shift);
    const last = Number((addr + BigInt(bytes.byteLength) - 1n) >> this.#shift);
    const pageSize = Number(this.#offsetMask) + 1;
    // Offsets are plain numbers from here on: lookups do no 64-bit arithmetic.
    const lo = Number(addr & this.#offsetMask);
    for (let page = first; page <= last; page++) {
      const shifted = lo - (page - first) * pageSize;
      const range = { lo: shifted, hi: shifted + bytes.byteLength, bytes };
      const list = this.#byPage.get(page);
      if (list) list.push(range);
      else this.#byPage.set(page, [range]);
    }
    this.#count++;
  }

  /** The `len` bytes at `addr` if one captured range holds all of them. */
  get(addr: bigint, len: number): Uint8Array | undefined {
    const list = this.#byPage.get(Number(addr >> this.#shift));
    if (list === undefined) return undefined;
    const offset = Number(addr & this.#offsetMask);
    const end = offset + len;
    for (const range of list) {
      if (range.lo <= offset && end <= range.hi) {
        return range.bytes.subarray(offset - range.lo, end - range.lo);
      }
    }
    return undefined;
  }
}
