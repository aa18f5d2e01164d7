/**
 * Ed25519 signatures over eBPF object files: the IDS signs, the agent loads only objects signed
 * by a trusted IDS key.
 *
 * What is signed is SHA-256("ebpfmonitor-bpf-object-v1\0" || object bytes), so a signature made
 * here can never be replayed as a signature over anything else (domain separation), and the
 * version in the prefix lets a later scheme coexist.
 *
 * @example
 * ```ts
 * const signature = await signObject(ids, objectBytes);
 * // on the agent, trusted = await readTrustedKeys(...)
 * const signer = await verifyObject(trusted, objectBytes, signature, "walk_tasks.bpf.o");
 * ```
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import { ed25519Sign, ed25519Verify, type KeyPair, toBase64 } from "./_crypto.ts";

/** The domain-separation prefix of object signatures. */
export const OBJECT_SIGNATURE_DOMAIN = "ebpfmonitor-bpf-object-v1\0";

/** Bytes of an Ed25519 signature. */
export const SIGNATURE_BYTES = 64;

/** Error raised when an object signature is missing, malformed or not from a trusted key. */
export class SignatureError extends Error {
  /** Creates a signature error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SignatureError";
  }
}

async function objectDigest(bytes: Uint8Array): Promise<Uint8Array> {
  const message = concatBytes(new TextEncoder().encode(OBJECT_SIGNATURE_DOMAIN), bytes);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", message));
}

/** Signs an eBPF object with the identity's Ed25519 key; returns the 64-byte signature. */
export async function signObject(
  identity: { signing: KeyPair },
  bytes: Uint8Array,
): Promise<Uint8Array> {
  return await ed25519Sign(identity.signing.privateKey, await objectDigest(bytes));
}

/**
 * Checks an eBPF object's signature against the trusted keys.
 *
 * @param label names the object in the error (e.g. its file name).
 * @returns the trusted key that made the signature.
 * @throws {SignatureError} "eBPF object <label> is not signed by a trusted IDS key", or for a
 * signature of the wrong length.
 */
export async function verifyObject<K extends { signing: Uint8Array }>(
  trustedKeys: readonly K[],
  bytes: Uint8Array,
  signature: Uint8Array,
  label = `(${bytes.length} bytes)`,
): Promise<K> {
  if (signature.length !== SIGNATURE_BYTES) {
    throw new SignatureError(
      `eBPF object ${label} has a malformed signature (${signature.length} bytes, expected ${SIGNATURE_BYTES})`,
    );
  }
  const digest = await objectDigest(bytes);
  for (const key of trustedKeys) {
    if (await ed25519Verify(key.signing, digest, signature)) return key;
  }
  const tried = trustedKeys.length === 0
    ? "no IDS key is trusted"
    : `tried ${trustedKeys.map((k) => toBase64(k.signing)).join(", ")}`;
  throw new SignatureError(`eBPF object ${label} is not signed by a trusted IDS key (${tried})`);
}
