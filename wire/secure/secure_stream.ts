/**
 * A mutually authenticated, encrypted byte stream over a connection: the Noise IK handshake
 * ({@linkcode initiateSecure} on the IDS, {@linkcode acceptSecure} on the agent), then
 * {@linkcode SecureStream}, which a `FramedConnection` takes in place of the raw `Deno.Conn`.
 *
 * On the wire every Noise message, handshake or transport, is prefixed with its length as 2
 * bytes big-endian. A transport message carries at most 65519 bytes of data (65535 with the
 * 16-byte tag); larger writes are split. Nonces are implicit counters, so a modified, replayed,
 * reordered or dropped message fails authentication: the stream then errors and closes. An
 * empty transport message is the close notice; a stream that ends without one errors too, so a
 * cut-off connection is never mistaken for an orderly close.
 *
 * Security notes:
 * - The responder (agent) learns and authenticates the initiator's static key from message 1
 *   and checks it with `isTrusted` before answering; an untrusted or failed message 1 is
 *   answered by closing the connection, with nothing sent.
 * - Message 1 of IK can be replayed by an eavesdropper; the replayer cannot complete the
 *   handshake (it lacks the initiator's ephemeral key), so nothing it sends afterwards
 *   decrypts. The agent must therefore act only on data that came through the stream. With a
 *   {@linkcode ReplayGuard} (`replay` option) the responder also refuses the replay itself:
 *   message 1's payload is the initiator's TAI64N timestamp (`replay.ts`), which must be new
 *   for that key, and a byte-identical replay is refused before any Diffie-Hellman.
 * - Handshake message 1 ends with a 16-byte MAC keyed by the responder's public key
 *   (`mac1.ts`), which the responder checks before any Diffie-Hellman.
 * - Instead of message 2 a responder may send a busy notice (an empty message: the 2 bytes
 *   `00 00`) and close: it is too busy to admit the connection now. The notice is not
 *   authenticated (anyone on the path can forge it, as they can drop the connection); the
 *   initiator only uses it to say why it failed and to retry later.
 *
 * @example
 * ```ts
 * // IDS (initiator): pins the agent's static key.
 * const stream = await initiateSecure(await dial("tcp://127.0.0.1:7000"), {
 *   staticKey: ids.noise, remoteStatic: agentPublicKey.noise,
 * });
 * const connection = new FramedConnection(stream);
 *
 * // Agent (responder): accepts only trusted IDS keys.
 * const stream = await acceptSecure(conn, {
 *   staticKey: agent.noise,
 *   isTrusted: (key) => trusted.some((t) => equalKeys(t.noise, key)),
 * });
 * ```
 *
 * @module
 */

import { CodedError } from "../coded_error.ts";
import { byteReaderOf, type ByteStream } from "../connection.ts";
import { SYNC_MAX_BYTES } from "./_aes_gcm.ts";
import { type ReplayGuard, TIMESTAMP_BYTES, timestampNow } from "./replay.ts";
import { appendMac1, checkMac1 } from "./mac1.ts";
import { toBase64 } from "./_crypto.ts";
import { MessageReader, type NextMessage, PREFIX_BYTES, prefixed } from "./_messages.ts";
import {
  type CipherState,
  HandshakeState,
  type KeyPair,
  MAX_MESSAGE_BYTES,
  NoiseError,
  TAGLEN,
  type TransportState,
} from "./noise.ts";

/**
 * The default prologue: the application protocol and its version, bound into the handshake.
 * Version 2: message 1 carries a timestamp and ends with a MAC (`mac1.ts`), and a busy notice
 * may replace message 2.
 */
export const DEFAULT_PROLOGUE: Uint8Array = new TextEncoder().encode("ebpfmonitor/2");

/** The busy notice a responder sends instead of message 2: an empty message (`00 00`). */
export const BUSY_NOTICE: Uint8Array = new Uint8Array(2);

/** How long a handshake may take before the connection is dropped. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The most data one transport message carries (65535 - 16-byte tag). */
export const MAX_CHUNK_BYTES = MAX_MESSAGE_BYTES - TAGLEN;

/** How long `close()` waits for the close notice to be written before closing anyway. */
const CLOSE_NOTICE_TIMEOUT_MS = 1000;

const EMPTY = new Uint8Array(0);

/** Transport messages read ahead and being decrypted at once (about 1 MiB). */
const RECEIVE_WINDOW = 16;

type Received =
  | { kind: "data"; data: Uint8Array<ArrayBuffer> }
  | { kind: "error"; error: SecureChannelError };

/**
 * Why the secure channel failed:
 * - `handshake_failed`: a handshake message was missing, malformed or failed authentication
 * - `untrusted_peer`: the initiator's static key is not trusted (responder side)
 * - `replayed`: message 1 was a replay, or carried no timestamp (responder side)
 * - `busy`: the responder answered with a busy notice (initiator side)
 * - `timeout`: the handshake did not finish in time
 * - `authentication_failed`: a transport message failed authentication
 * - `truncated`: the connection ended inside a message or without a close notice
 * - `closed`: use after `close()`
 * - `io`: the socket failed; `cause` holds the Deno error
 */
export type SecureChannelErrorCode =
  | "handshake_failed"
  | "untrusted_peer"
  | "replayed"
  | "busy"
  | "timeout"
  | "authentication_failed"
  | "truncated"
  | "closed"
  | "io";

/** Error raised by the handshake functions and {@linkcode SecureStream}. */
export class SecureChannelError extends CodedError<SecureChannelErrorCode> {
  override readonly name = "SecureChannelError";
  /** For `untrusted_peer`: the rejected static public key, for logging. */
  readonly peerKey?: Uint8Array;

  /** Creates a secure channel error with a reason code and a sentence-case message. */
  constructor(
    code: SecureChannelErrorCode,
    message: string,
    options?: ErrorOptions & { peerKey?: Uint8Array },
  ) {
    super(code, message, options);
    if (options?.peerKey) this.peerKey = options.peerKey;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function closeQuietly(conn: ByteStream): void {
  try {
    conn.close();
  } catch {
    // Already closed: nothing left to release.
  }
}

async function writeAll(conn: ByteStream, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/**
 * A byte stream whose data travels as Noise transport messages. Implements the `ByteStream`
 * interface (`read`, `readable`, `write`, `close`) that `FramedConnection` takes.
 *
 * Read it either with {@linkcode read} (as `FramedConnection` does: no stream machinery in
 * between) or through {@linkcode readable}, not both. Messages are decrypted as they are read:
 * small ones synchronously; large ones on WebCrypto's threads, several at a time when they
 * have already arrived (at most 16 read ahead, about 1 MiB).
 *
 * Made by {@linkcode initiateSecure} or {@linkcode acceptSecure}; the constructor is for
 * callers that ran the handshake themselves.
 */
export class SecureStream implements ByteStream {
  readonly #conn: ByteStream;
  readonly #reader: MessageReader;
  readonly #send: CipherState;
  readonly #receive: CipherState;
  readonly #remoteStatic: Uint8Array;
  readonly #handshakeHash: Uint8Array;
  #readable: ReadableStream<Uint8Array<ArrayBuffer>> | null = null;
  #writing: Promise<unknown> = Promise.resolve();
  /** Messages read ahead and being decrypted, in order. */
  readonly #ahead: (Received | Promise<Received>)[] = [];
  /** Decrypted data that a `read(p)` with a short `p` left over. */
  #leftover: Uint8Array<ArrayBuffer> | null = null;
  /** The socket read under way, if any (close() does not wait for it to end reads). */
  #socketRead: Promise<unknown> | null = null;
  /** Resolved by close() and on failure, to end the read waiting for the socket (one per read). */
  #wake: PromiseWithResolvers<null> | null = null;
  readonly #receiveBase: bigint;
  #error: SecureChannelError | null = null;
  #closed = false;
  #connClosed = false;
  #peerClosed = false;
  #receiving = false;
  /** Transport messages taken from the connection so far. */
  #taken = 0;
  #received = 0;
  #sent = 0;
  readonly #connClosedSignal: PromiseWithResolvers<void> = Promise.withResolvers();

  /**
   * Wraps `conn` after a completed handshake.
   *
   * @param reader the reader the handshake used on `conn` (it may hold bytes already
   * received); a new one is made when omitted.
   */
  constructor(conn: ByteStream, transport: TransportState, reader?: MessageReader) {
    this.#conn = conn;
    this.#reader = reader ?? new MessageReader(byteReaderOf(conn) ?? conn.readable);
    this.#send = transport.send;
    this.#receive = transport.receive;
    this.#receiveBase = transport.receive.nonce;
    this.#remoteStatic = transport.remoteStatic.slice();
    this.#handshakeHash = transport.handshakeHash.slice();
  }

  /**
   * The decrypted data from the peer, as a stream (made on first use). Errors with a
   * {@linkcode SecureChannelError}; ends at the peer's close notice or after `close()`.
   */
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    this.#readable ??= new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        let data: Uint8Array<ArrayBuffer> | null;
        try {
          data = await this.#nextData();
        } catch (error) {
          controller.error(error);
          return;
        }
        if (data === null) controller.close();
        else controller.enqueue(data);
      },
      cancel: () => this.close(),
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  /** The peer's static public key (X25519), authenticated by the handshake. */
  get remoteStatic(): Uint8Array {
    return this.#remoteStatic.slice();
  }

  /** The final handshake hash, equal on both sides: a channel binding value. */
  get handshakeHash(): Uint8Array {
    return this.#handshakeHash.slice();
  }

  /** Transport messages written so far (the close notice included). */
  get messagesSent(): number {
    return this.#sent;
  }

  /** Transport messages received and authenticated so far. */
  get messagesReceived(): number {
    return this.#received;
  }

  /** Resolves once the underlying connection is closed and no read on it is pending. */
  get closed(): Promise<void> {
    return this.#connClosedSignal.promise;
  }

  /**
   * Reads decrypted data into `p`, like `Deno.Conn.read`.
   *
   * @returns the bytes read, or `null` once the peer's close notice arrived or after
   * {@linkcode close}.
   * @throws {SecureChannelError} the error that ended the stream (`authentication_failed`,
   * `truncated`, `io`).
   */
  async read(p: Uint8Array): Promise<number | null> {
    if (p.length === 0) return 0;
    let data = this.#leftover;
    this.#leftover = null;
    if (data === null) {
      data = await this.#nextData();
      if (data === null) return null;
    }
    if (data.length <= p.length) {
      p.set(data);
      return data.length;
    }
    p.set(data.subarray(0, p.length));
    this.#leftover = data.subarray(p.length);
    return p.length;
  }

  /**
   * Encrypts and writes all of `data` (split into messages of at most 65519 bytes), after any
   * writes already queued.
   *
   * @returns `data.length` once everything is written.
   * @throws {SecureChannelError} `closed` after {@linkcode close}, `io` if the socket failed, or
   * the error that ended the stream.
   */
  write(data: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#closed) {
      return Promise.reject(
        new SecureChannelError("closed", "Cannot write to a closed secure channel"),
      );
    }
    // An empty message is the close notice: send nothing for empty writes.
    if (data.length === 0) return Promise.resolve(0);
    const write = this.#writing.then(() => this.#writeMessages(data));
    this.#writing = write.catch(() => {});
    return write;
  }

  /**
   * Closes the stream: pending reads end, the close notice is sent after queued writes (waiting
   * at most 1 s), then the connection is closed. Safe to call more than once; await
   * {@linkcode closed} to know when the connection is released.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wake?.resolve(null);
    if (this.#error || this.#connClosed) {
      this.#closeConn();
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_NOTICE_TIMEOUT_MS);
    });
    const notice = this.#writing.then(() => this.#sendCloseNotice());
    Promise.race([notice, timeout]).catch(() => {}).finally(() => {
      clearTimeout(timer);
      this.#closeConn();
    });
  }

  async #writeMessages(data: Uint8Array): Promise<number> {
    if (this.#error) throw this.#error;
    if (this.#connClosed) {
      throw new SecureChannelError("closed", "Cannot write to a closed secure channel");
    }
    const count = Math.ceil(data.length / MAX_CHUNK_BYTES);
    // Nonces are reserved in call order, so large chunks can be encrypted concurrently.
    const sealed: (Uint8Array | Promise<Uint8Array>)[] = [];
    for (let i = 0; i < count; i++) {
      const chunk = data.subarray(i * MAX_CHUNK_BYTES, (i + 1) * MAX_CHUNK_BYTES);
      sealed.push(
        chunk.length <= SYNC_MAX_BYTES
          ? this.#send.encryptWithAdSync(EMPTY, chunk)
          : this.#send.encryptWithAd(EMPTY, chunk),
      );
    }
    const out = new Uint8Array(data.length + count * (PREFIX_BYTES + TAGLEN));
    let offset = 0;
    for (const item of sealed) {
      const message = item instanceof Uint8Array ? item : await item;
      out[offset] = message.length >> 8;
      out[offset + 1] = message.length & 0xff;
      out.set(message, offset + PREFIX_BYTES);
      offset += PREFIX_BYTES + message.length;
    }
    await this.#writeRaw(out);
    this.#sent += count;
    return data.length;
  }

  async #sendCloseNotice(): Promise<void> {
    if (this.#error || this.#connClosed) return;
    await this.#writeRaw(prefixed(this.#send.encryptWithAdSync(EMPTY, EMPTY)));
    this.#sent++;
  }

  async #writeRaw(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.#conn, bytes);
    } catch (error) {
      if (this.#connClosed) {
        throw new SecureChannelError("closed", "Cannot write to a closed secure channel", {
          cause: error,
        });
      }
      const failure = new SecureChannelError(
        "io",
        `Secure channel: cannot send: ${describe(error)}`,
        { cause: error },
      );
      this.#fail(failure);
      throw failure;
    }
  }

  /**
   * The next authenticated data, or `null` at the peer's close notice or after close().
   *
   * @throws {SecureChannelError} the error that ended the stream.
   * @throws {Error} if called again before the previous call settled.
   */
  async #nextData(): Promise<Uint8Array<ArrayBuffer> | null> {
    if (this.#receiving) throw new Error("Cannot read a secure channel while a read is pending");
    this.#receiving = true;
    try {
      const item = await this.#nextItem();
      if (this.#error) throw this.#error;
      if (item === null || this.#closed || this.#connClosed) return null;
      if (item.kind === "error") {
        this.#fail(item.error);
        throw item.error;
      }
      this.#received++;
      if (item.data.length === 0) {
        // The peer's close notice: an orderly end of its data.
        this.#peerClosed = true;
        return null;
      }
      return item.data;
    } finally {
      this.#receiving = false;
    }
  }

  /** The next message read ahead, else the next one from the connection; null once stopped. */
  async #nextItem(): Promise<Received | null> {
    if (this.#error) throw this.#error;
    if (this.#closed || this.#connClosed || this.#peerClosed) return null;
    const ahead = this.#ahead.shift();
    if (ahead !== undefined) return await ahead;
    let next: NextMessage | null;
    try {
      const reading = this.#reader.next();
      this.#socketRead = reading;
      this.#wake = Promise.withResolvers();
      next = await Promise.race([reading, this.#wake.promise]);
    } catch (error) {
      if (this.#closed || this.#connClosed) return null;
      return {
        kind: "error",
        error: new SecureChannelError("io", `Secure channel: cannot receive: ${describe(error)}`, {
          cause: error,
        }),
      };
    }
    if (next === null || this.#closed || this.#connClosed) return null;
    this.#socketRead = null;
    this.#wake = null;
    if (next.kind === "end") {
      return {
        kind: "error",
        error: new SecureChannelError(
          "truncated",
          `Secure channel: the connection closed without a close notice after message ${this.#taken} (data may have been cut off)`,
        ),
      };
    }
    const number = ++this.#taken;
    if (next.kind === "truncated") {
      return {
        kind: "error",
        error: new SecureChannelError(
          "truncated",
          `Secure channel: message ${number} is truncated (the connection closed after ${next.received} of ${next.expected} bytes)`,
        ),
      };
    }
    const first = this.#open(next.body, number);
    if (first instanceof Promise) this.#readAhead(next.body);
    return await first;
  }

  /**
   * Starts decrypting the messages that have already arrived after `body` (a large message
   * decrypting on WebCrypto's threads), so that they decrypt in parallel with it.
   */
  #readAhead(body: Uint8Array): void {
    let last = body;
    while (this.#ahead.length < RECEIVE_WINDOW - 1 && last.length !== TAGLEN) {
      const next = this.#reader.buffered();
      if (next === null) return;
      this.#ahead.push(this.#open(next, ++this.#taken));
      last = next;
    }
  }

  /** Decrypts transport message `number`: at once if small, else on WebCrypto's threads. */
  #open(body: Uint8Array, number: number): Received | Promise<Received> {
    const nonce = this.#receiveBase + BigInt(number - 1);
    const failed = (error: unknown): Received => ({
      kind: "error",
      error: new SecureChannelError(
        "authentication_failed",
        `Secure channel: message ${number} failed authentication`,
        { cause: error },
      ),
    });
    if (body.length - TAGLEN > SYNC_MAX_BYTES) {
      return this.#receive.decryptAt(EMPTY, body, nonce).then(
        (data): Received => ({ kind: "data", data }),
        failed,
      );
    }
    try {
      return { kind: "data", data: this.#receive.decryptAtSync(EMPTY, body, nonce) };
    } catch (error) {
      return failed(error);
    }
  }

  #fail(error: SecureChannelError): void {
    if (this.#error) return;
    this.#error = error;
    this.#wake?.resolve(null);
    this.#closeConn();
  }

  #closeConn(): void {
    if (this.#connClosed) return;
    this.#connClosed = true;
    this.#wake?.resolve(null);
    closeQuietly(this.#conn);
    const resolve = () => this.#connClosedSignal.resolve();
    Promise.allSettled([this.#socketRead, ...this.#ahead]).then(resolve, resolve);
  }
}

/** Options of {@linkcode initiateSecure}. */
export interface InitiateOptions {
  /** This side's (the IDS's) static X25519 key pair. */
  staticKey: KeyPair;
  /** The responder's (the agent's) static X25519 public key, pinned. */
  remoteStatic: Uint8Array;
  /** Bound into the handshake; both sides must use the same. Default {@linkcode DEFAULT_PROLOGUE}. */
  prologue?: Uint8Array;
  /** Handshake deadline in milliseconds. Default {@linkcode HANDSHAKE_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** A fixed ephemeral key pair: tests only. */
  ephemeralKey?: KeyPair;
  /** Message 1's payload, a TAI64N timestamp; {@linkcode timestampNow} when omitted (tests only). */
  timestamp?: Uint8Array;
}

/** Options of {@linkcode acceptSecure}. */
export interface AcceptOptions {
  /** This side's (the agent's) static X25519 key pair. */
  staticKey: KeyPair;
  /** Whether the initiator's static public key is trusted; called before answering. */
  isTrusted(publicKey: Uint8Array): boolean | Promise<boolean>;
  /** Bound into the handshake; both sides must use the same. Default {@linkcode DEFAULT_PROLOGUE}. */
  prologue?: Uint8Array;
  /** Handshake deadline in milliseconds. Default {@linkcode HANDSHAKE_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** A fixed ephemeral key pair: tests only. */
  ephemeralKey?: KeyPair;
  /**
   * Refuses replayed messages 1 (`replayed`): shared by every handshake of the responder.
   * Without it message 1's payload is not checked.
   */
  replay?: ReplayGuard;
  /** Called once message 1 has arrived whole, before any Diffie-Hellman. */
  onMessage1?(): void;
}

/** Writes the busy notice to `conn` and closes it; errors are ignored (the peer may be gone). */
export async function sendBusyNotice(conn: ByteStream): Promise<void> {
  try {
    await writeAll(conn, BUSY_NOTICE);
  } catch {
    // The peer left: nothing to tell it.
  }
  closeQuietly(conn);
}

async function withDeadline<T>(
  conn: ByteStream,
  timeoutMs: number,
  run: () => Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new SecureChannelError("timeout", `Handshake timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([run(), timeout]);
  } catch (error) {
    closeQuietly(conn);
    if (error instanceof SecureChannelError) throw error;
    throw new SecureChannelError("io", `Handshake failed: ${describe(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

async function readHandshakeMessage(
  reader: MessageReader,
  number: number,
  ifEnded: string,
): Promise<Uint8Array> {
  let next: NextMessage;
  try {
    next = await reader.next();
  } catch (error) {
    throw new SecureChannelError(
      "io",
      `Handshake failed: cannot receive message ${number}: ${describe(error)}`,
      { cause: error },
    );
  }
  if (next.kind === "end") throw new SecureChannelError("handshake_failed", ifEnded);
  if (next.kind === "truncated") {
    throw new SecureChannelError(
      "handshake_failed",
      `Handshake failed: the peer closed the connection inside message ${number} (${next.received} of ${next.expected} bytes)`,
    );
  }
  return next.body;
}

async function sendHandshakeMessage(
  conn: ByteStream,
  message: Uint8Array,
  number: number,
): Promise<void> {
  try {
    await writeAll(conn, prefixed(message));
  } catch (error) {
    throw new SecureChannelError(
      "io",
      `Handshake failed: cannot send message ${number}: ${describe(error)}`,
      { cause: error },
    );
  }
}

function handshakeFailure(error: unknown, hint: string): SecureChannelError {
  if (error instanceof NoiseError) {
    return new SecureChannelError("handshake_failed", `${error.message}: ${hint}`, {
      cause: error,
    });
  }
  return new SecureChannelError("handshake_failed", `Handshake failed: ${describe(error)}`, {
    cause: error,
  });
}

/** An initiator's handshake with message 1 already written, not yet sent. */
export interface PreparedInitiator {
  /** The handshake state, waiting for message 2. */
  handshake: HandshakeState;
  /** Message 1 with its MAC (`mac1.ts`), without its length prefix. */
  message1: Uint8Array;
}

/**
 * Computes the initiator's message 1 (with its timestamp) before there is a connection, so
 * that {@linkcode initiateSecure} can send it the moment the connection is up: an agent that
 * strangers flood drops connections that stay silent, and every millisecond of crypto between
 * connecting and sending is a millisecond of silence.
 */
export async function prepareInitiator(options: InitiateOptions): Promise<PreparedInitiator> {
  const handshake = await HandshakeState.initialize({
    role: "initiator",
    prologue: options.prologue ?? DEFAULT_PROLOGUE,
    staticKeyPair: options.staticKey,
    remoteStatic: options.remoteStatic,
    ephemeralKeyPair: options.ephemeralKey,
  });
  const message1 = await handshake.writeMessage(options.timestamp ?? timestampNow());
  return { handshake, message1: appendMac1(message1, options.remoteStatic) };
}

/**
 * Runs the IK handshake as the initiator (the IDS) over `conn`, which must hold the pinned
 * static key `remoteStatic`, and returns the secure stream. On failure `conn` is closed.
 * `prepared` (from {@linkcode prepareInitiator}, used once) saves computing message 1 now.
 *
 * @throws {SecureChannelError} `handshake_failed` (e.g. "Handshake failed: the peer closed the
 * connection without answering: it does not hold the pinned key or does not trust this key"),
 * `busy` (the agent sent a busy notice), `timeout`, `io`.
 */
export async function initiateSecure(
  conn: ByteStream,
  options: InitiateOptions,
  prepared?: PreparedInitiator,
): Promise<SecureStream> {
  return await withDeadline(conn, options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS, async () => {
    const reader = new MessageReader(byteReaderOf(conn) ?? conn.readable);
    const { handshake, message1 } = prepared ?? await prepareInitiator(options);
    await sendHandshakeMessage(conn, message1, 1);
    const message2 = await readHandshakeMessage(
      reader,
      2,
      "Handshake failed: the peer closed the connection without answering: it does not hold the pinned key or does not trust this key",
    );
    if (message2.length === 0) {
      throw new SecureChannelError(
        "busy",
        "Handshake refused: the agent is busy or under attack (it answered with a busy notice)",
      );
    }
    try {
      await handshake.readMessage(message2);
    } catch (error) {
      throw handshakeFailure(error, "the message was modified in transit");
    }
    return new SecureStream(conn, handshake.transport(), reader);
  });
}

/**
 * Runs the IK handshake as the responder (the agent) over `conn`: reads message 1 (and nothing
 * more), checks the initiator's static key with `isTrusted`, then answers. On failure `conn` is
 * closed without anything being sent.
 *
 * @throws {SecureChannelError} `untrusted_peer` ("Peer key <base64> is not trusted", with
 * `peerKey`), `replayed` (with a `replay` guard), `handshake_failed` (e.g. message 1 failed
 * authentication), `timeout`, `io`.
 */
export async function acceptSecure(
  conn: ByteStream,
  options: AcceptOptions,
): Promise<SecureStream> {
  return await withDeadline(conn, options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS, async () => {
    const reader = new MessageReader(byteReaderOf(conn) ?? conn.readable);
    // Message 1 first, before any crypto: a connection that has sent it is not kept waiting
    // behind the hashing of the handshake's start (which matters when strangers flood).
    const body = await readHandshakeMessage(
      reader,
      1,
      "Handshake failed: the peer closed the connection before sending message 1",
    );
    options.onMessage1?.();
    // One hash, before any Diffie-Hellman: garbage from a peer that does not know this side's
    // public key ends here.
    const message1 = checkMac1(body, options.staticKey.publicKey);
    if (message1 === null) {
      throw new SecureChannelError(
        "handshake_failed",
        "Handshake message 1 has a wrong MAC: the peer does not know this side's public key, speaks another protocol version, or the message was modified",
      );
    }
    const handshake = await HandshakeState.initialize({
      role: "responder",
      prologue: options.prologue ?? DEFAULT_PROLOGUE,
      staticKeyPair: options.staticKey,
      ephemeralKeyPair: options.ephemeralKey,
    });
    if (options.replay?.isKnownEphemeral(message1)) {
      throw new SecureChannelError(
        "replayed",
        "Handshake message 1 is a replay (known ephemeral key)",
      );
    }
    let payload: Uint8Array;
    try {
      payload = await handshake.readMessage(message1);
    } catch (error) {
      throw handshakeFailure(
        error,
        "the peer pinned another key for this side, uses another protocol version, or the message was modified",
      );
    }
    const peerKey = handshake.remoteStatic!;
    if (!(await options.isTrusted(peerKey.slice()))) {
      throw new SecureChannelError(
        "untrusted_peer",
        `Peer key ${toBase64(peerKey)} is not trusted`,
        {
          peerKey,
        },
      );
    }
    const verdict = options.replay?.check(peerKey, payload, message1) ?? "fresh";
    if (verdict === "no_timestamp") {
      throw new SecureChannelError(
        "replayed",
        `Handshake message 1 carries no timestamp (${payload.length} bytes of payload, expected ${TIMESTAMP_BYTES})`,
      );
    }
    if (verdict === "replayed") {
      throw new SecureChannelError(
        "replayed",
        `Handshake message 1 from ${toBase64(peerKey)} is a replay (its timestamp is not new)`,
      );
    }
    await sendHandshakeMessage(conn, await handshake.writeMessage(), 2);
    return new SecureStream(conn, handshake.transport(), reader);
  });
}
