/**
 * The byte stream under the IDS's frames: a Noise IK channel to an agent whose
 * key is pinned, or — only when asked for explicitly — plaintext.
 *
 * @module
 */
import { type ByteStream, dial } from "../../wire/mod.ts";
import type { Identity, PublicIdentity } from "../../wire/secure/keys.ts";
import { initiateSecure } from "../../wire/secure/secure_stream.ts";

/** How the IDS authenticates to an agent and authenticates it. */
export interface ClientSecurity {
  /** The IDS's identity: Noise static key and object-signing key. */
  identity?: Identity;
  /** The agent's public key, pinned. */
  agentKey?: PublicIdentity;
  /** Plaintext, unauthenticated channel (test set-ups only). */
  insecure?: boolean;
}

/** Opens the channel to the agent at `url`: secure unless `security.insecure`. */
export async function openChannel(url: string, security: ClientSecurity): Promise<ByteStream> {
  if (!security.insecure && (!security.identity || !security.agentKey)) {
    throw new Error(
      "The IDS needs its key and the agent's public key (--key DIR/id --agent-key AGENT.pub), or --insecure",
    );
  }
  const conn = await dial(url);
  if (security.insecure) return conn;
  try {
    return await initiateSecure(conn, {
      staticKey: security.identity!.noise,
      remoteStatic: security.agentKey!.noise,
    });
  } catch (error) {
    try {
      conn.close();
    } catch {
      // already closed by the failed handshake
    }
    throw new Error(`Cannot open a secure channel to ${url}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
