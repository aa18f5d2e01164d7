/**
 * AES-256-GCM with a 16-byte tag, two ways that produce the same bytes:
 *
 * - synchronously, with the runtime's native `node:crypto` cipher (RustCrypto's `aes` and
 *   `ghash` with AES-NI and CLMUL): a few microseconds for a small message, no thread hop;
 * - asynchronously, with WebCrypto, which runs on a thread pool: a hop to another thread and
 *   back for each message (some 10-40 µs under load), but several large messages are
 *   encrypted in parallel.
 *
 * {@linkcode SYNC_MAX_BYTES} is where one stops paying off against the other (measured with
 * `bench/aes_gcm_crossover.ts`). Decryption checks the tag before anything is returned:
 * plaintext of a message that fails authentication is never handed out.
 *
 * @module
 */

import { createCipheriv, createDecipheriv } from "node:crypto";
import { buffer } from "./_crypto.ts";

/** Length of the authentication tag, in bytes. */
export const TAG_BYTES = 16;

/** Length of the key, in bytes. */
export const KEY_BYTES = 32;

/**
 * Messages up to this many bytes are encrypted and decrypted synchronously; larger ones on
 * WebCrypto's threads.
 */
export const SYNC_MAX_BYTES = 8 * 1024;

const ALGORITHM = "aes-256-gcm";

/** Thrown by {@linkcode openSync} when a ciphertext fails authentication. */
export class AuthenticationError extends Error {
  /** Creates the error; `cause` holds the runtime's error, if any. */
  constructor(options?: ErrorOptions) {
    super("AES-GCM authentication failed", options);
    this.name = "AuthenticationError";
  }
}

/** ENCRYPT(k, iv, ad, plaintext): ciphertext followed by the 16-byte tag, synchronously. */
export function sealSync(
  key: Uint8Array,
  iv: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  if (ad.length > 0) cipher.setAAD(ad);
  const body = cipher.update(plaintext);
  const rest = cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(body.length + rest.length + TAG_BYTES);
  out.set(body, 0);
  out.set(rest, body.length);
  out.set(tag, body.length + rest.length);
  return out;
}

/**
 * DECRYPT(k, iv, ad, ciphertext), synchronously; the plaintext is returned only once the tag
 * checks out.
 *
 * @throws {AuthenticationError} if the ciphertext is shorter than the tag or fails
 * authentication.
 */
export function openSync(
  key: Uint8Array,
  iv: Uint8Array,
  ad: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array<ArrayBuffer> {
  if (ciphertext.length < TAG_BYTES) throw new AuthenticationError();
  const bodyLength = ciphertext.length - TAG_BYTES;
  const decipher = createDecipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(ciphertext.subarray(bodyLength));
  if (ad.length > 0) decipher.setAAD(ad);
  const out = new Uint8Array(bodyLength);
  let rest: Uint8Array;
  try {
    out.set(decipher.update(ciphertext.subarray(0, bodyLength)), 0);
    // final() compares the tags (in constant time) and throws on a mismatch.
    rest = decipher.final();
  } catch (error) {
    out.fill(0);
    throw new AuthenticationError({ cause: error });
  }
  if (rest.length !== 0) throw new Error("AES-GCM returned data after the last block");
  return out;
}

/** Imports a raw key for {@linkcode sealAsync} and {@linkcode openAsync}. */
export async function importKey(key: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", buffer(key), { name: "AES-GCM" }, false, [
    "encrypt",
    "decrypt",
  ]);
}

/** ENCRYPT(k, iv, ad, plaintext) on WebCrypto; same bytes as {@linkcode sealSync}. */
export async function sealAsync(
  key: CryptoKey,
  iv: Uint8Array,
  ad: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: buffer(iv), additionalData: buffer(ad), tagLength: 128 },
      key,
      buffer(plaintext),
    ),
  );
}

/**
 * DECRYPT(k, iv, ad, ciphertext) on WebCrypto; same result as {@linkcode openSync}.
 *
 * @throws {AuthenticationError} if the ciphertext fails authentication.
 */
export async function openAsync(
  key: CryptoKey,
  iv: Uint8Array,
  ad: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  if (ciphertext.length < TAG_BYTES) throw new AuthenticationError();
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: buffer(iv), additionalData: buffer(ad), tagLength: 128 },
        key,
        buffer(ciphertext),
      ),
    );
  } catch (error) {
    throw new AuthenticationError({ cause: error });
  }
}
