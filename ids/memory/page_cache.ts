/**
 * The IDS's cache of guest kernel pages. Every fetch mode fills it; the OS
 * views read only through it (via {@linkcode KernelMemory}).
 *
 * @module
 */

/** Guest pages by page address. */
export class PageCache {
  // Keyed by page number as a plain number (exact: below 2^52), far cheaper than bigint keys.
  readonly #pages = new Map<number, Uint8Array>();
  readonly #mask: bigint;
  readonly #shift: bigint;

  /** @param pageSize the guest's page size (a power of two) */
  constructor(readonly pageSize = 4096) {
    if (pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0) {
      throw new Error(`Page size must be a power of two, not ${pageSize}`);
    }
    this.#mask = ~BigInt(pageSize - 1) & 0xffff_ffff_ffff_ffffn;
    this.#shift = BigInt(Math.log2(pageSize));
  }

  /** The address of the page that holds `addr`. */
  pageOf(addr: bigint): bigint {
    return addr & this.#mask;
  }

  /** The cached page at page address `page`, if any. */
  get(page: bigint): Uint8Array | undefined {
    return this.#pages.get(Number(page >> this.#shift));
  }

  /** Stores a page; its length must be the page size. */
  put(page: bigint, bytes: Uint8Array): void {
    if (bytes.byteLength !== this.pageSize) {
      throw new Error(
        `Page at 0x${page.toString(16)} has ${bytes.byteLength} bytes, not ${this.pageSize}`,
      );
    }
    if (this.pageOf(page) !== page) throw new Error(`0x${page.toString(16)} is not a page address`);
    this.#pages.set(Number(page >> this.#shift), bytes);
  }

  /** Number of cached pages. */
  get size(): number {
    return this.#pages.size;
  }

  /** Forgets every page. */
  clear(): void {
    this.#pages.clear();
  }
}
