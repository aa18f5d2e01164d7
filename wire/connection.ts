/**
 * A connection that sends and receives validated protocol messages as frames.
 *
 * @module
 */

import { CodedError } from "./coded_error.ts";
import type { ByteReader } from "./byte_source.ts";
import { encodeFrame, FrameError, type FrameOptions, FrameReader } from "./frame.ts";
import { type Message, parseMessage } from "./protocol.ts";

/**
 * The parts of a `Deno.Conn` a {@linkcode FramedConnection} uses. When `read` is there (a
 * `Deno.Conn`, a `SecureStream`), data is read with it rather than through `readable`, which
 * is then left alone.
 */
export type ByteStream = Pick<Deno.Conn, "readable" | "write" | "close"> & Partial<ByteReader>;

/**
 * Why a connection operation failed:
 * - `closed`: the connection was closed locally
 * - `io`: the socket failed (reset, broken pipe...); `cause` holds the Deno error
 */
export type ConnectionErrorCode = "closed" | "io";

/** Error raised by {@linkcode FramedConnection} for socket failures and use after close. */
export class ConnectionError extends CodedError<ConnectionErrorCode> {
  override readonly name = "ConnectionError";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `conn` as a {@linkcode ByteReader} when it has `read`. */
export function byteReaderOf(conn: Partial<ByteReader>): ByteReader | null {
  return typeof conn.read === "function" ? conn as ByteReader : null;
}

/**
 * Wraps a connection (a `Deno.Conn` from `dial` or `accept`) to exchange protocol messages.
 *
 * Sends are serialised: concurrent `send()` calls write whole frames one after another, in call
 * order. `receive()` is meant for a single reader loop (one pending call at a time).
 *
 * @example
 * ```ts
 * const connection = new FramedConnection(await dial("tcp://127.0.0.1:7000"));
 * await connection.send(requestMessage(1, "ping"));
 * console.log(await connection.receive());
 * connection.close();
 * ```
 */
export class FramedConnection {
  readonly #conn: ByteStream;
  readonly #reader: FrameReader;
  readonly #maxFrameBytes: number | undefined;
  #writing: Promise<void> = Promise.resolve();
  #writeError: ConnectionError | null = null;
  #closed = false;
  #bytesSent = 0;

  /**
   * Takes ownership of `conn` (reading it with `read` if it has one, else locking its readable
   * side); `options` sets the frame limit.
   */
  constructor(conn: ByteStream, options: FrameOptions = {}) {
    this.#conn = conn;
    this.#maxFrameBytes = options.maxFrameBytes;
    this.#reader = new FrameReader(byteReaderOf(conn) ?? conn.readable, options);
  }

  /** Bytes of frames written so far, 4-byte prefixes included. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  /** Bytes of complete frames received so far, 4-byte prefixes included. */
  get bytesReceived(): number {
    return this.#reader.bytesRead;
  }

  /** Whether {@linkcode close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Encodes `message` and writes it as one frame, after any frames already being sent.
   *
   * @throws {FrameError} if the message cannot be encoded or is too large (nothing is sent).
   * @throws {ConnectionError} `closed` after {@linkcode close}, `io` if the socket failed (then
   * every later send fails the same way).
   */
  send(message: Message): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new ConnectionError("closed", "Cannot send on a closed connection"));
    }
    let frame: Uint8Array;
    try {
      frame = encodeFrame(message, { maxFrameBytes: this.#maxFrameBytes });
    } catch (error) {
      return Promise.reject(error);
    }
    const write = this.#writing.then(() => this.#writeFrame(frame));
    // The chain itself never rejects, so one failed write does not leave later sends hanging.
    this.#writing = write.catch(() => {});
    return write;
  }

  async #writeFrame(frame: Uint8Array): Promise<void> {
    if (this.#writeError) throw this.#writeError;
    if (this.#closed) throw new ConnectionError("closed", "Cannot send on a closed connection");
    try {
      let written = 0;
      while (written < frame.length) {
        written += await this.#conn.write(frame.subarray(written));
      }
    } catch (error) {
      this.#writeError = this.#closed
        ? new ConnectionError("closed", "Cannot send on a closed connection", { cause: error })
        : new ConnectionError("io", `Cannot send frame: ${describe(error)}`, { cause: error });
      throw this.#writeError;
    }
    this.#bytesSent += frame.length;
  }

  /**
   * Reads the next message.
   *
   * @returns the message, or `null` when the peer closed the connection between frames or this
   * side called {@linkcode close}.
   * @throws {FrameError} for a truncated, oversized or undecodable frame.
   * @throws {ProtocolError} for a frame that is not a valid message.
   * @throws {ConnectionError} `io` if the socket failed.
   */
  async receive(): Promise<Message | null> {
    if (this.#closed) return null;
    let value: unknown;
    try {
      value = await this.#reader.next();
    } catch (error) {
      if (this.#closed) return null;
      if (error instanceof FrameError) throw error;
      throw new ConnectionError("io", `Cannot receive frame: ${describe(error)}`, {
        cause: error,
      });
    }
    if (value === null) return null;
    return parseMessage(value);
  }

  /** Closes the connection; safe to call more than once. A pending `receive()` returns null. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch (error) {
      // Already closed by the peer or the runtime: nothing left to release.
      if (!(error instanceof Deno.errors.BadResource)) throw error;
    }
  }
}
