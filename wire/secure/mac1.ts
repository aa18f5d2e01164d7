/**
 * The MAC that ends handshake message 1 (as WireGuard's `mac1`): a keyed hash of the message
 * under a key derived from the responder's static public key. Checking it costs the agent one
 * hash, before any Diffie-Hellman, so garbage from a peer that does not know the agent's public
 * key is refused for almost nothing. It authenticates nothing (the public key is public); the
 * Noise handshake does that.
 *
 * ```text
 * mac1 = HMAC-SHA-256(SHA-256("ebpfmonitor-mac1-v1\0" || responder static public key), message 1)[0..16]
 * ```
 *
 * @module
 */

import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** Bytes of the MAC appended to message 1. */
export const MAC1_BYTES = 16;

const LABEL = new TextEncoder().encode("ebpfmonitor-mac1-v1\0");

function mac1(message: Uint8Array, responderStatic: Uint8Array): Uint8Array {
  const key = createHash("sha256").update(LABEL).update(responderStatic).digest();
  return new Uint8Array(createHmac("sha256", key).update(message).digest().subarray(0, MAC1_BYTES));
}

/** `message1` followed by its MAC for the responder whose static public key is given. */
export function appendMac1(message1: Uint8Array, responderStatic: Uint8Array): Uint8Array {
  const out = new Uint8Array(message1.length + MAC1_BYTES);
  out.set(message1);
  out.set(mac1(message1, responderStatic), message1.length);
  return out;
}

/**
 * Message 1 without its MAC when the MAC is right for this responder (`responderStatic`, its
 * own static public key), else null.
 */
export function checkMac1(body: Uint8Array, responderStatic: Uint8Array): Uint8Array | null {
  if (body.length < MAC1_BYTES) return null;
  const message1 = body.subarray(0, body.length - MAC1_BYTES);
  const expected = mac1(message1, responderStatic);
  return timingSafeEqual(expected, body.subarray(body.length - MAC1_BYTES)) ? message1 : null;
}
