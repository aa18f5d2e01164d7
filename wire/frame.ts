/**
 * Length-prefixed msgpack frames: a 4-byte big-endian payload length, then the msgpack payload.
 *
 * This is the lowest layer of the wire protocol; it knows nothing about message types
 * (see `protocol.ts`). Integers that do not fit in 32 bits travel as msgpack int64/uint64 and
 * decode as `bigint`, so kernel addresses round-trip exactly.
 *
 * @module
 */

import { CodedError } from "./coded_error.ts";
import { checkMsgpackShape } from "./msgpack_guard.ts";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { type ByteSourceInput, type ChunkSource, chunkSource } from "./byte_source.ts";

/** Default largest payload (in bytes, excluding the 4-byte prefix) a frame may carry: 8 MiB. */
export const MAX_FRAME_BYTES: number = 8 * 1024 * 1024;

/** Size in bytes of the big-endian length prefix in front of every frame. */
export const FRAME_PREFIX_BYTES = 4;

/** Largest payload length the 4-byte prefix can express. */
const PREFIX_LIMIT = 0xffff_ffff;

/**
 * Why a frame could not be encoded or read:
 * - `oversized`: the payload is larger than the maximum frame size
 * - `truncated`: the stream ended in the middle of a frame
 * - `malformed`: the payload is not valid msgpack (or has trailing bytes)
 * - `unencodable`: the value cannot be encoded as msgpack (a function, a symbol...)
 */
export type FrameErrorCode = "oversized" | "truncated" | "malformed" | "unencodable";

/**
 * Error raised by {@linkcode encodeFrame} and {@linkcode FrameReader}. After a `FrameReader`
 * throws one, the stream is out of sync and the connection should be closed.
 *
 * @example
 * ```ts
 * try {
 *   await reader.next();
 * } catch (error) {
 *   if (error instanceof FrameError && error.code === "oversized") console.error(error.message);
 * }
 * ```
 */
export class FrameError extends CodedError<FrameErrorCode> {
  override readonly name = "FrameError";
}

/** Options shared by {@linkcode encodeFrame} and {@linkcode FrameReader}. */
export interface FrameOptions {
  /** Largest accepted payload in bytes (default {@linkcode MAX_FRAME_BYTES}). */
  maxFrameBytes?: number;
}

const encoder = new Encoder({ useBigInt64: true });
const decoder = new Decoder({ useBigInt64: true });

function checkMax(maxFrameBytes: number): number {
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > PREFIX_LIMIT) {
    throw new RangeError(
      `Maximum frame size must be an integer from 0 to ${PREFIX_LIMIT}, got ${maxFrameBytes}`,
    );
  }
  return maxFrameBytes;
}

function oversized(length: number, max: number): FrameError {
  return new FrameError("oversized", `Frame of ${length} bytes exceeds the maximum of ${max}`);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Encodes one value as a frame (prefix + msgpack payload), with `bigint` encoded as 64-bit
 * integers.
 *
 * @throws {FrameError} `oversized` if the payload exceeds the maximum, `unencodable` if msgpack
 * cannot represent the value.
 *
 * @example
 * ```ts
 * await conn.write(encodeFrame({ type: "ping", addr: 0xffffffff81000000n }));
 * ```
 */
export function encodeFrame(message: unknown, options: FrameOptions = {}): Uint8Array {
  const max = checkMax(options.maxFrameBytes ?? MAX_FRAME_BYTES);
  let payload: Uint8Array;
  try {
    // Shared view of the encoder's buffer: copied once below, before the next encode.
    payload = encoder.encodeSharedRef(message);
  } catch (error) {
    throw new FrameError("unencodable", `Cannot encode frame: ${describe(error)}`, {
      cause: error,
    });
  }
  if (payload.length > max) throw oversized(payload.length, max);
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length, false);
  frame.set(payload, FRAME_PREFIX_BYTES);
  return frame;
}

/**
 * Decodes one msgpack payload (without prefix), as {@linkcode FrameReader} does.
 *
 * @throws {FrameError} `malformed` if the bytes are not exactly one msgpack value.
 */
export function decodePayload(payload: Uint8Array): unknown {
  try {
    // Before the decoder allocates what a header claims: see msgpack_guard.ts.
    checkMsgpackShape(payload);
    return decoder.decode(payload);
  } catch (error) {
    // Every failure here comes from the bytes: bad type tags, short data, trailing bytes...
    throw new FrameError("malformed", `Cannot decode frame: ${describe(error)}`, { cause: error });
  }
}

/** Frames with at least this many bytes still to come are read straight into their own buffer. */
const DIRECT_READ_BYTES = 64 * 1024;

/**
 * Reads frames from a byte stream: a `Deno.Conn` or `SecureStream` (anything with `read(p)`,
 * read without stream machinery in between), or any `ReadableStream<Uint8Array>`.
 *
 * The reader keeps the chunks it has received in a queue, so many small chunks cost no copying
 * and a frame that spans several chunks is assembled with one copy of each byte; a large frame
 * from a byte reader is read straight into a buffer of its size. A frame that lies inside one
 * chunk is decoded in place, so `Uint8Array` values in a decoded message may be views of a
 * received chunk (never reused by the reader). The length prefix is checked against the
 * maximum before any of the payload is read.
 *
 * @example
 * ```ts
 * const reader = new FrameReader(conn);
 * for (let value = await reader.next(); value !== null; value = await reader.next()) {
 *   console.log(value);
 * }
 * ```
 */
export class FrameReader {
  readonly #source: ChunkSource;
  readonly #max: number;
  /** Received chunks not yet consumed; `#chunks[#head]` starts at `#offset`. */
  #chunks: Uint8Array[] = [];
  #head = 0;
  #offset = 0;
  #buffered = 0;
  #eof = false;
  #bytesRead = 0;
  #framesRead = 0;
  #reading = false;

  /**
   * Reads frames from `source` (locking it if it is a stream); `options.maxFrameBytes`
   * overrides the maximum.
   */
  constructor(source: ByteSourceInput, options: FrameOptions = {}) {
    this.#max = checkMax(options.maxFrameBytes ?? MAX_FRAME_BYTES);
    this.#source = chunkSource(source);
  }

  /** Largest payload this reader accepts, in bytes. */
  get maxFrameBytes(): number {
    return this.#max;
  }

  /** Bytes of complete frames read so far, prefixes included. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Number of complete frames read so far. */
  get framesRead(): number {
    return this.#framesRead;
  }

  /**
   * Reads and decodes the next frame.
   *
   * @returns the decoded value, or `null` when the stream ends cleanly between frames.
   * @throws {FrameError} `oversized`, `truncated` or `malformed`; errors of the underlying
   * stream are passed through unchanged.
   * @throws {Error} if called again before the previous call settled (reads must be sequential).
   */
  async next(): Promise<unknown | null> {
    if (this.#reading) throw new Error("Cannot read a frame while another read is pending");
    this.#reading = true;
    try {
      return await this.#next();
    } finally {
      this.#reading = false;
    }
  }

  async #next(): Promise<unknown | null> {
    if (!await this.#fill(FRAME_PREFIX_BYTES)) {
      if (this.#buffered === 0) return null;
      throw new FrameError(
        "truncated",
        `Connection closed in the middle of a frame prefix (${this.#buffered} of ${FRAME_PREFIX_BYTES} bytes)`,
      );
    }
    const prefix = this.#peek(FRAME_PREFIX_BYTES);
    const length = new DataView(prefix.buffer, prefix.byteOffset, FRAME_PREFIX_BYTES)
      .getUint32(0, false);
    if (length > this.#max) throw oversized(length, this.#max);
    const total = FRAME_PREFIX_BYTES + length;
    if (total - this.#buffered >= DIRECT_READ_BYTES && this.#source.readInto) {
      this.#consume(FRAME_PREFIX_BYTES);
      const payload = await this.#readDirect(length, this.#source.readInto.bind(this.#source));
      this.#bytesRead += total;
      this.#framesRead++;
      return decodePayload(payload);
    }
    if (!await this.#fill(total)) {
      throw new FrameError(
        "truncated",
        `Connection closed in the middle of a frame (${this.#buffered} of ${total} bytes)`,
      );
    }
    this.#consume(FRAME_PREFIX_BYTES);
    const payload = this.#take(length);
    this.#bytesRead += total;
    this.#framesRead++;
    return decodePayload(payload);
  }

  /** Stops reading: cancels the underlying stream and drops buffered bytes. */
  async cancel(reason?: unknown): Promise<void> {
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#buffered = 0;
    this.#eof = true;
    await this.#source.cancel(reason);
  }

  /** Moves the buffered bytes into a new payload buffer and reads the rest straight into it. */
  async #readDirect(
    length: number,
    readInto: (p: Uint8Array) => Promise<number | null>,
  ): Promise<Uint8Array> {
    const payload = new Uint8Array(length);
    let filled = this.#buffered;
    payload.set(this.#copy(filled, true));
    while (filled < length) {
      const count = await readInto(payload.subarray(filled));
      if (count === null) {
        this.#eof = true;
        throw new FrameError(
          "truncated",
          `Connection closed in the middle of a frame (${FRAME_PREFIX_BYTES + filled} of ${
            FRAME_PREFIX_BYTES + length
          } bytes)`,
        );
      }
      filled += count;
    }
    return payload;
  }

  /** Reads chunks until `n` bytes are buffered; false if the stream ended first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#buffered < n) {
      if (this.#eof) return false;
      const value = await this.#source.next();
      if (value === null) {
        this.#eof = true;
        return false;
      }
      if (value.length === 0) continue;
      this.#push(value);
      this.#buffered += value.length;
    }
    return true;
  }

  /** Queues a chunk, merged with the last one when it continues it in the same buffer. */
  #push(chunk: Uint8Array): void {
    const last = this.#chunks.length - 1;
    const previous = last >= this.#head ? this.#chunks[last]! : undefined;
    if (
      previous !== undefined && previous.buffer === chunk.buffer &&
      previous.byteOffset + previous.length === chunk.byteOffset
    ) {
      this.#chunks[last] = new Uint8Array(
        previous.buffer,
        previous.byteOffset,
        previous.length + chunk.length,
      );
      return;
    }
    this.#chunks.push(chunk);
  }

  /** The first `n` buffered bytes (n ≤ buffered) without consuming them. */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[this.#head]!;
    if (first.length - this.#offset >= n) return first.subarray(this.#offset, this.#offset + n);
    return this.#copy(n, false);
  }

  /** Removes and returns the first `n` buffered bytes (n ≤ buffered). */
  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[this.#head]!;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#consume(n);
      return view;
    }
    return this.#copy(n, true);
  }

  /** Copies the first `n` buffered bytes into one new array, consuming them if asked. */
  #copy(n: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(n);
    let written = 0;
    let index = this.#head;
    let offset = this.#offset;
    while (written < n) {
      const chunk = this.#chunks[index]!;
      const count = Math.min(chunk.length - offset, n - written);
      out.set(chunk.subarray(offset, offset + count), written);
      written += count;
      offset += count;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (consume) this.#consume(n);
    return out;
  }

  /** Drops the first `n` buffered bytes (n ≤ buffered). */
  #consume(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const chunk = this.#chunks[this.#head]!;
      const available = chunk.length - this.#offset;
      if (n < available) {
        this.#offset += n;
        return;
      }
      n -= available;
      this.#head++;
      this.#offset = 0;
    }
    // Compact the queue once the consumed head dominates, keeping shifts amortised O(1).
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head > 32 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }
}
