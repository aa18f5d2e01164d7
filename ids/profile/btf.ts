/**
 * Parser for raw BTF blobs, the format of `/sys/kernel/btf/vmlinux` (see the kernel's
 * `Documentation/bpf/btf.rst` and `include/uapi/linux/btf.h`).
 *
 * The blob is kept as is; parsing records only where each type starts (one `Uint32Array`) and
 * builds a name index for the kinds the kernel profile looks up by name (struct, union, enum,
 * enum64, typedef, fwd). Everything else is decoded on demand, so the 5.5 MB vmlinux BTF of a
 * 6.x kernel (about 150k types) parses in a few milliseconds.
 *
 * Only little-endian BTF (x86-64 guests) is supported.
 *
 * @example
 * ```ts
 * const btf = Btf.parse(await Deno.readFile("/sys/kernel/btf/vmlinux"));
 * btf.memberOf("task_struct", "tasks"); // { offset: 1056, size: 16, kind: "struct", ... }
 * ```
 * @module
 */

/** BTF type kinds, numbered as `BTF_KIND_*` in `include/uapi/linux/btf.h`. */
export const BtfKind = {
  UNKN: 0,
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

/** A BTF kind number (`BTF_KIND_*`). */
export type BtfKind = typeof BtfKind[keyof typeof BtfKind];

/** Lower-case kind names, as `bpftool btf dump` prints them (in upper case), by kind number. */
export type BtfKindName =
  | "void"
  | "int"
  | "ptr"
  | "array"
  | "struct"
  | "union"
  | "enum"
  | "fwd"
  | "typedef"
  | "volatile"
  | "const"
  | "restrict"
  | "func"
  | "func_proto"
  | "var"
  | "datasec"
  | "float"
  | "decl_tag"
  | "type_tag"
  | "enum64";

const KIND_NAMES: readonly BtfKindName[] = [
  "void",
  "int",
  "ptr",
  "array",
  "struct",
  "union",
  "enum",
  "fwd",
  "typedef",
  "volatile",
  "const",
  "restrict",
  "func",
  "func_proto",
  "var",
  "datasec",
  "float",
  "decl_tag",
  "type_tag",
  "enum64",
];

/** Error thrown when a BTF blob cannot be parsed or a lookup meets an inconsistent blob. */
export class BtfError extends Error {
  /** Creates the error; `message` is in sentence case, without a trailing period. */
  constructor(message: string) {
    super(message);
    this.name = "BtfError";
  }
}

/** One member of a struct or union, as stored in BTF (offsets relative to its parent). */
export interface BtfMember {
  /** Member name; `""` for an anonymous struct/union member. */
  name: string;
  /** Declared type id of the member (before resolving typedefs and modifiers). */
  typeId: number;
  /** Offset from the start of the parent, in bits. */
  bitOffset: number;
  /** Bitfield width in bits; 0 when the member is not a bitfield. */
  bitSize: number;
}

/** Where a (possibly nested) member lives, relative to the start of the outermost struct. */
export interface BtfMemberInfo {
  /** Byte offset of the member (`bitOffset >> 3`; for a bitfield, the byte holding its first bit). */
  offset: number;
  /** Offset in bits. */
  bitOffset: number;
  /** Bitfield width in bits; 0 when the member is not a bitfield. */
  bitSize: number;
  /** Size in bytes of the member's type (0 when the type has no size, e.g. a flexible array). */
  size: number;
  /** Declared type id of the member. */
  typeId: number;
  /** Type id after resolving typedef/const/volatile/restrict/type_tag. */
  resolvedTypeId: number;
  /** Kind of the resolved type (`"int"`, `"ptr"`, `"struct"`, `"array"`...). */
  kind: BtfKindName;
}

/** An array type: element type and element count. */
export interface BtfArray {
  /** Declared element type id. */
  elemTypeId: number;
  /** Index type id (an int). */
  indexTypeId: number;
  /** Number of elements (0 for a flexible array member). */
  count: number;
  /** Size in bytes of one element. */
  elemSize: number;
}

/** One enumerator of an enum or enum64. */
export interface BtfEnumValue {
  /** Enumerator name, e.g. `MODULE_STATE_LIVE`. */
  name: string;
  /** Value; exact for enum (32-bit) and for enum64 values within ±2^53. */
  value: number;
  /** Exact value as a bigint (matters only for enum64). */
  value64: bigint;
}

const HEADER_LEN = 24;
const MAGIC = 0xeb9f;
const MAGIC_SWAPPED = 0x9feb;
const POINTER_SIZE = 8;
const INDEXED_KINDS = new Set<number>([
  BtfKind.STRUCT,
  BtfKind.UNION,
  BtfKind.ENUM,
  BtfKind.ENUM64,
  BtfKind.TYPEDEF,
  BtfKind.FWD,
]);
const MAX_RESOLVE_DEPTH = 64;

/** Size in bytes of the data that follows the 12-byte `struct btf_type` for a kind. */
function trailerSize(kind: number, vlen: number): number | undefined {
  switch (kind) {
    case BtfKind.INT:
    case BtfKind.VAR:
    case BtfKind.DECL_TAG:
      return 4;
    case BtfKind.ARRAY:
      return 12;
    case BtfKind.STRUCT:
    case BtfKind.UNION:
    case BtfKind.DATASEC:
    case BtfKind.ENUM64:
      return 12 * vlen;
    case BtfKind.ENUM:
    case BtfKind.FUNC_PROTO:
      return 8 * vlen;
    case BtfKind.PTR:
    case BtfKind.FWD:
    case BtfKind.TYPEDEF:
    case BtfKind.VOLATILE:
    case BtfKind.CONST:
    case BtfKind.RESTRICT:
    case BtfKind.FUNC:
    case BtfKind.FLOAT:
    case BtfKind.TYPE_TAG:
      return 0;
    default:
      return undefined;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** A parsed BTF blob with lookups by type id and by name. */
export class Btf {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  /** Absolute byte offset of each type record, indexed by type id (index 0 = void, unused). */
  readonly #typeOffsets: Uint32Array;
  readonly #strStart: number;
  readonly #strLen: number;
  readonly #nameIndex: Map<string, number[]>;
  readonly #decoder = new TextDecoder();

  private constructor(
    bytes: Uint8Array,
    typeOffsets: Uint32Array,
    strStart: number,
    strLen: number,
  ) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#typeOffsets = typeOffsets;
    this.#strStart = strStart;
    this.#strLen = strLen;
    this.#nameIndex = new Map();
    for (let id = 1; id < typeOffsets.length; id++) {
      const kind = this.kind(id);
      if (!INDEXED_KINDS.has(kind)) continue;
      const nameOff = this.#u32(this.#offsetOf(id));
      if (nameOff === 0) continue;
      const name = this.#string(nameOff);
      const ids = this.#nameIndex.get(name);
      if (ids) ids.push(id);
      else this.#nameIndex.set(name, [id]);
    }
  }

  /**
   * Parses a raw BTF blob (header, type section, string section).
   *
   * @throws {BtfError} on bad magic, big-endian BTF, unknown version, truncation, a section
   *   outside the blob, an unknown kind or a name offset outside the string section
   */
  static parse(bytes: Uint8Array): Btf {
    if (bytes.byteLength < HEADER_LEN) {
      throw new BtfError(
        `Cannot parse BTF: truncated header (${bytes.byteLength} bytes, need ${HEADER_LEN})`,
      );
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const magic = view.getUint16(0, true);
    if (magic === MAGIC_SWAPPED) {
      throw new BtfError("Cannot parse BTF: big-endian BTF is not supported");
    }
    if (magic !== MAGIC) {
      throw new BtfError(`Cannot parse BTF: bad magic ${hex(magic)}`);
    }
    const version = view.getUint8(2);
    if (version !== 1) {
      throw new BtfError(`Cannot parse BTF: unsupported version ${version}`);
    }
    const hdrLen = view.getUint32(4, true);
    if (hdrLen < HEADER_LEN || hdrLen > bytes.byteLength) {
      throw new BtfError(
        `Cannot parse BTF: header length ${hdrLen} is invalid for a ${bytes.byteLength}-byte blob`,
      );
    }
    const typeOff = view.getUint32(8, true);
    const typeLen = view.getUint32(12, true);
    const strOff = view.getUint32(16, true);
    const strLen = view.getUint32(20, true);
    const typeStart = hdrLen + typeOff;
    const typeEnd = typeStart + typeLen;
    const strStart = hdrLen + strOff;
    if (typeEnd > bytes.byteLength) {
      throw new BtfError(
        `Cannot parse BTF: truncated type section (ends at ${typeEnd}, blob has ${bytes.byteLength} bytes)`,
      );
    }
    if (strStart + strLen > bytes.byteLength) {
      throw new BtfError(
        `Cannot parse BTF: truncated string section (ends at ${
          strStart + strLen
        }, blob has ${bytes.byteLength} bytes)`,
      );
    }
    if (typeLen % 4 !== 0) {
      throw new BtfError(`Cannot parse BTF: type section length ${typeLen} is not a multiple of 4`);
    }

    // Upper bound on the type count: every record is at least 12 bytes.
    let offsets = new Uint32Array(Math.floor(typeLen / 12) + 1);
    let id = 1;
    let pos = typeStart;
    while (pos < typeEnd) {
      if (pos + 12 > typeEnd) {
        throw new BtfError(`Cannot parse BTF: truncated type ${id} at offset ${pos}`);
      }
      const nameOff = view.getUint32(pos, true);
      const info = view.getUint32(pos + 4, true);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const extra = trailerSize(kind, vlen);
      if (extra === undefined) {
        throw new BtfError(`Cannot parse BTF: unknown kind ${kind} of type ${id}`);
      }
      if (nameOff >= strLen && !(nameOff === 0 && strLen === 0)) {
        throw new BtfError(
          `Cannot parse BTF: name offset ${nameOff} of type ${id} is outside the string section`,
        );
      }
      const next = pos + 12 + extra;
      if (next > typeEnd) {
        throw new BtfError(`Cannot parse BTF: truncated type ${id} at offset ${pos}`);
      }
      offsets[id] = pos;
      id++;
      pos = next;
    }
    offsets = offsets.slice(0, id);
    return new Btf(bytes, offsets, strStart, strLen);
  }

  /** Number of type ids, including id 0 (void): valid ids are `1 .. typeCount - 1`. */
  get typeCount(): number {
    return this.#typeOffsets.length;
  }

  /** Kind number of a type id (0 for void). @throws {BtfError} for an id out of range */
  kind(id: number): BtfKind {
    if (id === 0) return BtfKind.UNKN;
    return ((this.#u32(this.#offsetOf(id) + 4) >>> 24) & 0x1f) as BtfKind;
  }

  /** Kind name of a type id (`"struct"`, `"ptr"`...; `"void"` for id 0). */
  kindName(id: number): BtfKindName {
    return KIND_NAMES[this.kind(id)] ?? "void";
  }

  /** Name of a type id; `""` for anonymous types and void. */
  name(id: number): string {
    if (id === 0) return "";
    return this.#string(this.#u32(this.#offsetOf(id)));
  }

  /** `vlen` of a type: member count for struct/union/enum/func_proto/datasec. */
  vlen(id: number): number {
    if (id === 0) return 0;
    return this.#u32(this.#offsetOf(id) + 4) & 0xffff;
  }

  /** `kind_flag` of a type (bitfield encoding for struct/union, union for fwd, signedness for enums). */
  kindFlag(id: number): boolean {
    if (id === 0) return false;
    return (this.#u32(this.#offsetOf(id) + 4) >>> 31) === 1;
  }

  /** The type a ptr/typedef/modifier/func/var/decl_tag/type_tag refers to (0 for void). */
  referencedType(id: number): number {
    return this.#u32(this.#offsetOf(id) + 8);
  }

  /** All type ids with this name among struct, union, enum, enum64, typedef and fwd, in id order. */
  typesNamed(name: string): readonly number[] {
    return this.#nameIndex.get(name) ?? [];
  }

  /**
   * Finds a named struct (or union with `{ union: true }`), preferring a definition with members
   * over an empty one and over a forward declaration.
   *
   * @returns the type id, or undefined when BTF has no struct (or only a fwd) of that name
   */
  findStruct(name: string, options: { union?: boolean } = {}): number | undefined {
    const wanted = options.union ? BtfKind.UNION : BtfKind.STRUCT;
    let empty: number | undefined;
    for (const id of this.typesNamed(name)) {
      if (this.kind(id) !== wanted) continue;
      if (this.vlen(id) > 0) return id;
      empty ??= id;
    }
    return empty;
  }

  /** Finds a named enum or enum64. @returns the type id, or undefined */
  findEnum(name: string): number | undefined {
    return this.typesNamed(name).find((id) => {
      const kind = this.kind(id);
      return kind === BtfKind.ENUM || kind === BtfKind.ENUM64;
    });
  }

  /** Finds a named typedef. @returns the type id, or undefined */
  findTypedef(name: string): number | undefined {
    return this.typesNamed(name).find((id) => this.kind(id) === BtfKind.TYPEDEF);
  }

  /** Strips typedef, const, volatile, restrict and type_tag from a type id. */
  resolve(id: number): number {
    let current = id;
    for (let depth = 0; depth < MAX_RESOLVE_DEPTH; depth++) {
      switch (this.kind(current)) {
        case BtfKind.TYPEDEF:
        case BtfKind.VOLATILE:
        case BtfKind.CONST:
        case BtfKind.RESTRICT:
        case BtfKind.TYPE_TAG:
          current = this.referencedType(current);
          break;
        default:
          return current;
      }
    }
    throw new BtfError(`Cannot resolve BTF type ${id}: reference chain too long or cyclic`);
  }

  /**
   * Size in bytes of a type, resolving typedefs and modifiers; arrays are `count * elemSize`,
   * pointers 8 bytes (x86-64).
   *
   * @returns undefined for types without a size (void, fwd, func, func_proto, decl_tag)
   */
  sizeOf(id: number): number | undefined {
    const resolved = this.resolve(id);
    switch (this.kind(resolved)) {
      case BtfKind.INT:
      case BtfKind.STRUCT:
      case BtfKind.UNION:
      case BtfKind.ENUM:
      case BtfKind.ENUM64:
      case BtfKind.FLOAT:
      case BtfKind.DATASEC:
        return this.#u32(this.#offsetOf(resolved) + 8);
      case BtfKind.PTR:
        return POINTER_SIZE;
      case BtfKind.ARRAY: {
        const array = this.array(resolved);
        return array === undefined ? undefined : array.count * array.elemSize;
      }
      case BtfKind.VAR:
        return this.sizeOf(this.referencedType(resolved));
      default:
        return undefined;
    }
  }

  /** `sizeof(struct name)`; undefined when there is no such struct. */
  structSize(name: string): number | undefined {
    const id = this.findStruct(name);
    return id === undefined ? undefined : this.sizeOf(id);
  }

  /** Element type and count of an array type (after resolving typedefs); undefined otherwise. */
  array(id: number): BtfArray | undefined {
    const resolved = this.resolve(id);
    if (this.kind(resolved) !== BtfKind.ARRAY) return undefined;
    const base = this.#offsetOf(resolved) + 12;
    const elemTypeId = this.#u32(base);
    return {
      elemTypeId,
      indexTypeId: this.#u32(base + 4),
      count: this.#u32(base + 8),
      elemSize: this.sizeOf(elemTypeId) ?? 0,
    };
  }

  /** Members of a struct or union (after resolving typedefs), in declaration order. */
  members(id: number): BtfMember[] {
    const resolved = this.resolve(id);
    const kind = this.kind(resolved);
    if (kind !== BtfKind.STRUCT && kind !== BtfKind.UNION) return [];
    const bitfields = this.kindFlag(resolved);
    const count = this.vlen(resolved);
    const base = this.#offsetOf(resolved) + 12;
    const members: BtfMember[] = [];
    for (let i = 0; i < count; i++) {
      const at = base + 12 * i;
      const raw = this.#u32(at + 8);
      members.push({
        name: this.#string(this.#u32(at)),
        typeId: this.#u32(at + 4),
        bitOffset: bitfields ? raw & 0xffffff : raw,
        bitSize: bitfields ? raw >>> 24 : 0,
      });
    }
    return members;
  }

  /**
   * Locates a member of a named struct (or union) by a dotted path, looking through nested and
   * anonymous struct/union members. A path segment may index an array: `"mem[1].size"`.
   *
   * @example
   * ```ts
   * btf.memberOf("task_struct", "__state");
   * btf.memberOf("cred", "uid.val");
   * btf.memberOf("module", "mem[0].base");
   * ```
   * @returns undefined when the struct or any member on the path is missing
   */
  memberOf(structName: string, path: string): BtfMemberInfo | undefined {
    const id = this.findStruct(structName) ?? this.findStruct(structName, { union: true });
    return id === undefined ? undefined : this.memberOfType(id, path);
  }

  /** Like {@link Btf.memberOf}, starting from a struct/union type id. */
  memberOfType(typeId: number, path: string): BtfMemberInfo | undefined {
    let current = typeId;
    let bitOffset = 0;
    let found: BtfMember | undefined;
    for (const segment of path.split(".")) {
      const match = /^([A-Za-z_$][\w$]*)((?:\[\d+\])*)$/.exec(segment);
      if (!match) return undefined;
      const name = match[1] ?? "";
      const located = this.#findMember(current, name);
      if (!located) return undefined;
      found = located.member;
      bitOffset += located.bitOffset;
      current = found.typeId;
      for (const index of (match[2] ?? "").matchAll(/\[(\d+)\]/g)) {
        const array = this.array(current);
        const i = Number(index[1]);
        if (!array || (array.count !== 0 && i >= array.count)) return undefined;
        bitOffset += i * array.elemSize * 8;
        current = array.elemTypeId;
        found = { ...found, typeId: current, bitSize: 0 };
      }
    }
    if (!found) return undefined;
    const resolvedTypeId = this.resolve(current);
    return {
      offset: Math.floor(bitOffset / 8),
      bitOffset,
      bitSize: found.bitSize,
      size: this.sizeOf(current) ?? 0,
      typeId: current,
      resolvedTypeId,
      kind: this.kindName(resolvedTypeId),
    };
  }

  /** Enumerators of an enum or enum64 type id; empty for other kinds. */
  enumValues(id: number): BtfEnumValue[] {
    const resolved = this.resolve(id);
    const kind = this.kind(resolved);
    const signed = this.kindFlag(resolved);
    const count = this.vlen(resolved);
    const base = this.#offsetOf(resolved) + 12;
    const values: BtfEnumValue[] = [];
    if (kind === BtfKind.ENUM) {
      for (let i = 0; i < count; i++) {
        const at = base + 8 * i;
        // kind_flag marks a signed enum (Linux 6.0, with enum64); like libbpf, read the value
        // unsigned otherwise.
        const value = signed ? this.#view.getInt32(at + 4, true) : this.#u32(at + 4);
        values.push({ name: this.#string(this.#u32(at)), value, value64: BigInt(value) });
      }
    } else if (kind === BtfKind.ENUM64) {
      for (let i = 0; i < count; i++) {
        const at = base + 12 * i;
        const lo = BigInt(this.#u32(at + 4));
        const hi = BigInt(this.#u32(at + 8));
        let value64 = (hi << 32n) | lo;
        if (signed) value64 = BigInt.asIntN(64, value64);
        values.push({ name: this.#string(this.#u32(at)), value: Number(value64), value64 });
      }
    }
    return values;
  }

  /**
   * Value of an enumerator of a named enum, e.g. `enumValue("module_state", "MODULE_STATE_LIVE")`.
   *
   * @returns undefined when the enum or the enumerator is missing
   */
  enumValue(enumName: string, valueName: string): number | undefined {
    const id = this.findEnum(enumName);
    if (id === undefined) return undefined;
    return this.enumValues(id).find((v) => v.name === valueName)?.value;
  }

  #findMember(
    structId: number,
    name: string,
  ): { member: BtfMember; bitOffset: number } | undefined {
    const members = this.members(structId);
    for (const member of members) {
      if (member.name === name) return { member, bitOffset: member.bitOffset };
    }
    for (const member of members) {
      if (member.name !== "") continue;
      const inner = this.#findMember(member.typeId, name);
      if (inner) return { member: inner.member, bitOffset: member.bitOffset + inner.bitOffset };
    }
    return undefined;
  }

  #offsetOf(id: number): number {
    const offset = this.#typeOffsets[id];
    if (offset === undefined || id <= 0 || !Number.isInteger(id)) {
      throw new BtfError(`BTF type id ${id} is out of range (1..${this.typeCount - 1})`);
    }
    return offset;
  }

  #u32(at: number): number {
    return this.#view.getUint32(at, true);
  }

  #string(offset: number): string {
    if (offset === 0) return "";
    if (offset >= this.#strLen) {
      throw new BtfError(`BTF string offset ${offset} is outside the string section`);
    }
    const start = this.#strStart + offset;
    const end = this.#bytes.indexOf(0, start);
    const stop = end === -1 || end > this.#strStart + this.#strLen
      ? this.#strStart + this.#strLen
      : end;
    return this.#decoder.decode(this.#bytes.subarray(start, stop));
  }
}
