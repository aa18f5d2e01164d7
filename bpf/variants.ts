/**
 * Which variant of a program a kernel can load, decided from the object's own
 * instructions and from what the kernel's (trusted) profile says it supports.
 *
 * An object needs every helper it calls (a helper is known to a kernel when its
 * `enum bpf_func_id` has the helper's number) and, when it takes the address of
 * a function (`ld_imm64` with `BPF_PSEUDO_FUNC`, as a bpf_loop callback does),
 * Linux 5.13: older kernels reject that instruction before verifying anything.
 *
 * @module
 */
import { elfSections } from "./elf.ts";
import { bpfObject, type ProgramName, programVariants, type VariantName } from "./objects.ts";

/** What a kernel supports that decides which objects it can load. */
export interface BpfFeatures {
  /** The helper numbers of the kernel's `enum bpf_func_id`. */
  helpers: ReadonlySet<number>;
  /** Whether the verifier takes `ld_imm64` of a pseudo function (`BPF_PSEUDO_FUNC`, Linux 5.13). */
  pseudoFunc: boolean;
}

/** What an object needs of the kernel. */
export interface ObjectNeeds {
  /** The helpers it calls, by number, ascending. */
  helpers: number[];
  /** Whether it takes a function's address (`ld_imm64` with `BPF_PSEUDO_FUNC` once libbpf relocated it). */
  pseudoFunc: boolean;
}

const BPF_CALL = 0x85; // BPF_JMP | BPF_CALL
const BPF_LD_IMM64 = 0x18; // BPF_LD | BPF_DW | BPF_IMM
const SHT_PROGBITS = 1;
const SHT_REL = 9;

/**
 * Reads what an eBPF object (ELF, little-endian, 64-bit) needs from its code
 * sections.
 *
 * @throws {Error} when the bytes are not such an ELF file
 */
export function objectNeeds(elf: Uint8Array): ObjectNeeds {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const sections = elfSections(elf);
  const isCode = (index: number) => sections[index]?.code === true;
  const helpers = new Set<number>();
  let pseudoFunc = false;
  for (const section of sections) {
    const { offset, size } = section;
    if (section.type === SHT_PROGBITS && section.code) {
      for (let i = offset; i + 8 <= offset + size; i += 8) {
        if (elf[i] === BPF_CALL && elf[i + 1]! >> 4 === 0) {
          helpers.add(view.getInt32(i + 4, true));
        }
        if (elf[i] === BPF_LD_IMM64) i += 8; // the second half of the 16-byte instruction
      }
    }
    // An ld_imm64 relocated against a symbol in a code section loads a function's address:
    // libbpf turns it into BPF_PSEUDO_FUNC (clang leaves src_reg 0 in the object).
    const target = sections[section.info];
    const symtab = sections[section.link];
    if (section.type !== SHT_REL || !target?.code || symtab === undefined) continue;
    for (let r = offset; r + 16 <= offset + size; r += 16) {
      const insn = target.offset + Number(view.getBigUint64(r, true));
      const symbol = symtab.offset + Number(view.getBigUint64(r + 8, true) >> 32n) * 24;
      if (insn + 8 > elf.length || symbol + 24 > elf.length) {
        throw new Error(`ELF relocation section ${section.index} points past the end`);
      }
      if (elf[insn] === BPF_LD_IMM64 && isCode(view.getUint16(symbol + 6, true))) {
        pseudoFunc = true;
      }
    }
  }
  return { helpers: [...helpers].sort((a, b) => a - b), pseudoFunc };
}

/** What of `needs` a kernel with `features` lacks, in words; empty when it has everything. */
export function missingFeatures(needs: ObjectNeeds, features: BpfFeatures): string[] {
  const missing = needs.helpers.filter((id) => !features.helpers.has(id)).map((id) =>
    `helper ${id}`
  );
  if (needs.pseudoFunc && !features.pseudoFunc) {
    missing.push("function pointers (BPF_PSEUDO_FUNC, Linux 5.13)");
  }
  return missing;
}

/**
 * The most capable variant of `name` that a kernel with `features` can load.
 *
 * @throws {Error} naming what each variant lacks, when none fits
 */
export function chooseVariant(name: ProgramName, features: BpfFeatures): VariantName {
  const reasons: string[] = [];
  for (const variant of programVariants(name)) {
    const missing = missingFeatures(objectNeeds(bpfObject(name, variant)), features);
    if (missing.length === 0) return variant;
    reasons.push(`${variant} needs ${missing.join(", ")}`);
  }
  throw new Error(`No variant of ${name} can load on this kernel: ${reasons.join("; ")}`);
}
