/**
 * Test helpers: in-memory connections with a man in the middle, and key fixtures.
 *
 * @module
 */

import type { ByteStream } from "../../../wire/connection.ts";

/** Controls given to a {@linkcode Tamper} function. */
export interface TamperControl {
  /** Ends the client → server direction once this call's frames are delivered. */
  close(): void;
}

/**
 * Sees each length-prefixed message the client writes (prefix included; index 0 is handshake
 * message 1, index n >= 1 transport message n) and returns what the server receives instead.
 */
export type Tamper = (frame: Uint8Array, index: number, control: TamperControl) => Uint8Array[];

class Pipe {
  readonly readable: ReadableStream<Uint8Array<ArrayBuffer>>;
  #controller!: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>>;
  #ended = false;

  constructor() {
    this.readable = new ReadableStream({ start: (c) => void (this.#controller = c) });
  }

  push(bytes: Uint8Array): void {
    if (!this.#ended) this.#controller.enqueue(new Uint8Array(bytes));
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#controller.close();
  }
}

/** A client/server pair of in-memory connections; `tamper` rewrites client → server traffic. */
export function memoryPair(tamper: Tamper = (frame) => [frame]): [ByteStream, ByteStream] {
  const toServer = new Pipe();
  const toClient = new Pipe();
  let pending = new Uint8Array(0);
  let index = 0;
  let closing = false;
  const control = { close: () => void (closing = true) };
  const client: ByteStream = {
    readable: toClient.readable,
    write(bytes: Uint8Array) {
      const joined = new Uint8Array(pending.length + bytes.length);
      joined.set(pending);
      joined.set(bytes, pending.length);
      let offset = 0;
      while (joined.length - offset >= 2) {
        const length = (joined[offset]! << 8) | joined[offset + 1]!;
        if (joined.length - offset < 2 + length) break;
        const frame = joined.slice(offset, offset + 2 + length);
        for (const out of tamper(frame, index++, control)) toServer.push(out);
        if (closing) toServer.end();
        offset += 2 + length;
      }
      pending = joined.slice(offset);
      return Promise.resolve(bytes.length);
    },
    close() {
      toServer.end();
      toClient.end();
    },
  };
  const server: ByteStream = {
    readable: toServer.readable,
    write(bytes: Uint8Array) {
      toClient.push(bytes);
      return Promise.resolve(bytes.length);
    },
    close() {
      toClient.end();
      toServer.end();
    },
  };
  return [client, server];
}

/** Closes a connection that may already be closed (a Deno.Conn closes itself at EOF). */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Reads everything from a stream until it ends or errors; returns the chunks and the error. */
export async function drain(
  readable: ReadableStream<Uint8Array>,
): Promise<{ chunks: Uint8Array[]; error: unknown }> {
  const chunks: Uint8Array[] = [];
  const reader = readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { chunks, error: null };
      chunks.push(value);
    }
  } catch (error) {
    return { chunks, error };
  } finally {
    reader.releaseLock();
  }
}
