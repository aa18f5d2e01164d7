/**
 * Test helpers: byte streams built from chunk lists.
 *
 * @module
 */

/** A stream that yields `chunks` one per read, then ends; `pulls` counts the reads served. */
export function chunkStream(
  chunks: Uint8Array[],
): { stream: ReadableStream<Uint8Array>; pulls: () => number } {
  let index = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = chunks[index++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  return { stream, pulls: () => index };
}

/** Splits `bytes` into chunks of `size` bytes (the last may be shorter). */
export function split(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) {
    chunks.push(bytes.slice(offset, offset + size));
  }
  return chunks;
}

/** A frame with an arbitrary payload, bypassing the encoder. */
export function rawFrame(payload: Uint8Array, length = payload.length): Uint8Array {
  const frame = new Uint8Array(4 + payload.length);
  new DataView(frame.buffer).setUint32(0, length, false);
  frame.set(payload, 4);
  return frame;
}
