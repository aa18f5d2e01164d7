/**
 * The sections of an eBPF object (ELF64, little-endian): what bpf/variants.ts
 * reads the code from and what the layout tests read the object's BTF from.
 *
 * @module
 */

/** One section header of an ELF object. */
export interface ElfSection {
  /** Its index in the section header table. */
  index: number;
  /** Its name (from the section header string table). */
  name: string;
  /** `sh_type` (1: PROGBITS, 9: REL...). */
  type: number;
  /** Whether it holds code (`SHF_EXECINSTR`). */
  code: boolean;
  /** Where its bytes start in the object. */
  offset: number;
  /** How many bytes it holds. */
  size: number;
  /** `sh_link` (for a relocation section: its symbol table). */
  link: number;
  /** `sh_info` (for a relocation section: the section it relocates). */
  info: number;
}

const SHF_EXECINSTR = 0x4n;

/**
 * The section headers of `elf`, each checked to lie inside the object.
 *
 * @throws {Error} when the bytes are not a 64-bit little-endian ELF object or a section runs past
 *   its end
 */
export function elfSections(elf: Uint8Array): ElfSection[] {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const isElf64 = elf.length >= 64 && elf[0] === 0x7f && elf[1] === 0x45 && elf[2] === 0x4c &&
    elf[3] === 0x46 && elf[4] === 2 && elf[5] === 1;
  if (!isElf64) throw new Error("Not a 64-bit little-endian ELF object");
  const shoff = Number(view.getBigUint64(0x28, true));
  const shentsize = view.getUint16(0x3a, true);
  const shnum = view.getUint16(0x3c, true);
  const shstrndx = view.getUint16(0x3e, true);
  if (shentsize < 64 || shoff + shnum * shentsize > elf.length || shstrndx >= shnum) {
    throw new Error("ELF section headers run past the end of the object");
  }
  const sections: ElfSection[] = [];
  for (let index = 0; index < shnum; index++) {
    const at = shoff + index * shentsize;
    const offset = Number(view.getBigUint64(at + 24, true));
    const size = Number(view.getBigUint64(at + 32, true));
    const type = view.getUint32(at + 4, true);
    if (type !== 8 /* NOBITS */ && offset + size > elf.length) {
      throw new Error(`ELF section ${index} runs past the end of the object`);
    }
    sections.push({
      index,
      name: "",
      type,
      code: (view.getBigUint64(at + 8, true) & SHF_EXECINSTR) !== 0n,
      offset,
      size,
      link: view.getUint32(at + 40, true),
      info: view.getUint32(at + 44, true),
    });
  }
  const strings = sections[shstrndx]!;
  for (const section of sections) {
    const nameAt = view.getUint32(shoff + section.index * shentsize, true);
    let end = strings.offset + nameAt;
    while (end < strings.offset + strings.size && elf[end] !== 0) end++;
    section.name = new TextDecoder().decode(elf.subarray(strings.offset + nameAt, end));
  }
  return sections;
}

/** The bytes of the section named `name`, or undefined. */
export function elfSection(elf: Uint8Array, name: string): Uint8Array | undefined {
  const section = elfSections(elf).find((s) => s.name === name);
  return section && elf.subarray(section.offset, section.offset + section.size);
}
