/**
 * Checks the agent's `kernel_info` answer by shape before anything uses it: the guest is
 * hostile, so every field's type and range is checked, and a bad one is named.
 *
 * @module
 */
import type { KernelInfo } from "../../wire/ops.ts";

/** The largest BTF the IDS believes (vmlinux BTF is a few MiB). */
export const MAX_BTF_BYTES = 256 << 20;

/** Longest text field accepted (release, hostname). */
const MAX_TEXT = 256;

/** A short, printable description of a value for an error message. */
function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (typeof value === "string") {
    const json = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    return `a string (${json})`;
  }
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "boolean") return `a boolean (${value})`;
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "bytes";
  return "a map";
}

/** Why `value` is not a text of 1..MAX_TEXT printable characters (`allowEmpty`: 0..), or null. */
function textProblem(value: unknown, allowEmpty: boolean): string | null {
  if (typeof value !== "string") return "a string";
  if (value.length > MAX_TEXT) return `at most ${MAX_TEXT} characters, got ${value.length}`;
  if (!allowEmpty && value.length === 0) return "a non-empty string";
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return "printable text, without control characters";
  }
  return null;
}

/** Why `value` is not an integer in [min, max], or null. */
function integerProblem(value: unknown, min: number, max: number): string | null {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    return `an integer from ${min} to ${max}`;
  }
  return null;
}

/**
 * The `kernel_info` body as a {@linkcode KernelInfo}, after checking every field.
 *
 * @throws {Error} "kernel_info field page_size is a string ("4096"), expected an integer from
 * 4096 to 65536, a power of two"
 */
export function checkKernelInfo(body: unknown): KernelInfo {
  if (
    typeof body !== "object" || body === null || Array.isArray(body) || body instanceof Uint8Array
  ) {
    throw new Error(`kernel_info is ${describe(body)}, expected a map`);
  }
  const fields = body as Record<string, unknown>;
  const arch = fields.arch;
  const checks: [keyof KernelInfo, string | null][] = [
    ["release", textProblem(fields.release, false)],
    [
      "arch",
      textProblem(arch, false) ??
        (/^[A-Za-z0-9_]+$/.test(arch as string) ? null : "letters, digits and underscores"),
    ],
    [
      "page_size",
      integerProblem(fields.page_size, 4096, 65536) === null &&
        ((fields.page_size as number) & ((fields.page_size as number) - 1)) === 0
        ? null
        : "an integer from 4096 to 65536, a power of two",
    ],
    ["btf_bytes", integerProblem(fields.btf_bytes, 0, MAX_BTF_BYTES)],
    ["hostname", textProblem(fields.hostname, true)],
  ];
  for (const [name, problem] of checks) {
    if (problem !== null) {
      throw new Error(
        `kernel_info field ${name} is ${describe(fields[name])}, expected ${problem}`,
      );
    }
  }
  return {
    release: fields.release as string,
    arch: arch as string,
    page_size: fields.page_size as number,
    btf_bytes: fields.btf_bytes as number,
    hostname: fields.hostname as string,
  };
}
