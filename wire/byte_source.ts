/**
 * Pulling bytes from a connection as chunks that the caller owns, for the readers of frames
 * (`frame.ts`) and of Noise messages (`secure/_messages.ts`).
 *
 * A source is either a `ReadableStream<Uint8Array>` (any stream; each chunk it yields is
 * passed on) or a {@linkcode ByteReader} such as a `Deno.Conn` or a `SecureStream`. A byte
 * reader is read straight into buffers this module keeps: one read is one runtime call (no
 * stream machinery in between), and a buffer is filled by successive reads from its start to
 * its end before a new one is allocated, so small messages do not each allocate a fresh
 * 64 KiB buffer. A returned chunk is a view of such a buffer that is never written again, so
 * callers may keep views of it.
 *
 * @module
 */

/** A byte stream read like `Deno.Conn`: `read(p)` fills the start of `p`. */
export interface ByteReader {
  /**
   * Reads up to `p.length` bytes into `p`.
   *
   * @returns the number of bytes read (at least 1 when `p` is not empty), or `null` at the end
   * of the stream.
   */
  read(p: Uint8Array): Promise<number | null>;
}

/** Where chunks come from: a stream, or a reader that fills buffers. */
export type ByteSourceInput = ReadableStream<Uint8Array> | ByteReader;

/** Size of the buffers a {@linkcode ByteReader} is read into. */
export const READ_BUFFER_BYTES = 64 * 1024;

/** A buffer whose free tail is shorter than this is replaced rather than read into. */
const MIN_TAIL_BYTES = 4 * 1024;

/** Chunks pulled one at a time; see the module documentation. */
export interface ChunkSource {
  /** The next chunk (possibly empty), or `null` at the end of the stream. */
  next(): Promise<Uint8Array | null>;
  /**
   * Reads directly into `p`, bypassing the source's buffers, for a large frame whose size is
   * known. Absent when the source cannot do that without a copy (a stream).
   *
   * @returns the bytes read, or `null` at the end of the stream.
   */
  readInto?(p: Uint8Array): Promise<number | null>;
  /** Stops reading: cancels a stream; for a byte reader, only later reads end. */
  cancel(reason?: unknown): Promise<void>;
}

/** Whether `input` is a byte reader rather than a stream. */
function isByteReader(input: ByteSourceInput): input is ByteReader {
  return !(input instanceof ReadableStream) && typeof (input as ByteReader).read === "function";
}

/**
 * The chunk source of a stream or a byte reader. A stream is locked for the source's lifetime.
 *
 * @example
 * ```ts
 * const source = chunkSource(conn); // a Deno.Conn
 * for (let chunk = await source.next(); chunk !== null; chunk = await source.next()) {
 *   console.log(chunk.length);
 * }
 * ```
 */
export function chunkSource(input: ByteSourceInput): ChunkSource {
  return isByteReader(input) ? new ReaderChunks(input) : new StreamChunks(input);
}

class StreamChunks implements ChunkSource {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async next(): Promise<Uint8Array | null> {
    const { done, value } = await this.#reader.read();
    return done ? null : value;
  }

  async cancel(reason?: unknown): Promise<void> {
    await this.#reader.cancel(reason);
  }
}

class ReaderChunks implements ChunkSource {
  readonly #reader: ByteReader;
  #buffer: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  #used = 0;
  #ended = false;

  constructor(reader: ByteReader) {
    this.#reader = reader;
  }

  async next(): Promise<Uint8Array | null> {
    if (this.#ended) return null;
    if (this.#buffer.length - this.#used < MIN_TAIL_BYTES) {
      this.#buffer = new Uint8Array(READ_BUFFER_BYTES);
      this.#used = 0;
    }
    const start = this.#used;
    const count = await this.#reader.read(this.#buffer.subarray(start));
    if (count === null || this.#ended) {
      this.#ended = true;
      return null;
    }
    this.#used += count;
    return this.#buffer.subarray(start, start + count);
  }

  async readInto(p: Uint8Array): Promise<number | null> {
    if (this.#ended) return null;
    const count = await this.#reader.read(p);
    if (count === null || this.#ended) {
      this.#ended = true;
      return null;
    }
    return count;
  }

  cancel(): Promise<void> {
    this.#ended = true;
    return Promise.resolve();
  }
}
