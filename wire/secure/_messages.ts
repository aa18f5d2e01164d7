/**
 * Noise messages on a byte stream, each prefixed with its length as 2 bytes big-endian.
 *
 * @module
 */

/** Bytes of the length prefix in front of every message. */
export const PREFIX_BYTES = 2;

/** What {@linkcode MessageReader.next} found. */
export type NextMessage =
  | { kind: "message"; body: Uint8Array<ArrayBuffer> }
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
 * the current message needs beyond what the stream already delivered in the same chunk.
 */
export class MessageReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;

  /** Locks `source` for the reader's lifetime. */
  constructor(source: ReadableStream<Uint8Array>) {
    this.#reader = source.getReader();
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
    const header = this.#take(PREFIX_BYTES);
    const length = (header[0]! << 8) | header[1]!;
    if (!(await this.#fill(length))) {
      return {
        kind: "truncated",
        expected: PREFIX_BYTES + length,
        received: PREFIX_BYTES + this.#buffered,
      };
    }
    return { kind: "message", body: this.#take(length) };
  }

  /** Stops reading: cancels the underlying stream (errors ignored). */
  cancel(): void {
    this.#chunks = [];
    this.#buffered = 0;
    this.#reader.cancel().catch(() => {});
  }

  async #fill(count: number): Promise<boolean> {
    while (this.#buffered < count) {
      if (this.#ended) return false;
      const { value, done } = await this.#reader.read();
      if (done) {
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

  #take(count: number): Uint8Array<ArrayBuffer> {
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
    this.#buffered -= count;
    return out;
  }
}
