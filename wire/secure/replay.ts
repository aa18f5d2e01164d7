/**
 * Replay protection for handshake message 1, as WireGuard does it: the initiator puts a
 * TAI64N timestamp in message 1's payload (encrypted and authenticated by the handshake), and
 * the responder refuses a message 1 whose timestamp it has already seen from that key, or that
 * is older than what it still remembers. A replayed message 1 therefore dies right after
 * decryption, before the agent keeps any state for it; a byte-identical replay of a message 1
 * that was accepted dies earlier still, before any Diffie-Hellman, by its ephemeral key.
 *
 * Timestamp layout (12 bytes, TAI64N as in WireGuard): seconds since 1970 plus 2^62 as a
 * 64-bit big-endian number, then nanoseconds as a 32-bit big-endian number.
 *
 * @module
 */

import { toBase64 } from "./_crypto.ts";

/** Bytes of a TAI64N timestamp (the payload of handshake message 1). */
export const TIMESTAMP_BYTES = 12;

const TAI64_BASE = 2n ** 62n;
const NS_PER_S = 1_000_000_000n;

/** The TAI64N encoding of `ns` nanoseconds since 1970. */
export function encodeTimestamp(ns: bigint): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(TIMESTAMP_BYTES);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, TAI64_BASE + ns / NS_PER_S, false);
  view.setUint32(8, Number(ns % NS_PER_S), false);
  return out;
}

/**
 * Nanoseconds since 1970 of a TAI64N timestamp, or undefined when `bytes` is not one (wrong
 * length, nanoseconds over 999 999 999, seconds before 1970).
 */
export function decodeTimestamp(bytes: Uint8Array): bigint | undefined {
  if (bytes.length !== TIMESTAMP_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const seconds = view.getBigUint64(0, false);
  const nanos = view.getUint32(8, false);
  if (seconds < TAI64_BASE || nanos >= 1_000_000_000) return undefined;
  return (seconds - TAI64_BASE) * NS_PER_S + BigInt(nanos);
}

let lastIssued = 0n;

/**
 * The current time as a TAI64N timestamp, strictly increasing within this process (two
 * handshakes in the same nanosecond get distinct timestamps).
 */
export function timestampNow(): Uint8Array<ArrayBuffer> {
  const wall = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
  lastIssued = wall > lastIssued ? wall : lastIssued + 1n;
  return encodeTimestamp(lastIssued);
}

/** Bounds of a {@linkcode ReplayGuard}. */
export interface ReplayLimits {
  /**
   * How far (ns) a timestamp may lag the newest one seen from the same key and still be
   * accepted once (handshakes of one IDS that overtake each other on the way).
   */
  reorderNs: bigint;
  /** Timestamps remembered per key inside that window; past it the oldest raises the floor. */
  perKey: number;
  /** Ephemeral keys of accepted messages 1 remembered, for the cheap check. */
  ephemerals: number;
}

/** One second of reordering, 64 timestamps a key, 4096 ephemeral keys. */
export const DEFAULT_REPLAY_LIMITS: ReplayLimits = {
  reorderNs: NS_PER_S,
  perKey: 64,
  ephemerals: 4096,
};

/** Why {@linkcode ReplayGuard.check} refused a message 1. */
export type ReplayVerdict = "fresh" | "no_timestamp" | "replayed";

interface KeyHistory {
  /** Timestamps at or below the floor are refused. */
  floor: bigint;
  /** Timestamps above the floor already accepted, ascending. */
  seen: bigint[];
}

/**
 * Remembers, per initiator static key, the message 1 timestamps it accepted, and the
 * ephemeral keys of accepted messages 1. Memory is bounded: `perKey` timestamps for each key
 * checked (call {@linkcode check} only for trusted keys) and `ephemerals` ephemeral keys.
 */
export class ReplayGuard {
  readonly #limits: ReplayLimits;
  readonly #keys = new Map<string, KeyHistory>();
  /** Ephemeral keys (base64) of accepted messages 1, oldest first. */
  readonly #ephemerals = new Set<string>();

  /** @param limits the bounds; {@linkcode DEFAULT_REPLAY_LIMITS} when omitted */
  constructor(limits: ReplayLimits = DEFAULT_REPLAY_LIMITS) {
    this.#limits = limits;
  }

  /**
   * Whether `message1` (the bytes after the length prefix) repeats the ephemeral key of a
   * message 1 already accepted: a byte-for-byte replay, refused before any Diffie-Hellman.
   */
  isKnownEphemeral(message1: Uint8Array): boolean {
    return this.#ephemerals.has(ephemeralId(message1));
  }

  /**
   * Checks the decrypted payload of a message 1 from `peerKey` (already authenticated and
   * trusted) and, when it is fresh, records it: call once per message 1, synchronously after
   * decryption.
   */
  check(peerKey: Uint8Array, payload: Uint8Array, message1: Uint8Array): ReplayVerdict {
    const ns = decodeTimestamp(payload);
    if (ns === undefined) return "no_timestamp";
    const id = toBase64(peerKey);
    let history = this.#keys.get(id);
    if (history === undefined) {
      history = { floor: -1n, seen: [] };
      this.#keys.set(id, history);
    }
    if (ns <= history.floor || history.seen.includes(ns)) return "replayed";
    let at = history.seen.length;
    while (at > 0 && history.seen[at - 1]! > ns) at--;
    history.seen.splice(at, 0, ns);
    const newest = history.seen[history.seen.length - 1]!;
    const floor = newest - this.#limits.reorderNs;
    if (floor > history.floor) history.floor = floor;
    while (history.seen.length > 0 && history.seen[0]! <= history.floor) history.seen.shift();
    while (history.seen.length > this.#limits.perKey) history.floor = history.seen.shift()!;
    this.#remember(ephemeralId(message1));
    return "fresh";
  }

  #remember(ephemeral: string): void {
    this.#ephemerals.add(ephemeral);
    if (this.#ephemerals.size > this.#limits.ephemerals) {
      this.#ephemerals.delete(this.#ephemerals.values().next().value!);
    }
  }
}

/** The initiator's ephemeral public key: the first 32 bytes of message 1. */
function ephemeralId(message1: Uint8Array): string {
  return toBase64(message1.subarray(0, 32));
}
