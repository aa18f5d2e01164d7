/**
 * SEV-SNP attestation reports, on the IDS side: parse the ATTESTATION_REPORT an agent sends,
 * check its ECDSA P-384 signature with the chip's VCEK, check that REPORT_DATA binds the agent's
 * public keys to the nonce the IDS chose, and check the launch measurement. After that the IDS
 * may pin the agent's key.
 *
 * Layout: AMD, "SEV Secure Nested Paging Firmware ABI Specification" (publication 56860),
 * table "ATTESTATION_REPORT Structure" (0x4A0 bytes, little-endian; the signature covers bytes
 * 0x0..0x29F) and the "ECDSA Signature" format (R and S, 72 bytes each, little-endian, zero-
 * extended). Offsets cross-checked with `google/go-sev-guest` (`abi/abi.go`, `ReportToProto`).
 *
 * ```text
 * 0x000 u32 VERSION          0x0C0 u8[32] HOST_DATA            0x1E0 u64 COMMITTED_TCB
 * 0x004 u32 GUEST_SVN        0x0E0 u8[48] ID_KEY_DIGEST        0x1E8 u8 CURRENT_BUILD, MINOR, MAJOR
 * 0x008 u64 POLICY           0x110 u8[48] AUTHOR_KEY_DIGEST    0x1EC u8 COMMITTED_BUILD, MINOR, MAJOR
 * 0x010 u8[16] FAMILY_ID     0x140 u8[32] REPORT_ID            0x1F0 u64 LAUNCH_TCB
 * 0x020 u8[16] IMAGE_ID      0x160 u8[32] REPORT_ID_MA         0x2A0 SIGNATURE: R u8[72], S u8[72]
 * 0x030 u32 VMPL             0x180 u64 REPORTED_TCB            0x4A0 end
 * 0x034 u32 SIGNATURE_ALGO   0x188 u8 CPUID_FAM_ID, MOD_ID, STEP (version >= 3)
 * 0x038 u64 CURRENT_TCB      0x1A0 u8[64] CHIP_ID
 * 0x040 u64 PLATFORM_INFO
 * 0x048 u32 flags: AUTHOR_KEY_EN (bit 0), MASK_CHIP_KEY (bit 1), SIGNING_KEY (bits 4..2)
 * 0x050 u8[64] REPORT_DATA
 * 0x090 u8[48] MEASUREMENT
 * ```
 *
 * The AMD certificate chain (ARK → ASK → VCEK) is not fetched (the AMD Key Distribution Service
 * is unreachable from this project's machines): the operator supplies the VCEK, and may supply
 * the ASK and ARK, whose chain `ids/vcek_chain.ts` checks (`ids attest --chain`).
 *
 * @example
 * ```ts
 * const nonce = newNonce();
 * // ... the agent answers with `bytes` = requestReport(reportData(agentKey, nonce)) ...
 * const report = await verifyAgentAttestation(bytes, {
 *   vcek: await Deno.readTextFile("vcek.pem"), agentKey, nonce, expectedMeasurement,
 * });
 * ```
 *
 * @module
 */

import { CodedError } from "../wire/coded_error.ts";
import { equalBytes } from "../wire/bytes.ts";
import { subjectPublicKeyInfo } from "./vcek_chain.ts";
import { bindAgentKey, NONCE_BYTES, REPORT_DATA_DOMAIN } from "../wire/secure/report_data.ts";

export { NONCE_BYTES, REPORT_DATA_DOMAIN };
import type { PublicIdentity } from "../wire/secure/keys.ts";

/** Bytes of an ATTESTATION_REPORT. */
export const REPORT_BYTES = 0x4a0;

/** Offset of the signature; the signature covers bytes 0 up to here. */
export const SIGNATURE_OFFSET = 0x2a0;

/** Bytes of each of R and S in the report (little-endian, zero-extended). */
export const ECDSA_COMPONENT_BYTES = 72;

/** SIGNATURE_ALGO value of ECDSA P-384 with SHA-384, the only one defined. */
export const SIG_ALGO_ECDSA_P384_SHA384 = 1;

/** POLICY bit 19: the guest may be debugged, i.e. the host can decrypt its memory. */
export const POLICY_DEBUG_BIT = 19;

const P384_BYTES = 48;

/**
 * Why a report was rejected:
 * - `malformed`: wrong size or an unknown report version
 * - `algorithm`: SIGNATURE_ALGO is not ECDSA P-384 with SHA-384
 * - `unsigned`: SIGNING_KEY says the report carries no signature
 * - `vcek`: the supplied VCEK cannot be used (not P-384, unparsable certificate...)
 * - `signature`: the signature does not verify with the VCEK
 * - `report_data`: REPORT_DATA does not bind the expected agent key and nonce
 * - `measurement`: the launch measurement is not the expected one
 * - `policy`: the guest policy allows debugging
 */
export type ReportErrorCode =
  | "malformed"
  | "algorithm"
  | "unsigned"
  | "vcek"
  | "signature"
  | "report_data"
  | "measurement"
  | "policy";

/** Error raised when a report is malformed or fails a check. */
export class ReportError extends CodedError<ReportErrorCode> {
  override readonly name = "ReportError";
}

/**
 * A TCB_VERSION: the security version numbers of the firmware components. The byte layout
 * depends on the CPU: Milan and Genoa (family 19h) put BOOT_LOADER, TEE at bytes 0, 1 and SNP,
 * MICROCODE at bytes 6, 7; Turin (family 1Ah) puts FMC, BOOT_LOADER, TEE, SNP at bytes 0..3 and
 * MICROCODE at byte 7.
 */
export interface TcbVersion {
  /** The 64-bit value as stored. */
  raw: bigint;
  /** FMC SVN (Turin only, else undefined). */
  fmc?: number;
  /** PSP boot loader SVN. */
  bootLoader: number;
  /** PSP operating system SVN. */
  tee: number;
  /** SNP firmware SVN. */
  snp: number;
  /** Lowest microcode patch level of all cores. */
  microcode: number;
}

/** A firmware version (major.minor, build). */
export interface FirmwareVersion {
  /** Major version. */
  major: number;
  /** Minor version. */
  minor: number;
  /** Build number. */
  build: number;
}

/** Which key signed the report (flags bits 4..2). */
export type SigningKey = "vcek" | "vlek" | "none" | `reserved(${number})`;

/** The decoded guest POLICY. */
export interface GuestPolicy {
  /** Minimum ABI minor version. */
  abiMinor: number;
  /** Minimum ABI major version. */
  abiMajor: number;
  /** SMT allowed. */
  smt: boolean;
  /** A migration agent may be associated. */
  migrateMa: boolean;
  /** Debugging allowed: the host can decrypt the guest's memory. */
  debug: boolean;
  /** Single socket only. */
  singleSocket: boolean;
}

/** A parsed ATTESTATION_REPORT. Byte fields are copies. */
export interface AttestationReport {
  /** The whole report (0x4A0 bytes). */
  bytes: Uint8Array<ArrayBuffer>;
  /** Report format version (2 and up; 3 adds the CPUID fields). */
  version: number;
  /** Guest SVN from the ID block. */
  guestSvn: number;
  /** POLICY as stored. */
  policy: bigint;
  /** POLICY decoded. */
  guestPolicy: GuestPolicy;
  /** FAMILY_ID from the ID block. */
  familyId: Uint8Array<ArrayBuffer>;
  /** IMAGE_ID from the ID block. */
  imageId: Uint8Array<ArrayBuffer>;
  /** VMPL the report was requested for. */
  vmpl: number;
  /** SIGNATURE_ALGO (1 = ECDSA P-384 with SHA-384). */
  signatureAlgo: number;
  /** CURRENT_TCB. */
  currentTcb: TcbVersion;
  /** PLATFORM_INFO (bit 0 SMT enabled, bit 1 TSME enabled, ...). */
  platformInfo: bigint;
  /** The flags word at 0x48 as stored. */
  flags: number;
  /** AUTHOR_KEY_EN: the ID block was signed with an author key. */
  authorKeyEn: boolean;
  /** MASK_CHIP_KEY: CHIP_ID is zeroed. */
  maskChipKey: boolean;
  /** SIGNING_KEY: which key signed. */
  signingKey: SigningKey;
  /** REPORT_DATA, chosen by the guest: here the key binding. */
  reportData: Uint8Array<ArrayBuffer>;
  /** MEASUREMENT: the launch digest of the guest's initial memory. */
  measurement: Uint8Array<ArrayBuffer>;
  /** HOST_DATA, chosen by the host at launch. */
  hostData: Uint8Array<ArrayBuffer>;
  /** SHA-384 of the ID key (zero without an ID block). */
  idKeyDigest: Uint8Array<ArrayBuffer>;
  /** SHA-384 of the author key (zero without one). */
  authorKeyDigest: Uint8Array<ArrayBuffer>;
  /** REPORT_ID of the guest. */
  reportId: Uint8Array<ArrayBuffer>;
  /** REPORT_ID of the migration agent. */
  reportIdMa: Uint8Array<ArrayBuffer>;
  /** REPORTED_TCB: the TCB the VCEK that signed was derived from. */
  reportedTcb: TcbVersion;
  /** CPUID family, model, stepping (version 3 and up; undefined before). */
  cpuid?: { family: number; model: number; stepping: number };
  /** CHIP_ID (zero when masked). */
  chipId: Uint8Array<ArrayBuffer>;
  /** COMMITTED_TCB. */
  committedTcb: TcbVersion;
  /** Current firmware version. */
  currentVersion: FirmwareVersion;
  /** Committed firmware version. */
  committedVersion: FirmwareVersion;
  /** LAUNCH_TCB: the TCB when the guest was launched. */
  launchTcb: TcbVersion;
  /** R as stored: 72 bytes little-endian. */
  signatureR: Uint8Array<ArrayBuffer>;
  /** S as stored: 72 bytes little-endian. */
  signatureS: Uint8Array<ArrayBuffer>;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function tcbVersion(raw: bigint, family: number | undefined): TcbVersion {
  const byte = (i: number) => Number((raw >> BigInt(8 * i)) & 0xffn);
  if (family === 0x1a) {
    return {
      raw,
      fmc: byte(0),
      bootLoader: byte(1),
      tee: byte(2),
      snp: byte(3),
      microcode: byte(7),
    };
  }
  return { raw, bootLoader: byte(0), tee: byte(1), snp: byte(6), microcode: byte(7) };
}

function signingKey(flags: number): SigningKey {
  const key = (flags >> 2) & 7;
  if (key === 0) return "vcek";
  if (key === 1) return "vlek";
  if (key === 7) return "none";
  return `reserved(${key})`;
}

/**
 * Parses an ATTESTATION_REPORT (exactly 0x4A0 bytes, as `requestReport` returns it).
 *
 * @throws {ReportError} `malformed` for another size or a version below 2.
 */
export function parseReport(bytes: Uint8Array): AttestationReport {
  if (bytes.length !== REPORT_BYTES) {
    throw new ReportError(
      "malformed",
      `Attestation report is ${bytes.length} bytes, expected ${REPORT_BYTES} (0x4A0)`,
    );
  }
  const copy = new Uint8Array(bytes);
  const view = new DataView(copy.buffer);
  const u32 = (offset: number) => view.getUint32(offset, true);
  const u64 = (offset: number) => view.getBigUint64(offset, true);
  const field = (offset: number, length: number) => copy.slice(offset, offset + length);
  const version = u32(0x00);
  if (version < 2) {
    throw new ReportError(
      "malformed",
      `Attestation report version ${version} is not an SEV-SNP report (expected 2 or later)`,
    );
  }
  const cpuid = version >= 3
    ? { family: copy[0x188]!, model: copy[0x189]!, stepping: copy[0x18a]! }
    : undefined;
  const family = cpuid?.family;
  const policy = u64(0x08);
  const flags = u32(0x48);
  return {
    bytes: copy,
    version,
    guestSvn: u32(0x04),
    policy,
    guestPolicy: {
      abiMinor: Number(policy & 0xffn),
      abiMajor: Number((policy >> 8n) & 0xffn),
      smt: (policy & (1n << 16n)) !== 0n,
      migrateMa: (policy & (1n << 18n)) !== 0n,
      debug: (policy & (1n << BigInt(POLICY_DEBUG_BIT))) !== 0n,
      singleSocket: (policy & (1n << 20n)) !== 0n,
    },
    familyId: field(0x10, 16),
    imageId: field(0x20, 16),
    vmpl: u32(0x30),
    signatureAlgo: u32(0x34),
    currentTcb: tcbVersion(u64(0x38), family),
    platformInfo: u64(0x40),
    flags,
    authorKeyEn: (flags & 1) !== 0,
    maskChipKey: (flags & 2) !== 0,
    signingKey: signingKey(flags),
    reportData: field(0x50, 64),
    measurement: field(0x90, 48),
    hostData: field(0xc0, 32),
    idKeyDigest: field(0xe0, 48),
    authorKeyDigest: field(0x110, 48),
    reportId: field(0x140, 32),
    reportIdMa: field(0x160, 32),
    reportedTcb: tcbVersion(u64(0x180), family),
    ...(cpuid === undefined ? {} : { cpuid }),
    chipId: field(0x1a0, 64),
    committedTcb: tcbVersion(u64(0x1e0), family),
    currentVersion: { build: copy[0x1e8]!, minor: copy[0x1e9]!, major: copy[0x1ea]! },
    committedVersion: { build: copy[0x1ec]!, minor: copy[0x1ed]!, major: copy[0x1ee]! },
    launchTcb: tcbVersion(u64(0x1f0), family),
    signatureR: field(SIGNATURE_OFFSET, ECDSA_COMPONENT_BYTES),
    signatureS: field(SIGNATURE_OFFSET + ECDSA_COMPONENT_BYTES, ECDSA_COMPONENT_BYTES),
  };
}

/**
 * The WebCrypto form (IEEE P1363: r || s, 48 bytes each, big-endian) of the report's signature
 * (72-byte little-endian R and S).
 *
 * @throws {ReportError} `signature` if R or S does not fit in 48 bytes.
 */
export function signatureToP1363(report: AttestationReport): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(2 * P384_BYTES);
  for (const [index, component] of [report.signatureR, report.signatureS].entries()) {
    if (component.subarray(P384_BYTES).some((b) => b !== 0)) {
      throw new ReportError(
        "signature",
        `Attestation report signature component ${
          index === 0 ? "R" : "S"
        } is larger than 48 bytes: not a P-384 signature`,
      );
    }
    for (let i = 0; i < P384_BYTES; i++) {
      out[index * P384_BYTES + i] = component[P384_BYTES - 1 - i]!;
    }
  }
  return out;
}

// --- VCEK: a CryptoKey, an X.509 certificate or a SubjectPublicKeyInfo -------------------------

/** A VCEK as {@linkcode verifyReport} accepts it. */
export type VcekInput = CryptoKey | Uint8Array | string;

/**
 * The VCEK's ECDSA P-384 public key, from a WebCrypto key, a PEM text ("CERTIFICATE" or
 * "PUBLIC KEY") or DER bytes (an X.509 certificate, as AMD's KDS serves it, or a
 * SubjectPublicKeyInfo), read with `node:crypto`. The certificate's chain is checked apart, when
 * the operator supplies it: {@linkcode verifyVcekChain} in `ids/vcek_chain.ts`.
 *
 * @throws {ReportError} `vcek` if the input cannot be parsed or is not an ECDSA P-384 key.
 */
export async function importVcek(vcek: VcekInput): Promise<CryptoKey> {
  if (vcek instanceof CryptoKey) {
    const algorithm = vcek.algorithm as EcKeyAlgorithm;
    if (
      vcek.type !== "public" || algorithm.name !== "ECDSA" || algorithm.namedCurve !== "P-384" ||
      !vcek.usages.includes("verify")
    ) {
      throw new ReportError(
        "vcek",
        `VCEK key must be an ECDSA P-384 public key usable to verify, got ${vcek.type} ${algorithm.name} ${
          algorithm.namedCurve ?? ""
        }`.trimEnd(),
      );
    }
    return vcek;
  }
  let spki: Uint8Array<ArrayBuffer>;
  try {
    spki = subjectPublicKeyInfo(vcek);
  } catch (error) {
    throw new ReportError("vcek", `Cannot read the VCEK: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    return await crypto.subtle.importKey(
      "spki",
      spki,
      { name: "ECDSA", namedCurve: "P-384" },
      true,
      [
        "verify",
      ],
    );
  } catch (error) {
    throw new ReportError(
      "vcek",
      `The VCEK is not an ECDSA P-384 public key: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

// --- Verification -----------------------------------------------------------------------------

/** What {@linkcode verifyReport} checks the report against. */
export interface VerifyReportOptions {
  /** The chip's VCEK (or VLEK): key, certificate or public key; see {@linkcode importVcek}. */
  vcek: VcekInput;
  /** The 64-byte REPORT_DATA the report must carry (see {@linkcode expectedReportData}). */
  expectedReportData: Uint8Array;
  /** The 48-byte launch measurement of the expected guest image; unchecked when omitted. */
  expectedMeasurement?: Uint8Array;
  /** Accept a guest whose policy allows debugging (the host can read its memory); default false. */
  allowDebug?: boolean;
}

/**
 * Checks an attestation report, in this order: SIGNATURE_ALGO is ECDSA P-384/SHA-384, the report
 * is signed, the signature over bytes 0x0..0x29F verifies with the VCEK, REPORT_DATA equals
 * `expectedReportData`, MEASUREMENT equals `expectedMeasurement` (if given), and the policy does
 * not allow debugging (unless `allowDebug`).
 *
 * @returns the parsed report.
 * @throws {ReportError} naming the first check that failed.
 */
export async function verifyReport(
  report: AttestationReport | Uint8Array,
  options: VerifyReportOptions,
): Promise<AttestationReport> {
  const parsed = report instanceof Uint8Array ? parseReport(report) : report;
  if (parsed.signatureAlgo !== SIG_ALGO_ECDSA_P384_SHA384) {
    throw new ReportError(
      "algorithm",
      `Attestation report uses signature algorithm ${parsed.signatureAlgo}, expected ${SIG_ALGO_ECDSA_P384_SHA384} (ECDSA P-384 with SHA-384)`,
    );
  }
  if (parsed.signingKey === "none" || parsed.signingKey.startsWith("reserved")) {
    throw new ReportError(
      "unsigned",
      `Attestation report is not signed by a chip key (SIGNING_KEY is ${parsed.signingKey})`,
    );
  }
  const key = await importVcek(options.vcek);
  const signature = signatureToP1363(parsed);
  const signed = parsed.bytes.slice(0, SIGNATURE_OFFSET);
  const valid = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-384" },
    key,
    signature,
    signed,
  );
  if (!valid) {
    throw new ReportError(
      "signature",
      `Attestation report signature does not verify with the supplied ${parsed.signingKey.toUpperCase()}: the report was altered or signed by another chip`,
    );
  }
  if (options.expectedReportData.length !== 64) {
    throw new ReportError(
      "report_data",
      `Expected REPORT_DATA must be 64 bytes, got ${options.expectedReportData.length}`,
    );
  }
  if (!equalBytes(parsed.reportData, options.expectedReportData)) {
    throw new ReportError(
      "report_data",
      `Attestation report's REPORT_DATA does not bind the expected agent key and nonce (got ${
        hex(parsed.reportData.subarray(0, 8))
      }..., expected ${hex(options.expectedReportData.subarray(0, 8))}...)`,
    );
  }
  if (options.expectedMeasurement !== undefined) {
    if (options.expectedMeasurement.length !== 48) {
      throw new ReportError(
        "measurement",
        `Expected measurement must be 48 bytes, got ${options.expectedMeasurement.length}`,
      );
    }
    if (!equalBytes(parsed.measurement, options.expectedMeasurement)) {
      throw new ReportError(
        "measurement",
        `Attestation report's measurement ${hex(parsed.measurement)} is not the expected ${
          hex(options.expectedMeasurement)
        }: the guest was launched from another image`,
      );
    }
  }
  if (parsed.guestPolicy.debug && options.allowDebug !== true) {
    throw new ReportError(
      "policy",
      `Attestation report's guest policy allows debugging (policy bit ${POLICY_DEBUG_BIT}): the host can decrypt the guest's memory`,
    );
  }
  return parsed;
}

/** A fresh random 32-byte nonce for one attestation. */
export function newNonce(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/**
 * The REPORT_DATA an honest agent with `agentKey` puts in its report for `nonce`:
 * SHA-512("ebpfmonitor-agent-key-v1\0" || x25519 || ed25519 || nonce). Same formula as the
 * agent's `reportData()` (`agent/attestation.ts`); a test checks they agree.
 *
 * @throws {ReportError} `report_data` for keys or a nonce that are not 32 bytes.
 */
export async function expectedReportData(
  agentKey: Pick<PublicIdentity, "noise" | "signing">,
  nonce: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  for (
    const [bytes, what] of [
      [agentKey.noise, "The agent's X25519 key"],
      [agentKey.signing, "The agent's Ed25519 key"],
      [nonce, "The attestation nonce"],
    ] as const
  ) {
    if (bytes.length !== 32) {
      throw new ReportError("report_data", `${what} must be 32 bytes, got ${bytes.length}`);
    }
  }
  return await bindAgentKey(agentKey, nonce);
}

/** What {@linkcode verifyAgentAttestation} checks. */
export interface AgentAttestationOptions {
  /** The chip's VCEK; see {@linkcode importVcek}. */
  vcek: VcekInput;
  /** The agent key the report must bind (the key the IDS is about to pin). */
  agentKey: Pick<PublicIdentity, "noise" | "signing">;
  /** The nonce the IDS sent for this attestation. */
  nonce: Uint8Array;
  /** The launch measurement of the expected guest image; unchecked when omitted. */
  expectedMeasurement?: Uint8Array;
  /** Accept a debuggable guest; default false. */
  allowDebug?: boolean;
}

/**
 * {@linkcode verifyReport} with REPORT_DATA computed from the agent's key and the IDS's nonce:
 * on success, the report proves that an SEV-SNP guest launched from the measured image (on the
 * chip of the VCEK) asked for a report binding this key, after the nonce was chosen.
 *
 * @throws {ReportError} naming the first check that failed.
 */
export async function verifyAgentAttestation(
  report: AttestationReport | Uint8Array,
  options: AgentAttestationOptions,
): Promise<AttestationReport> {
  return await verifyReport(report, {
    vcek: options.vcek,
    expectedReportData: await expectedReportData(options.agentKey, options.nonce),
    ...(options.expectedMeasurement === undefined
      ? {}
      : { expectedMeasurement: options.expectedMeasurement }),
    ...(options.allowDebug === undefined ? {} : { allowDebug: options.allowDebug }),
  });
}
