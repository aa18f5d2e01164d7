/**
 * SEV-SNP attestation of the agent's key: the agent asks the AMD Secure Processor (through the
 * guest kernel's `/dev/sev-guest`) for an attestation report whose REPORT_DATA binds the agent's
 * public identity to a nonce chosen by the IDS. The IDS checks the report with
 * `ids/attestation.ts`.
 *
 * ```text
 * REPORT_DATA (64 bytes) = SHA-512("ebpfmonitor-agent-key-v1\0" || x25519 (32) || ed25519 (32) || nonce (32))
 * ```
 *
 * The report is requested with the `SNP_GET_REPORT` ioctl of the Linux SEV guest driver,
 * called through Deno FFI (libc `open`, `ioctl`, `close`). Sources:
 * - Linux `include/uapi/linux/sev-guest.h`: `struct snp_report_req`, `struct snp_report_resp`,
 *   `struct snp_guest_request_ioctl`, `SNP_GET_REPORT`.
 * - Linux `drivers/virt/coco/sev-guest/sev-guest.c` (`get_report`, `snp_guest_ioctl`): the
 *   driver copies the decrypted MSG_REPORT_RSP message, header included, into `resp_data`; it
 *   sets `exitinfo2` to 0xff before the request and copies the ioctl struct back when it is
 *   non-zero.
 * - Linux `include/uapi/linux/psp-sev.h` (`sev_ret_code`): firmware status codes.
 * - AMD, "SEV Secure Nested Paging Firmware ABI Specification" (publication 56860), tables
 *   "MSG_REPORT_REQ Message Structure" and "MSG_REPORT_RSP Message Structure".
 * - Linux `include/uapi/asm-generic/ioctl.h`: `_IOC` / `_IOWR` encoding.
 *
 * Nothing here can run on a machine without SEV-SNP: {@linkcode requestReport} throws
 * {@linkcode AttestationError} with code `unavailable` when the device does not exist.
 *
 * @example
 * ```ts
 * if (sevGuestAvailable()) {
 *   const report = requestReport(await reportData(publicIdentity(agent), nonceFromIds));
 *   // send `report` (0x4A0 bytes) to the IDS
 * }
 * ```
 *
 * @module
 */

import { CodedError } from "../wire/coded_error.ts";
import { bindAgentKey, NONCE_BYTES, REPORT_DATA_DOMAIN } from "../wire/secure/report_data.ts";

export { NONCE_BYTES, REPORT_DATA_DOMAIN };
import type { PublicIdentity } from "../wire/secure/keys.ts";

/** The SEV guest device of the Linux `sev-guest` driver. */
export const SEV_GUEST_PATH = "/dev/sev-guest";

/** Bytes of REPORT_DATA (`SNP_REPORT_USER_DATA_SIZE`). */
export const REPORT_DATA_BYTES = 64;

/** Bytes of an ATTESTATION_REPORT (firmware ABI, table "ATTESTATION_REPORT Structure"). */
export const REPORT_BYTES = 0x4a0;

/**
 * `struct snp_report_req`: `u8 user_data[64]` at 0, `u32 vmpl` at 64, `u8 rsvd[28]` at 68;
 * 96 bytes, alignment 4, no padding. It is the MSG_REPORT_REQ message of the firmware ABI; the
 * ABI's later KEY_SEL bits (offset 0x44, bits 1:0) sit in what Linux calls `rsvd` and stay 0
 * ("use the VLEK if one is installed, else the VCEK").
 */
export const SNP_REPORT_REQ_BYTES = 96;

/** `struct snp_report_resp`: `u8 data[4000]`. */
export const SNP_REPORT_RESP_BYTES = 4000;

/**
 * `struct snp_guest_request_ioctl` on x86-64: `u8 msg_version` at 0, 7 bytes of padding (the
 * next member is a `u64`, alignment 8), `u64 req_data` at 8, `u64 resp_data` at 16, and the
 * union `{ u64 exitinfo2; struct { u32 fw_error; u32 vmm_error; } }` at 24; 32 bytes.
 */
export const SNP_GUEST_REQUEST_IOCTL_BYTES = 32;

/** MSG_REPORT_RSP header: `u32 status`, `u32 report_size`, 24 reserved bytes; then the report. */
export const MSG_REPORT_RSP_HEADER_BYTES = 32;

/** The ioctl type of the SEV guest driver (`SNP_GUEST_REQ_IOC_TYPE`). */
export const SNP_GUEST_REQ_IOC_TYPE = "S".charCodeAt(0);

const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_WRITE = 1;
const IOC_READ = 2;

/**
 * `_IOWR(type, nr, size)` of Linux `include/uapi/asm-generic/ioctl.h` (the encoding x86-64
 * uses): direction (read|write = 3) in bits 31..30, the argument's size in bits 29..16, the type
 * in bits 15..8 and the number in bits 7..0.
 *
 * @example
 * ```ts
 * iowr(SNP_GUEST_REQ_IOC_TYPE, 0x0, SNP_GUEST_REQUEST_IOCTL_BYTES) === 0xc0205300;
 * ```
 */
export function iowr(type: number, nr: number, size: number): number {
  if (size < 0 || size >= 1 << IOC_SIZEBITS) {
    throw new RangeError(`ioctl argument size ${size} does not fit in ${IOC_SIZEBITS} bits`);
  }
  return (((IOC_READ | IOC_WRITE) << IOC_DIRSHIFT) | (size << IOC_SIZESHIFT) |
    (type << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT)) >>> 0;
}

/**
 * `SNP_GET_REPORT = _IOWR('S', 0x0, struct snp_guest_request_ioctl)`
 * = (3 << 30) | (32 << 16) | (0x53 << 8) | 0 = 0xc0205300.
 */
export const SNP_GET_REPORT: number = iowr(SNP_GUEST_REQ_IOC_TYPE, 0x0, 32);

/**
 * Why attestation failed:
 * - `unavailable`: no `/dev/sev-guest` (not an SEV-SNP guest, or the driver is not loaded)
 * - `open_failed`: the device exists but cannot be opened (permissions...)
 * - `ioctl_failed`: the driver refused the request; `errno`, `firmwareError`, `vmmError` say why
 * - `firmware`: the report response carries a non-zero status
 * - `bad_response`: the response is not a well-formed MSG_REPORT_RSP
 * - `bad_input`: a key, nonce, REPORT_DATA or VMPL of the wrong size or range
 */
export type AttestationErrorCode =
  | "unavailable"
  | "open_failed"
  | "ioctl_failed"
  | "firmware"
  | "bad_response"
  | "bad_input";

/** Error raised when an attestation report cannot be produced. */
export class AttestationError extends CodedError<AttestationErrorCode> {
  override readonly name = "AttestationError";
  /** errno of the failed libc call (0 when none). */
  readonly errno: number;
  /** Firmware status (`fw_error` of the ioctl, or MSG_REPORT_RSP status), 0 when none. */
  readonly firmwareError: number;
  /** VMM (hypervisor) error (`vmm_error` of the ioctl), 0 when none. */
  readonly vmmError: number;

  /** Creates an attestation error with a reason code and a sentence-case message. */
  constructor(
    code: AttestationErrorCode,
    message: string,
    details: { errno?: number; firmwareError?: number; vmmError?: number } = {},
  ) {
    super(code, message);
    this.errno = details.errno ?? 0;
    this.firmwareError = details.firmwareError ?? 0;
    this.vmmError = details.vmmError ?? 0;
  }
}

/**
 * Names of the SEV firmware status codes (Linux `include/uapi/linux/psp-sev.h`, `sev_ret_code`;
 * SEV API and SNP firmware ABI specifications, "Status Codes"). The ones a guest request can
 * produce are marked by the explanation that follows the name.
 */
const FIRMWARE_STATUS: Readonly<Record<number, string>> = {
  0x00: "SUCCESS",
  0x01: "INVALID_PLATFORM_STATE: the platform is in the wrong state for this command",
  0x02: "INVALID_GUEST_STATE: the guest is in the wrong state for this command",
  0x03: "INVALID_CONFIG",
  0x04: "INVALID_LENGTH: a buffer is too small",
  0x05: "ALREADY_OWNED",
  0x06: "INVALID_CERTIFICATE",
  0x07: "POLICY_FAILURE: the guest policy does not allow this request",
  0x08: "INACTIVE: the guest is not active",
  0x09: "INVALID_ADDRESS",
  0x0a: "BAD_SIGNATURE",
  0x0b: "BAD_MEASUREMENT",
  0x0c: "ASID_OWNED",
  0x0d: "INVALID_ASID",
  0x0e: "WBINVD_REQUIRED",
  0x0f: "DFFLUSH_REQUIRED",
  0x10: "INVALID_GUEST",
  0x11: "INVALID_COMMAND",
  0x12: "ACTIVE",
  0x13: "HWERROR_PLATFORM: a hardware error affected the platform",
  0x14: "HWERROR_UNSAFE: a hardware error occurred and buffers are unsafe",
  0x15: "UNSUPPORTED: the firmware does not support this request",
  0x16: "INVALID_PARAM: a request field is invalid (e.g. a VMPL below the guest's own)",
  0x17: "RESOURCE_LIMIT: the firmware ran out of a resource",
  0x18: "SECURE_DATA_INVALID: part-specific data failed an integrity check",
  0x19: "INVALID_PAGE_SIZE",
  0x1a: "INVALID_PAGE_STATE",
  0x1b: "INVALID_MDATA_ENTRY",
  0x1c: "INVALID_PAGE_OWNER",
  0x1d: "AEAD_OFLOW: the message sequence number is exhausted",
  0x1f: "EXIT_RING_BUFFER",
  0x20: "RMP_INIT_REQUIRED",
  0x21: "BAD_SVN",
  0x22: "BAD_VERSION",
  0x23: "SHUTDOWN_REQUIRED",
  0x24: "UPDATE_FAILED",
  0x25: "RESTORE_REQUIRED",
  0x26: "RMP_INITIALIZATION_FAILED",
  0x27: "INVALID_KEY: the requested signing key (KEY_SEL) is not available",
};

/** VMM error codes of `exitinfo2` bits 63..32 (Linux `sev-guest.h`). */
const VMM_STATUS: Readonly<Record<number, string>> = {
  1: "INVALID_LEN: the certificate buffer is too small",
  2: "BUSY: the hypervisor throttled the request",
};

/** A readable name for a firmware status code (e.g. "0x16 INVALID_PARAM: ..."). */
export function describeFirmwareError(code: number): string {
  const hex = `0x${code.toString(16).padStart(2, "0")}`;
  const name = FIRMWARE_STATUS[code];
  return name === undefined ? `${hex} (unknown firmware status)` : `${hex} ${name}`;
}

function describeVmmError(code: number): string {
  return `${code} ${VMM_STATUS[code] ?? "(unknown VMM error)"}`;
}

/**
 * Whether the SEV guest device exists and is a character device. False on anything but an
 * SEV-SNP guest with the `sev-guest` driver loaded (and on this project's test machines).
 */
export function sevGuestAvailable(path: string = SEV_GUEST_PATH): boolean {
  try {
    return Deno.statSync(path).isCharDevice === true;
  } catch {
    return false;
  }
}

function checkLength(bytes: Uint8Array, expected: number, what: string): void {
  if (bytes.length !== expected) {
    throw new AttestationError(
      "bad_input",
      `${what} must be ${expected} bytes, got ${bytes.length}`,
    );
  }
}

/**
 * The REPORT_DATA that binds the agent's public keys to the IDS's nonce:
 * SHA-512("ebpfmonitor-agent-key-v1\0" || x25519 || ed25519 || nonce), 64 bytes.
 *
 * Every input has a fixed length, so the concatenation is unambiguous.
 *
 * @throws {AttestationError} `bad_input` if a key is not 32 bytes or the nonce not 32 bytes.
 */
export async function reportData(
  agentKey: Pick<PublicIdentity, "noise" | "signing">,
  nonce: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  checkLength(agentKey.noise, 32, "The agent's X25519 key");
  checkLength(agentKey.signing, 32, "The agent's Ed25519 key");
  checkLength(nonce, NONCE_BYTES, "The attestation nonce");
  return await bindAgentKey(agentKey, nonce);
}

/** Options of {@linkcode requestReport}. */
export interface RequestReportOptions {
  /** The SEV guest device; default {@linkcode SEV_GUEST_PATH}. */
  path?: string;
  /**
   * The VMPL recorded in the report, 0..3; default 0. It must not be below the VMPL the guest
   * runs at (a guest under an SVSM runs at VMPL 2 or so; asking for 0 there fails with
   * INVALID_PARAM).
   */
  vmpl?: number;
}

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // int ioctl(int fd, unsigned long request, ...): the variadic argument is one pointer; on
  // x86-64 it travels in a general register exactly like a fixed one.
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;

let libc: Libc | undefined;

function openLibc(): Libc {
  libc ??= Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  return libc;
}

/** errno as left by the libc call just made (same thread: FFI calls here are synchronous). */
function lastErrno(c: Libc): number {
  const location = c.__errno_location();
  return location === null ? 0 : new Deno.UnsafePointerView(location).getInt32();
}

function errnoText(c: Libc, errno: number): string {
  const text = c.strerror(errno);
  return `${text ? Deno.UnsafePointerView.getCString(text) : "unknown error"} (errno ${errno})`;
}

function pointerValue(bytes: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes)));
}

/**
 * Asks the SEV firmware for an attestation report carrying `reportData` (SNP_GET_REPORT on
 * `/dev/sev-guest`). Needs an SEV-SNP guest and, usually, root (the device is mode 0600).
 *
 * @returns the ATTESTATION_REPORT (0x4A0 bytes), signed by the chip's VCEK (or VLEK).
 * @throws {AttestationError} `unavailable` when the device does not exist ("SEV-SNP attestation
 * is not available: /dev/sev-guest does not exist (not an SEV-SNP guest)"), `open_failed`,
 * `ioctl_failed` (with errno and the firmware / VMM error codes), `firmware` (non-zero report
 * status), `bad_response`, `bad_input`.
 */
export function requestReport(
  reportData: Uint8Array,
  options: RequestReportOptions = {},
): Uint8Array<ArrayBuffer> {
  const path = options.path ?? SEV_GUEST_PATH;
  const vmpl = options.vmpl ?? 0;
  checkLength(reportData, REPORT_DATA_BYTES, "REPORT_DATA");
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) {
    throw new AttestationError("bad_input", `VMPL must be an integer from 0 to 3, got ${vmpl}`);
  }
  try {
    Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new AttestationError(
        "unavailable",
        `SEV-SNP attestation is not available: ${path} does not exist (not an SEV-SNP guest)`,
      );
    }
    // Anything else (e.g. permission to stat) is left to open() to report with its errno.
  }

  // struct snp_report_req
  const request = new Uint8Array(SNP_REPORT_REQ_BYTES);
  request.set(reportData, 0);
  new DataView(request.buffer).setUint32(64, vmpl, true);
  // struct snp_report_resp
  const response = new Uint8Array(SNP_REPORT_RESP_BYTES);
  // struct snp_guest_request_ioctl
  const ioctlArg = new Uint8Array(SNP_GUEST_REQUEST_IOCTL_BYTES);
  const arg = new DataView(ioctlArg.buffer);
  arg.setUint8(0, 1); // msg_version: 1, the only MSG_REPORT_REQ version
  arg.setBigUint64(8, pointerValue(request), true);
  arg.setBigUint64(16, pointerValue(response), true);
  arg.setBigUint64(24, 0n, true);

  const c = openLibc();
  const fd = c.open(new TextEncoder().encode(`${path}\0`), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const errno = lastErrno(c);
    throw new AttestationError(
      "open_failed",
      `Cannot open ${path}: ${errnoText(c, errno)}`,
      { errno },
    );
  }
  let rc: number;
  let errno = 0;
  try {
    rc = c.ioctl(fd, BigInt(SNP_GET_REPORT), ioctlArg);
    if (rc < 0) errno = lastErrno(c);
  } finally {
    c.close(fd);
  }
  if (rc < 0) {
    // The driver sets exitinfo2 to 0xff before the request and copies the struct back when it
    // is non-zero: 0xff means "no firmware or VMM status was recorded".
    const exitinfo2 = arg.getBigUint64(24, true);
    const firmwareError = Number(exitinfo2 & 0xffff_ffffn);
    const vmmError = Number(exitinfo2 >> 32n);
    let detail = "";
    if (exitinfo2 !== 0n && exitinfo2 !== 0xffn) {
      const parts = [];
      if (firmwareError !== 0) parts.push(`firmware error ${describeFirmwareError(firmwareError)}`);
      if (vmmError !== 0) parts.push(`VMM error ${describeVmmError(vmmError)}`);
      detail = `; ${parts.join(", ")}`;
    }
    throw new AttestationError(
      "ioctl_failed",
      `SNP_GET_REPORT ioctl on ${path} failed: ${errnoText(c, errno)}${detail}`,
      { errno, firmwareError, vmmError },
    );
  }
  return reportFromResponse(response);
}

/**
 * The ATTESTATION_REPORT inside a MSG_REPORT_RSP message (`struct snp_report_resp` data):
 * `u32 status` at 0, `u32 report_size` at 4, 24 reserved bytes, the report at 0x20.
 *
 * @throws {AttestationError} `firmware` for a non-zero status, `bad_response` for a size that is
 * not 0x4A0 or does not fit.
 */
export function reportFromResponse(response: Uint8Array): Uint8Array<ArrayBuffer> {
  if (response.length < MSG_REPORT_RSP_HEADER_BYTES) {
    throw new AttestationError(
      "bad_response",
      `SNP report response is ${response.length} bytes, shorter than its ${MSG_REPORT_RSP_HEADER_BYTES}-byte header`,
    );
  }
  const view = new DataView(response.buffer, response.byteOffset, response.byteLength);
  const status = view.getUint32(0, true);
  if (status !== 0) {
    throw new AttestationError(
      "firmware",
      `SEV firmware refused the attestation report: status ${describeFirmwareError(status)}`,
      { firmwareError: status },
    );
  }
  const size = view.getUint32(4, true);
  if (size !== REPORT_BYTES || MSG_REPORT_RSP_HEADER_BYTES + size > response.length) {
    throw new AttestationError(
      "bad_response",
      `SNP report response has report_size ${size}, expected ${REPORT_BYTES} within ${response.length} bytes`,
    );
  }
  return response.slice(MSG_REPORT_RSP_HEADER_BYTES, MSG_REPORT_RSP_HEADER_BYTES + size);
}

/**
 * {@linkcode reportData} then {@linkcode requestReport}: the report that binds `agentKey` to the
 * IDS's `nonce`.
 */
export async function attestAgentKey(
  agentKey: Pick<PublicIdentity, "noise" | "signing">,
  nonce: Uint8Array,
  options: RequestReportOptions = {},
): Promise<Uint8Array<ArrayBuffer>> {
  return requestReport(await reportData(agentKey, nonce), options);
}
