/**
 * The bodies of the agent's answers, shared by the agent (which sends them)
 * and the IDS's client (which reads them).
 *
 * @module
 */

/** The answer to `hello`. */
export interface HelloBody {
  /** Protocol version. */
  version: number;
  /** Agent software version. */
  agent: string;
  /** The agent's process id in the guest. */
  pid: number;
  /** The guest kernel's release. */
  release: string;
}

/** The answer to `kernel_info`. */
export interface KernelInfo {
  /** `uname -r`. */
  release: string;
  /** CPU architecture as Deno names it (x86_64). */
  arch: string;
  /** Page size in bytes. */
  page_size: number;
  /** Size of /sys/kernel/btf/vmlinux, 0 when the kernel has no BTF. */
  btf_bytes: number;
  /** The guest's host name. */
  hostname: string;
}

/** The answer to `load`. */
export interface LoadBody {
  /** Handle for `run` and `unload`. */
  handle: number;
  /** The name of the program in the object. */
  program: string;
}

/** The answer to `run`, after its chunks of records. */
export interface RunSummary {
  /** Times the program was fired. */
  fires: number;
  /** Records drained from the ring buffer. */
  records: number;
  /** Bytes of records. */
  bytes: number;
}

/** The answer to `attest`: the SEV-SNP attestation report binding the agent's key to the nonce. */
export interface AttestBody {
  /** The firmware's ATTESTATION_REPORT (0x4A0 bytes). */
  report: Uint8Array;
}
