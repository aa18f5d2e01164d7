/**
 * A small x86-64 decoder for compiler-generated dispatch code such as
 * `x64_sys_call()` (Linux 6.9+, and stable 6.6.26+ / 6.1.85+): a tree of
 * `cmp`/`jcc` on the syscall number ending in tail jumps (`jmp rel32`) or
 * calls to the handlers. It walks the instructions linearly from the first
 * byte and returns every relative branch with its target. It knows only the
 * instructions such code is made of; anything else is an error, never a guess,
 * so a branch is never read from the middle of another instruction. Operand-size
 * prefixed immediates (`66 81`, `66 c7`, `66 b8+r`) take 16 bits; a prefix this
 * decoder cannot place (66 on a branch, a prefix after REX) is refused.
 *
 * @module
 */

/** One relative branch. */
export interface Branch {
  /** Offset of the instruction from the start of the code. */
  offset: number;
  /**
   * `call` (e8), `jmp` (e9/eb), a conditional jump, or an indirect `call`/`jmp`
   * through a register or memory (ff /2../5), whose target is not known (0).
   */
  kind: "call" | "jmp" | "jcc" | "indirect";
  /** Absolute target address. */
  target: bigint;
}

/** The code contained an instruction this decoder does not know. */
export class DecodeError extends Error {
  /** @param offset where @param bytes the bytes there */
  constructor(readonly offset: number, bytes: Uint8Array) {
    super(
      `Cannot decode the instruction at offset 0x${offset.toString(16)}: ${
        [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ")
      }`,
    );
    this.name = "DecodeError";
  }
}

/** Bytes taken by a ModRM operand (the ModRM byte, an SIB byte, a displacement). */
function modrmLength(code: Uint8Array, at: number): number {
  const modrm = code[at];
  if (modrm === undefined) return Infinity;
  const mod = modrm >> 6;
  const rm = modrm & 7;
  if (mod === 3) return 1;
  let length = 1;
  if (rm === 4) {
    length++;
    const sib = code[at + 1];
    if (sib === undefined) return Infinity;
    if (mod === 0 && (sib & 7) === 5) length += 4;
  }
  if (mod === 0 && rm === 5) length += 4; // RIP-relative
  if (mod === 1) length += 1;
  if (mod === 2) length += 4;
  return length;
}

const rel32 = (view: DataView, at: number) => view.getInt32(at, true);
const rel8 = (view: DataView, at: number) => view.getInt8(at);

/**
 * Decodes `code` (loaded at `base`) and returns its relative branches.
 *
 * @throws {DecodeError} at the first instruction it does not know
 */
export function decodeBranches(code: Uint8Array, base: bigint): Branch[] {
  const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
  const branches: Branch[] = [];
  let at = 0;
  const branch = (offset: number, kind: Branch["kind"], length: number, displacement: number) =>
    branches.push({ offset, kind, target: base + BigInt(offset + length + displacement) });
  while (at < code.length) {
    const start = at;
    const fail = () =>
      new DecodeError(start, code.subarray(start, Math.min(start + 8, code.length)));
    // Prefixes: operand size, segment overrides (used as padding), then at most one REX. A legacy
    // prefix after REX voids the REX: such code is refused, not guessed at.
    let rex = false;
    let rexW = false;
    let operand16 = false;
    while (at < code.length) {
      const b = code[at]!;
      if (b === 0x66 || b === 0x2e || b === 0x3e) {
        if (rex) throw fail();
        operand16 ||= b === 0x66;
        at++;
      } else if (b >= 0x40 && b <= 0x4f) {
        if (rex) throw fail();
        rex = true;
        rexW = (b & 8) !== 0;
        at++;
      } else break;
    }
    const op = code[at];
    if (op === undefined) throw fail();
    // An immediate of the operand size: 16 bits after 66 (REX.W overrides it), else 32.
    const imm = rexW || !operand16 ? 4 : 2;
    // 66 on a relative branch is handled differently by Intel (ignored) and AMD (rel16): refused.
    const isBranch = op === 0xe8 || op === 0xe9 || op === 0xeb || (op >= 0x70 && op <= 0x7f) ||
      (op === 0x0f && (code[at + 1] ?? 0) >= 0x80 && (code[at + 1] ?? 0) <= 0x8f);
    if (operand16 && isBranch) throw fail();
    let length: number;
    if (op === 0xe8 || op === 0xe9) {
      length = at - start + 5;
      if (at + 5 > code.length) throw fail();
      branch(start, op === 0xe8 ? "call" : "jmp", length, rel32(view, at + 1));
    } else if (op === 0xeb) {
      length = at - start + 2;
      branch(start, "jmp", length, rel8(view, at + 1));
    } else if (op >= 0x70 && op <= 0x7f) {
      length = at - start + 2;
      branch(start, "jcc", length, rel8(view, at + 1));
    } else if (op === 0x0f) {
      const op2 = code[at + 1];
      if (op2 !== undefined && op2 >= 0x80 && op2 <= 0x8f) {
        length = at - start + 6;
        if (at + 6 > code.length) throw fail();
        branch(start, "jcc", length, rel32(view, at + 2));
      } else if (op2 === 0x1f) length = at - start + 2 + modrmLength(code, at + 2); // nopl
      else if (op2 === 0x0b) length = at - start + 2; // ud2
      else if (op2 !== undefined && op2 >= 0x90 && op2 <= 0x9f) {
        length = at - start + 2 + modrmLength(code, at + 2); // setcc
      } else throw fail();
    } else if (op === 0xf3 && code[at + 1] === 0x0f && code[at + 2] === 0x1e) {
      length = at - start + 4; // endbr64
    } else if (op === 0x81 || (op === 0xc7 && ((code[at + 1] ?? 0) & 0x38) === 0)) {
      length = at - start + 1 + modrmLength(code, at + 1) + imm; // group 1 op, imm; mov r/m, imm
    } else if (op === 0x83 || op === 0xc1) length = at - start + 1 + modrmLength(code, at + 1) + 1;
    else if (
      [0x01, 0x03, 0x09, 0x0b, 0x21, 0x23, 0x29, 0x2b, 0x31, 0x33, 0x39, 0x3b, 0x85, 0x87]
        .includes(op) ||
      (op >= 0x88 && op <= 0x8b) || op === 0x8d || op === 0xd1 ||
      op === 0xf7 && ((code[at + 1] ?? 0) & 0x38) >= 0x10 || op === 0xff
    ) {
      length = at - start + 1 + modrmLength(code, at + 1);
      const reg = ((code[at + 1] ?? 0) >> 3) & 7;
      if (op === 0xff && reg >= 2 && reg <= 5) {
        branches.push({ offset: start, kind: "indirect", target: 0n });
      }
    } else if (op >= 0xb8 && op <= 0xbf) length = at - start + 1 + (rexW ? 8 : imm); // mov r, imm
    else if (
      op === 0x90 || op === 0xcc || op === 0xc3 || (op >= 0x50 && op <= 0x5f) || op === 0x98 ||
      op === 0x99
    ) {
      length = at - start + 1;
    } else throw fail();
    if (!Number.isFinite(length) || start + length > code.length) throw fail();
    at = start + length;
  }
  return branches;
}
