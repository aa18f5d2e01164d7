/**
 * Guest addresses as text. An address is a 64-bit unsigned value; anything
 * else (a negative difference, a value past 2^64) came from arithmetic on a
 * value the guest supplied and is shown as invalid, never as if it were one.
 *
 * @module
 */

const MAX_ADDRESS = 0xffff_ffff_ffff_ffffn;

/** `addr` as `0x…` hex, or `invalid address (…)` when it is not a 64-bit unsigned value. */
export function formatAddress(addr: bigint): string {
  if (addr >= 0n && addr <= MAX_ADDRESS) return `0x${addr.toString(16)}`;
  const sign = addr < 0n ? "-" : "";
  return `invalid address (${sign}0x${(addr < 0n ? -addr : addr).toString(16)})`;
}
