/**
 * Noise messages on a byte stream, each prefixed with its length as 2 bytes big-endian.
 *
 * @module
 */

import { type ByteSourceInput, type ChunkSource, chunkSource } from "../byte_source.ts";

/** Bytes of the length prefix in front of every message. */
export const PREFIX_BYTES = 2;

/** What {@linkcode MessageReader.next} found. */
export type NextMessage =
  | { kind: "message"; body: Uint8Array }
  /** The stream ended cleanly between two messages. */
  | { kind: "end" }
  /** The stream ended inside a message: `received` of `expected` bytes (prefix included). */
  | { kind: "truncated"; expected: number; received: number };

/** `body` with its 2-byte big-endian length in front. */
export function prefixed(body: Uint8Array): Uint8Array<ArrayBuffer> {
  if (body.length > 0xffff) throw new RangeError(`Message of ${body.length} bytes is too long`);
  const out = new Uint8Array(PREFIX_BYTES + body.length);
  out[0] = body.length >> 8;
  out[1] = body.length & 0xff;
  out.set(body, PREFIX_BYTES);
  return out;
}

/**
 * Reads length-prefixed messages from a byte stream, one at a time, reading no further than
 * the current message needs beyond what the stream already delivered in the same read. A body
 * that lies inside one received chunk is a view of it (never written again), else a copy.
 */
export class MessageReader {
  readonly #source: ChunkSource;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;

  /** Reads `source` (a `Deno.Conn`, or a stream it locks) for the reader's lifetime. */
  constructor(source: ByteSourceInput) {
    this.#source = chunkSource(source);
  }

  /**
   * The next message.
   *
   * @throws whatever the underlying stream throws (socket errors).
   */
  async next(): Promise<NextMessage> {
    if (!(await this.#fill(PREFIX_BYTES))) {
      return this.#buffered === 0
        ? { kind: "end" }
        : { kind: "truncated", expected: PREFIX_BYTES, received: this.#buffered };
    }
    const length = this.#length();
    if (!(await this.#fill(PREFIX_BYTES + length))) {
      return {
        kind: "truncated",
        expected: PREFIX_BYTES + length,
        received: this.#buffered,
      };
    }
    this.#take(PREFIX_BYTES);
    return { kind: "message", body: this.#take(length) };
  }

  /** The next message if all of it has already been received, without reading; else null. */
  buffered(): Uint8Array | null {
    if (this.#buffered < PREFIX_BYTES) return null;
    const length = this.#length();
    if (this.#buffered < PREFIX_BYTES + length) return null;
    this.#take(PREFIX_BYTES);
    return this.#take(length);
  }

  /** Stops reading: cancels the underlying stream (errors ignored). */
  cancel(): void {
    this.#chunks = [];
    this.#buffered = 0;
    this.#source.cancel().catch(() => {});
  }

  /** The body length in the prefix at the head of the buffer (at least 2 bytes buffered). */
  #length(): number {
    const first = this.#chunks[0]!;
    const high = first[0]!;
    const low = first.length > 1 ? first[1]! : this.#chunks[1]![0]!;
    return (high << 8) | low;
  }

  async #fill(count: number): Promise<boolean> {
    while (this.#buffered < count) {
      if (this.#ended) return false;
      const value = await this.#source.next();
      if (value === null) {
        this.#ended = true;
        return false;
      }
      if (value.length > 0) {
        this.#chunks.push(value);
        this.#buffered += value.length;
      }
    }
    return true;
  }

  #take(count: number): Uint8Array {
    this.#buffered -= count;
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= count) {
      if (first.length === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
      return first.subarray(0, count);
    }
    const out = new Uint8Array(count);
    let offset = 0;
    while (offset < count) {
      const chunk = this.#chunks[0]!;
      const used = Math.min(chunk.length, count - offset);
      out.set(chunk.subarray(0, used), offset);
      offset += used;
      if (used === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(used);
    }
    return out;
  }
}
