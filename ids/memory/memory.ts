/**
 * The memory layer: `read(addr, len)` over the page cache. A miss asks the
 * page source for one page (one round trip to the agent in `page` mode) and is
 * counted; an unreadable page is a {@linkcode MemoryFault}.
 *
 * @module
 */
import { formatAddress } from "./address.ts";
import { PageCache } from "./page_cache.ts";
import type { RangeCache } from "./range_cache.ts";
import type { Budget } from "../client/budget.ts";

/**
 * What an OS view reads guest memory through. {@linkcode KernelMemory}
 * implements it over the caches; the capture-plan recorder implements it to
 * learn what a view reads.
 */
export interface MemoryReader {
  /** Reads `len` bytes at `addr`. */
  read(addr: bigint, len: number): Promise<Uint8Array>;
  /** Reads a little-endian u64 (a pointer on x86-64). */
  u64(addr: bigint): Promise<bigint>;
  /** Reads a little-endian u32. */
  u32(addr: bigint): Promise<number>;
  /** Reads a little-endian s32. */
  i32(addr: bigint): Promise<number>;
  /** Reads a NUL-terminated string of at most `max` bytes (a char array). */
  cString(addr: bigint, max: number): Promise<string>;
  /** Fetches the pages under `addrs` ahead of the reads, in few requests (where it can). */
  prefetch?(addrs: Iterable<bigint>): Promise<number>;
  /**
   * A reader of the same memory as it is now, over empty caches; undefined
   * when there is none. A lockless walk that met a structure changing under
   * it reads it again through one.
   */
  fresh?(): MemoryReader | undefined;
}

/** Fetches one page that the cache does not hold. */
export interface PageSource {
  /** The bytes of the page at page address `page`; throws {@linkcode MemoryFault} when unreadable. */
  readPage(page: bigint): Promise<Uint8Array>;
  /** Several pages in one request (at most `batchPages`): each page's bytes or its fault. */
  readPages?(pages: bigint[]): Promise<Map<bigint, Uint8Array | MemoryFault>>;
  /** Most pages {@linkcode PageSource.readPages} takes at once. */
  readonly batchPages?: number;
}

/** A guest address could not be read. */
export class MemoryFault extends Error {
  /** The address that failed. */
  readonly addr: bigint;
  /** @param addr the address @param reason why, e.g. "EFAULT (errno 14)" */
  constructor(addr: bigint, reason: string) {
    super(`Cannot read guest memory at ${formatAddress(addr)}: ${reason}`);
    this.name = "MemoryFault";
    this.addr = addr;
  }
}

/** Reads guest kernel memory through a page cache (and the ranges `fields` mode captured). */
export class KernelMemory implements MemoryReader {
  readonly cache: PageCache;
  /** Captured byte ranges, consulted before pages. */
  readonly ranges: RangeCache | undefined;
  readonly #source: PageSource | undefined;
  readonly #faulted = new Map<bigint, MemoryFault>();
  readonly #budget: Budget | undefined;
  #misses = 0;
  #rereads = 0;

  /**
   * @param cache the page cache to read from
   * @param source fetches missing pages; without one, a miss is a fault
   * @param ranges captured byte ranges, read before pages
   * @param budget paced on every read, so that a view walking cached memory keeps to its
   *   deadline and lets the event loop run
   */
  constructor(cache: PageCache, source?: PageSource, ranges?: RangeCache, budget?: Budget) {
    this.cache = cache;
    this.#source = source;
    this.ranges = ranges;
    this.#budget = budget;
  }

  /** Pages that were not in the cache and had to be fetched one by one. */
  get misses(): number {
    return this.#misses;
  }

  /** Of the {@linkcode KernelMemory.misses}, the pages read anew through {@linkcode KernelMemory.fresh}. */
  get rereads(): number {
    return this.#rereads;
  }

  /**
   * Fetches the pages under `addrs` that are not cached yet, in as few
   * requests as the source allows (one per `batchPages`), so that the reads
   * that follow hit the cache. A page that cannot be read is remembered and
   * faults when it is read. Returns the requests made.
   */
  async prefetch(addrs: Iterable<bigint>): Promise<number> {
    const source = this.#source;
    if (source?.readPages === undefined) return 0;
    const wanted = new Set<bigint>();
    for (const addr of addrs) {
      const page = this.cache.pageOf(addr);
      if (this.cache.get(page) === undefined && !this.#faulted.has(page)) wanted.add(page);
    }
    const pages = [...wanted];
    const batch = source.batchPages ?? 1;
    let requests = 0;
    for (let i = 0; i < pages.length; i += batch) {
      const answer = await source.readPages(pages.slice(i, i + batch));
      requests++;
      for (const [page, bytes] of answer) {
        if (bytes instanceof MemoryFault) this.#faulted.set(page, bytes);
        else this.cache.put(page, bytes);
      }
    }
    return requests;
  }

  /**
   * A memory over empty caches that reads the same source, page by page (what
   * was cached here, pages and captured ranges, may be older than the memory
   * is now); its misses count as this memory's too. Undefined without a source.
   */
  fresh(): KernelMemory | undefined {
    const source = this.#source;
    if (source === undefined) return undefined;
    return new KernelMemory(
      new PageCache(this.cache.pageSize),
      {
        readPage: (page) => {
          this.#misses++;
          this.#rereads++;
          return source.readPage(page);
        },
      },
      undefined,
      this.#budget,
    );
  }

  /** Drops every cached page and remembered fault, so that the next reads see memory anew. */
  forget(): void {
    this.cache.clear();
    this.#faulted.clear();
  }

  /** Reads `len` bytes at `addr`. */
  async read(addr: bigint, len: number): Promise<Uint8Array> {
    await this.#budget?.pace();
    const captured = this.ranges?.get(addr, len);
    if (captured !== undefined) return captured;
    const pageSize = this.cache.pageSize;
    const first = this.cache.pageOf(addr);
    const offset = Number(addr - first);
    if (offset + len <= pageSize) {
      return (await this.#page(first)).subarray(offset, offset + len);
    }
    const out = new Uint8Array(len);
    let done = 0;
    let page = first;
    let start = offset;
    while (done < len) {
      const take = Math.min(pageSize - start, len - done);
      out.set((await this.#page(page)).subarray(start, start + take), done);
      done += take;
      page += BigInt(pageSize);
      start = 0;
    }
    return out;
  }

  async #page(page: bigint): Promise<Uint8Array> {
    const cached = this.cache.get(page);
    if (cached !== undefined) return cached;
    const fault = this.#faulted.get(page);
    if (fault !== undefined) throw fault;
    if (this.#source === undefined) throw new MemoryFault(page, "not in the cache");
    this.#misses++;
    try {
      const bytes = await this.#source.readPage(page);
      this.cache.put(page, bytes);
      return bytes;
    } catch (error) {
      if (error instanceof MemoryFault) this.#faulted.set(page, error);
      throw error;
    }
  }

  /** Reads a little-endian u64 (a pointer on x86-64). */
  async u64(addr: bigint): Promise<bigint> {
    const bytes = await this.read(addr, 8);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  }

  /** Reads a little-endian u32. */
  async u32(addr: bigint): Promise<number> {
    const bytes = await this.read(addr, 4);
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
  }

  /** Reads a little-endian s32. */
  async i32(addr: bigint): Promise<number> {
    const bytes = await this.read(addr, 4);
    return new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true);
  }

  /** Reads a NUL-terminated string of at most `max` bytes (a char array). */
  async cString(addr: bigint, max: number): Promise<string> {
    const bytes = await this.read(addr, max);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  }
}
