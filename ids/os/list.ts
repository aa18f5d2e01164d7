/**
 * What every view of a kernel linked list shares: the check that a pointer is
 * a kernel address and the error for a list that loops or breaks.
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";

/**
 * Lowest address of the x86-64 kernel half: the canonical upper half with
 * 5-level paging (LA57, 57-bit addresses: the direct map starts at
 * 0xff11_0000_0000_0000), which contains the 4-level half (from
 * 0xffff_8000_0000_0000). A kernel built with CONFIG_X86_5LEVEL uses 5 levels
 * whenever the CPU has LA57 (Ice Lake, AMD Genoa and later).
 */
const KERNEL_SPACE_START = 0xff00_0000_0000_0000n;

/** Whether `addr` lies in the kernel half of the x86-64 address space (4- or 5-level paging). */
export function isKernelAddress(addr: bigint): boolean {
  return addr >= KERNEL_SPACE_START && addr <= 0xffff_ffff_ffff_ffffn;
}

/** A kernel list could not be walked to its end. */
export class ListWalkError extends Error {
  /** The object the walk was at. */
  readonly addr: bigint;
  /** @param list which list @param addr where @param reason what went wrong */
  constructor(list: string, addr: bigint, reason: string) {
    super(`Cannot walk the ${list} at ${formatAddress(addr)}: ${reason}`);
    this.name = "ListWalkError";
    this.addr = addr;
  }
}
