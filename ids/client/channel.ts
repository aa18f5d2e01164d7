/**
 * The byte stream under the IDS's frames: a Noise IK channel to an agent whose
 * key is pinned, or — only when asked for explicitly — plaintext.
 *
 * An agent that is busy admitting connections (flooded by strangers) answers
 * the handshake with a busy notice, or drops the connection before reading it;
 * the IDS then retries with backoff, and if every try fails it says the agent
 * is busy or under attack, not that a key is wrong.
 *
 * @module
 */
import { type ByteStream, dial } from "../../wire/mod.ts";
import type { Identity, PublicIdentity } from "../../wire/secure/keys.ts";
import {
  initiateSecure,
  prepareInitiator,
  SecureChannelError,
} from "../../wire/secure/secure_stream.ts";

/** How the IDS authenticates to an agent and authenticates it. */
export interface ClientSecurity {
  /** The IDS's identity: Noise static key and object-signing key. */
  identity?: Identity;
  /** The agent's public key, pinned. */
  agentKey?: PublicIdentity;
  /** Plaintext, unauthenticated channel (test set-ups only). */
  insecure?: boolean;
}

/** Handshake tries when the agent is busy, and the waits between them. */
export interface BusyRetry {
  /** Tries in all (1: no retry). */
  attempts: number;
  /** Wait before the second try, ms (randomized ±50 %); doubled for each further try. */
  firstDelayMs: number;
  /** Longest wait between tries, ms. */
  maxDelayMs: number;
}

/** Six tries over about three seconds. */
export const DEFAULT_BUSY_RETRY: BusyRetry = { attempts: 6, firstDelayMs: 100, maxDelayMs: 1600 };

/** Whether a failed handshake means "try again later": a busy notice, or a reset connection. */
function isBusy(error: unknown): boolean {
  return error instanceof SecureChannelError && (error.code === "busy" || error.code === "io");
}

/** Opens the channel to the agent at `url`: secure unless `security.insecure`. */
export async function openChannel(
  url: string,
  security: ClientSecurity,
  retry: BusyRetry = DEFAULT_BUSY_RETRY,
): Promise<ByteStream> {
  if (!security.insecure && (!security.identity || !security.agentKey)) {
    throw new Error(
      "The IDS needs its key and the agent's public key (--key DIR/id --agent-key AGENT.pub), or --insecure",
    );
  }
  if (security.insecure) return await dial(url);
  const options = { staticKey: security.identity!.noise, remoteStatic: security.agentKey!.noise };
  let delay = retry.firstDelayMs;
  for (let attempt = 1;; attempt++) {
    // Message 1 is ready before connecting: it goes out as soon as the connection is up.
    const prepared = await prepareInitiator(options);
    const conn = await dial(url);
    try {
      return await initiateSecure(conn, options, prepared);
    } catch (error) {
      try {
        conn.close();
      } catch {
        // already closed by the failed handshake
      }
      if (!isBusy(error)) {
        throw new Error(`Cannot open a secure channel to ${url}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      if (attempt >= retry.attempts) {
        throw new Error(
          `Cannot open a secure channel to ${url}: agent busy or under attack (${attempt} tries): ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
    delay = Math.min(delay * 2, retry.maxDelayMs);
  }
}
