/**
 * Byte ranges of guest memory that `fields` mode captured: exactly the
 * members the OS views read, not whole pages. Indexed by page so that a read
 * finds the range that holds it quickly.
 *
 * @module
 */

interface Range {
  start: bigint;
  end: bigint;
  bytes: Uint8Array;
}

/** Captured byte ranges, looked up by the read they satisfy. */
export class RangeCache {
  // Keyed by page number as a plain number (exact: below 2^52), far cheaper than bigint keys.
  readonly #byPage = new Map<number, Range[]>();
  readonly #shift: bigint;
  #count = 0;

  /** @param pageSize the guest's page size (ranges are indexed by the pages they touch) */
  constructor(pageSize = 4096) {
    this.#shift = BigInt(Math.log2(pageSize));
  }

  /** Number of ranges held. */
  get size(): number {
    return this.#count;
  }

  /** Stores the bytes at `addr`. */
  put(addr: bigint, bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    const range = { start: addr, end: addr + BigInt(bytes.byteLength), bytes };
    const last = Number((range.end - 1n) >> this.#shift);
    for (let page = Number(addr >> this.#shift); page <= last; page++) {
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
    const end = addr + BigInt(len);
    for (const range of list) {
      if (range.start <= addr && end <= range.end) {
        const offset = Number(addr - range.start);
        return range.bytes.subarray(offset, offset + len);
      }
    }
    return undefined;
  }
}
