/**
 * The binding of an agent's keys into an SEV-SNP attestation report: the 64
 * bytes of REPORT_DATA that the agent asks the firmware to sign and that the
 * IDS expects to find. One definition for both sides.
 *
 * @module
 */
import type { PublicIdentity } from "./keys.ts";

/** Domain separation for REPORT_DATA. */
export const REPORT_DATA_DOMAIN = "ebpfmonitor-agent-key-v1\0";

/** Bytes of the IDS's freshness nonce. */
export const NONCE_BYTES = 32;

/**
 * SHA-512(REPORT_DATA_DOMAIN || agent X25519 key || agent Ed25519 key || nonce).
 * The caller checks that each input is 32 bytes (and says so in its own words).
 */
export async function bindAgentKey(
  agentKey: Pick<PublicIdentity, "noise" | "signing">,
  nonce: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  const domain = new TextEncoder().encode(REPORT_DATA_DOMAIN);
  const message = new Uint8Array(domain.length + 96);
  message.set(domain, 0);
  message.set(agentKey.noise, domain.length);
  message.set(agentKey.signing, domain.length + 32);
  message.set(nonce, domain.length + 64);
  return new Uint8Array(await crypto.subtle.digest("SHA-512", message));
}
