/**
 * Raw-key X25519 and Ed25519 over Deno's WebCrypto, plus byte helpers.
 *
 * WebCrypto imports private keys only as PKCS#8 or JWK; every private key here is the raw
 * 32-byte value of RFC 7748 (X25519) or the 32-byte seed of RFC 8032 (Ed25519), wrapped in the
 * fixed PKCS#8 prefix of RFC 8410 on import.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";

/** A raw 32-byte key pair (X25519 or Ed25519). */
export interface KeyPair {
  /** The 32-byte public key. */
  publicKey: Uint8Array;
  /** The 32-byte private key (X25519 scalar or Ed25519 seed). */
  privateKey: Uint8Array;
}

/** Length of X25519 and Ed25519 keys, in bytes. */
export const KEY_BYTES = 32;

// RFC 8410 PKCS#8 encodings: SEQUENCE { version 0, AlgorithmIdentifier { OID }, OCTET STRING {
// OCTET STRING (32 bytes) } }. OIDs 1.3.101.110 (X25519) and 1.3.101.112 (Ed25519).
const PKCS8_X25519 = hex("302e020100300506032b656e04220420");
const PKCS8_ED25519 = hex("302e020100300506032b657004220420");

/** The bytes of a hex string (no separators). */
export function hex(text: string): Uint8Array<ArrayBuffer> {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new TypeError(`Invalid hex string ${JSON.stringify(text.slice(0, 16))}`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Standard base64 (with padding) of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Decodes standard base64 (with padding); returns null for anything else. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return null;
  const binary = atob(text);
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** `bytes` typed over an `ArrayBuffer` (as WebCrypto wants), copied only when needed. */
export function buffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes) as Uint8Array<ArrayBuffer>;
}

function checkLength(bytes: Uint8Array, what: string): void {
  if (bytes.length !== KEY_BYTES) {
    throw new TypeError(`${what} must be ${KEY_BYTES} bytes, got ${bytes.length}`);
  }
}

async function importPrivate(
  prefix: Uint8Array,
  privateKey: Uint8Array,
  algorithm: "X25519" | "Ed25519",
  usages: KeyUsage[],
): Promise<CryptoKey> {
  checkLength(privateKey, `${algorithm} private key`);
  return await crypto.subtle.importKey(
    "pkcs8",
    concatBytes(prefix, privateKey),
    { name: algorithm },
    true,
    usages,
  );
}

async function publicOf(key: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const x = jwk.x === undefined ? null : fromBase64(base64UrlToStandard(jwk.x));
  if (x === null || x.length !== KEY_BYTES) throw new Error("WebCrypto exported no public key");
  return x;
}

function base64UrlToStandard(text: string): string {
  const standard = text.replaceAll("-", "+").replaceAll("_", "/");
  return standard + "=".repeat((4 - standard.length % 4) % 4);
}

async function rawPrivate(key: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", key));
  return pkcs8.slice(pkcs8.length - KEY_BYTES);
}

/** The X25519 public key of a raw private key. */
export async function x25519PublicKey(privateKey: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return await publicOf(await importPrivate(PKCS8_X25519, privateKey, "X25519", ["deriveBits"]));
}

/** A fresh random X25519 key pair. */
export async function generateX25519KeyPair(): Promise<KeyPair> {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, [
    "deriveBits",
  ]) as CryptoKeyPair;
  return {
    publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
    privateKey: await rawPrivate(pair.privateKey),
  };
}

/**
 * X25519(privateKey, publicKey): the 32-byte shared secret.
 *
 * @throws {Error} if `publicKey` is a low-order point (the shared secret would be all zeros).
 */
export async function x25519(
  privateKey: Uint8Array,
  publicKey: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  checkLength(publicKey, "X25519 public key");
  const secret = await importPrivate(PKCS8_X25519, privateKey, "X25519", ["deriveBits"]);
  const peer = await crypto.subtle.importKey(
    "raw",
    buffer(publicKey),
    { name: "X25519" },
    false,
    [],
  );
  try {
    return new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: peer }, secret, 256),
    );
  } catch (error) {
    throw new Error("X25519 failed: the public key is a low-order point", { cause: error });
  }
}

/** The Ed25519 public key of a 32-byte seed. */
export async function ed25519PublicKey(seed: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return await publicOf(await importPrivate(PKCS8_ED25519, seed, "Ed25519", ["sign"]));
}

/** A fresh random Ed25519 key pair (`privateKey` is the seed). */
export async function generateEd25519KeyPair(): Promise<KeyPair> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return {
    publicKey: new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
    privateKey: await rawPrivate(pair.privateKey),
  };
}

/** The 64-byte Ed25519 signature (RFC 8032, pure Ed25519) of `message` by `seed`. */
export async function ed25519Sign(
  seed: Uint8Array,
  message: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  const key = await importPrivate(PKCS8_ED25519, seed, "Ed25519", ["sign"]);
  return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, buffer(message)));
}

/** Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`. */
export async function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  if (publicKey.length !== KEY_BYTES || signature.length !== 64) return false;
  try {
    const key = await crypto.subtle.importKey(
      "raw",
      buffer(publicKey),
      { name: "Ed25519" },
      false,
      [
        "verify",
      ],
    );
    return await crypto.subtle.verify({ name: "Ed25519" }, key, buffer(signature), buffer(message));
  } catch {
    // Not a point on the curve: no signature can be valid for it.
    return false;
  }
}
