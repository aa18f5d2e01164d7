/**
 * `ebpfmonitor ids attest`: asks the agent for an SEV-SNP attestation report
 * that binds its key to a fresh nonce, and verifies it with the chip's VCEK
 * (supplied by the operator: AMD's key service is not reached from here), and,
 * given `--chain` (the ASK and ARK), that the VCEK chains to the ARK. Runs only
 * against an agent in an SEV-SNP guest (/dev/sev-guest).
 *
 * @module
 */
import { AgentClient } from "../client/agent_client.ts";
import { newNonce, ReportError, verifyAgentAttestation } from "../attestation.ts";
import { readCertificates, verifyVcekChain } from "../vcek_chain.ts";
import { clientSecurity, type ConnectOptions } from "./session.ts";

/** Options of `ids attest`. */
export interface AttestOptions extends ConnectOptions {
  /** The VCEK certificate or public key (PEM or DER). */
  vcek: string;
  /** The ASK and ARK certificates (PEM, as AMD's KDS serves `cert_chain`): check the VCEK's chain. */
  chain?: string;
  /** The expected launch measurement, hex (48 bytes). */
  measurement?: string;
  /** Print JSON. */
  json: boolean;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array {
  if (!/^([0-9a-fA-F]{2}){48}$/.test(text)) {
    throw new Error("The measurement must be 96 hex digits (48 bytes)");
  }
  return new Uint8Array(text.match(/../g)!.map((pair) => parseInt(pair, 16)));
}

/**
 * Runs `ids attest`; exit code 0 verified, 1 the report failed a check, 2 error
 * (a VCEK chain that does not hold included: checked before connecting).
 */
export async function attest(options: AttestOptions): Promise<number> {
  if (options.connect === undefined) {
    throw new Error("ids attest needs --connect: it attests a remote guest's agent");
  }
  const raw = await Deno.readFile(options.vcek);
  if (options.chain !== undefined) {
    const vceks = readCertificates(raw, `the VCEK file ${options.vcek}`);
    if (vceks.length !== 1) {
      throw new Error(`The VCEK file ${options.vcek} holds ${vceks.length} certificates, not one`);
    }
    const chain = readCertificates(
      await Deno.readFile(options.chain),
      `the chain file ${options.chain}`,
    );
    verifyVcekChain(vceks[0]!, chain);
  }
  const security = await clientSecurity(options);
  if (security.agentKey === undefined) {
    throw new Error("ids attest needs the agent's key to check (--agent-key)");
  }
  const text = new TextDecoder().decode(raw);
  const vcek = text.includes("-----BEGIN") ? text : raw;
  const expectedMeasurement = options.measurement === undefined
    ? undefined
    : fromHex(options.measurement);
  const client = await AgentClient.connect(options.connect, security);
  try {
    const nonce = newNonce();
    const report = await client.attest(nonce);
    try {
      const verified = await verifyAgentAttestation(report, {
        vcek,
        agentKey: security.agentKey,
        nonce,
        expectedMeasurement,
      });
      const summary = {
        verified: true,
        measurement: hex(verified.measurement),
        policy: `0x${verified.policy.toString(16)}`,
        vmpl: verified.vmpl,
        chip_id: hex(verified.chipId),
      };
      console.log(
        options.json
          ? JSON.stringify(summary)
          : `verified: the report binds the agent's key (measurement ${summary.measurement})`,
      );
      return 0;
    } catch (error) {
      if (!(error instanceof ReportError)) throw error;
      console.log(
        options.json
          ? JSON.stringify({ verified: false, reason: error.message })
          : `NOT verified: ${error.message}`,
      );
      return 1;
    }
  } finally {
    client.close();
  }
}
