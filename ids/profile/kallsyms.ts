/**
 * Parser for the text of `/proc/kallsyms`: one symbol per line,
 * `"ffffffff81000000 T _stext"`, with `"\t[modname]"` appended for symbols of loaded modules.
 *
 * Addresses are bigints: kernel addresses exceed 2^53. When the reader lacks CAP_SYSLOG (or
 * `kernel.kptr_restrict` is 2) the kernel prints every address as zero; {@link Kallsyms.restricted}
 * reports that and address lookups throw instead of returning a meaningless 0.
 *
 * @example
 * ```ts
 * const ksyms = Kallsyms.parse(await Deno.readTextFile("/proc/kallsyms"));
 * ksyms.lookup("init_task", { types: DATA_SYMBOL_TYPES }); // 0xffffffff82a0c940n or undefined
 * ```
 * @module
 */

/** Symbol type letters of data symbols (initialized data `d`/`D`, bss `b`/`B`). */
export const DATA_SYMBOL_TYPES = "dDbB";

/** Error thrown when kallsyms text cannot be parsed or a lookup cannot be answered. */
export class KallsymsError extends Error {
  /** Creates the error; `message` is in sentence case, without a trailing period. */
  constructor(message: string) {
    super(message);
    this.name = "KallsymsError";
  }
}

/** One line of `/proc/kallsyms`. */
export interface KernelSymbol {
  /** Symbol name. */
  name: string;
  /** Address (0n everywhere when kallsyms is restricted). */
  address: bigint;
  /** nm-style type letter: `T`/`t` text, `D`/`d` data, `B`/`b` bss, `R`/`r` rodata... */
  type: string;
  /** Module name for module symbols; undefined for the core kernel. */
  module?: string;
}

/** Options of {@link Kallsyms.lookup}. */
export interface LookupOptions {
  /**
   * Accepted type letters, in order of preference, e.g. {@link DATA_SYMBOL_TYPES}. When omitted
   * every type is accepted.
   */
  types?: string;
}

/** An address range `[start, end)`. */
export interface AddressRange {
  /** First address. */
  start: bigint;
  /** Address just past the end. */
  end: bigint;
}

/** A parsed line; the address stays hex text until it is asked for (parsing stays fast). */
interface RawSymbol {
  name: string;
  hex: string;
  type: string;
  module: string | undefined;
}

/** Lookups answered by scanning before a name index is built (a scan costs about 1 ms). */
const INDEX_AFTER_SCANS = 16;
const HEX = /^[0-9a-fA-F]{1,16}$/;
const NON_ZERO = /[1-9a-fA-F]/;

function toSymbol(raw: RawSymbol): KernelSymbol {
  const symbol: KernelSymbol = { name: raw.name, address: BigInt(`0x${raw.hex}`), type: raw.type };
  if (raw.module !== undefined) symbol.module = raw.module;
  return symbol;
}

/** Splits one line into its fields, or returns undefined when it is malformed. */
function parseLine(line: string): RawSymbol | undefined {
  const a = line.indexOf(" ");
  const b = line.indexOf(" ", a + 1);
  if (a <= 0 || b !== a + 2) return undefined;
  const hex = line.slice(0, a);
  if (!HEX.test(hex)) return undefined;
  const tab = line.indexOf("\t", b + 1);
  const name = (tab === -1 ? line.slice(b + 1) : line.slice(b + 1, tab)).trimEnd();
  if (name === "" || name.includes(" ")) return undefined;
  let module: string | undefined;
  if (tab !== -1) {
    const tail = line.slice(tab + 1).trim();
    if (!tail.startsWith("[") || !tail.endsWith("]") || tail.length < 3) return undefined;
    module = tail.slice(1, -1);
  }
  return { name, hex, type: line.charAt(a + 1), module };
}

/** Symbols of a kernel, from `/proc/kallsyms`. */
export class Kallsyms {
  readonly #symbols: RawSymbol[];
  /** Name index, built only once enough lookups make it cheaper than scanning. */
  #byName: Map<string, RawSymbol[]> | undefined;
  #scans = 0;
  /** True when every address is zero (`kptr_restrict`, or read without CAP_SYSLOG). */
  readonly restricted: boolean;

  private constructor(symbols: RawSymbol[], restricted: boolean) {
    this.#symbols = symbols;
    this.restricted = restricted;
  }

  /**
   * Parses `/proc/kallsyms` text. Blank lines are skipped.
   *
   * @throws {KallsymsError} on a malformed line (with its line number)
   */
  static parse(text: string): Kallsyms {
    const symbols: RawSymbol[] = [];
    let nonZero = false;
    let lineNo = 0;
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf("\n", start);
      if (end === -1) end = text.length;
      const line = text.slice(start, end);
      start = end + 1;
      lineNo++;
      if (line.trim() === "") continue;
      const symbol = parseLine(line);
      if (!symbol) {
        throw new KallsymsError(
          `Cannot parse kallsyms line ${lineNo}: expected "address type name [module]", got ${
            JSON.stringify(line.slice(0, 80))
          }`,
        );
      }
      if (!nonZero && NON_ZERO.test(symbol.hex)) nonZero = true;
      symbols.push(symbol);
    }
    return new Kallsyms(symbols, symbols.length > 0 && !nonZero);
  }

  /** Number of symbols parsed. */
  get size(): number {
    return this.#symbols.length;
  }

  /** Whether a symbol of that name exists (core or module), whatever its address. */
  has(name: string, options: LookupOptions = {}): boolean {
    return this.#candidates(name, options).length > 0;
  }

  /** All symbols of that name, core and module, in file order. */
  symbols(name: string): KernelSymbol[] {
    return this.#named(name).map(toSymbol);
  }

  /**
   * Address of a symbol. Core kernel symbols are preferred over module symbols; among several
   * candidates, the one whose type comes first in `options.types` wins, then file order.
   *
   * @returns the address, or undefined when no symbol matches
   * @throws {KallsymsError} when the addresses are restricted (all zero)
   */
  lookup(name: string, options: LookupOptions = {}): bigint | undefined {
    const candidates = this.#candidates(name, options);
    if (candidates.length === 0) return undefined;
    if (this.restricted) {
      throw new KallsymsError(
        `Cannot look up kernel symbol ${name}: all kallsyms addresses are zero (kptr_restrict, or read without CAP_SYSLOG)`,
      );
    }
    const types = options.types;
    const rank = (s: RawSymbol): number =>
      (s.module === undefined ? 0 : 1000) + (types ? types.indexOf(s.type) : 0);
    let best = candidates[0];
    for (const candidate of candidates) {
      if (best === undefined || rank(candidate) < rank(best)) best = candidate;
    }
    return best === undefined ? undefined : BigInt(`0x${best.hex}`);
  }

  /**
   * The core kernel text range, from `_stext` to `_etext`.
   *
   * @throws {KallsymsError} when a bound is missing or the addresses are restricted
   */
  textRange(): AddressRange {
    const start = this.lookup("_stext", { types: "TtWw" });
    const end = this.lookup("_etext", { types: "TtWwRrDd" });
    if (start === undefined || end === undefined) {
      throw new KallsymsError(
        `Cannot find the kernel text range: kallsyms has no ${
          start === undefined ? "_stext" : "_etext"
        }`,
      );
    }
    return { start, end };
  }

  /** Core kernel symbols (not modules') by address, built on first use. */
  #byAddress: { addresses: bigint[]; symbols: RawSymbol[] } | undefined;

  #sorted(): { addresses: bigint[]; symbols: RawSymbol[] } {
    if (this.#byAddress === undefined) {
      const symbols = this.#symbols.filter((s) => s.module === undefined)
        .map((s) => ({ s, a: BigInt(`0x${s.hex}`) }))
        .sort((x, y) => x.a < y.a ? -1 : x.a > y.a ? 1 : 0);
      this.#byAddress = { addresses: symbols.map((x) => x.a), symbols: symbols.map((x) => x.s) };
    }
    return this.#byAddress;
  }

  /** Index of the first core symbol at or above `address`. */
  #lowerBound(address: bigint): number {
    const { addresses } = this.#sorted();
    let lo = 0;
    let hi = addresses.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (addresses[mid]! < address) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The core kernel symbols at exactly `address` (aliases share an address). */
  at(address: bigint): KernelSymbol[] {
    const { addresses, symbols } = this.#sorted();
    const found: KernelSymbol[] = [];
    for (let i = this.#lowerBound(address); addresses[i] === address; i++) {
      found.push(toSymbol(symbols[i]!));
    }
    return found;
  }

  /** The first core kernel symbol above `address` (where the object at `address` ends at most). */
  after(address: bigint): KernelSymbol | undefined {
    const { addresses, symbols } = this.#sorted();
    let i = this.#lowerBound(address);
    while (addresses[i] === address) i++;
    const next = symbols[i];
    return next === undefined ? undefined : toSymbol(next);
  }

  /** The core kernel symbol that contains `address` (the nearest at or below it). */
  containing(address: bigint): KernelSymbol | undefined {
    const { addresses, symbols } = this.#sorted();
    let i = this.#lowerBound(address);
    if (addresses[i] !== address) i--;
    const symbol = symbols[i];
    return symbol === undefined ? undefined : toSymbol(symbol);
  }

  #candidates(name: string, options: LookupOptions): RawSymbol[] {
    const all = this.#named(name);
    const types = options.types;
    return types === undefined ? [...all] : all.filter((s) => types.includes(s.type));
  }

  #named(name: string): RawSymbol[] {
    if (this.#byName === undefined && ++this.#scans > INDEX_AFTER_SCANS) {
      this.#byName = new Map();
      for (const symbol of this.#symbols) {
        const list = this.#byName.get(symbol.name);
        if (list) list.push(symbol);
        else this.#byName.set(symbol.name, [symbol]);
      }
    }
    if (this.#byName !== undefined) return this.#byName.get(name) ?? [];
    return this.#symbols.filter((symbol) => symbol.name === name);
  }
}
