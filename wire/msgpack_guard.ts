/**
 * A structural check of a msgpack payload before it is decoded. The decoder
 * allocates an array or map of the length a header claims before it reads a
 * single element, so 5 hostile bytes could claim a 2^31-element array; and
 * nesting has no bound of its own. This check walks the encoding once,
 * without allocating, and refuses a payload whose containers claim more
 * elements than bytes remain (every element takes at least one byte) or that
 * nests deeper than a bound.
 *
 * @module
 */

/** Nesting deeper than this is refused (protocol messages nest a few levels). */
export const MAX_MSGPACK_DEPTH = 32;

/** Why a payload was refused; the message says where. */
export class MsgpackShapeError extends Error {
  /** @param message what is wrong and where */
  constructor(message: string) {
    super(message);
    this.name = "MsgpackShapeError";
  }
}

/**
 * Checks that `bytes` is one well-formed msgpack value whose claimed lengths
 * fit in the bytes there are, nested at most `maxDepth` deep.
 *
 * @throws {MsgpackShapeError}
 */
export function checkMsgpackShape(bytes: Uint8Array, maxDepth = MAX_MSGPACK_DEPTH): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  let at = 0;
  // Elements still expected by each open container, innermost last.
  const open: number[] = [];
  let expected = 1; // elements still expected in all (the top-level value)

  const need = (n: number, what: string) => {
    if (at + n > end) {
      throw new MsgpackShapeError(`${what} at byte ${at} runs past the end (${end} bytes)`);
    }
  };
  const skip = (n: number, what: string) => {
    need(n, what);
    at += n;
  };
  const container = (count: number, what: string) => {
    if (open.length >= maxDepth) {
      throw new MsgpackShapeError(`msgpack nests deeper than ${maxDepth} at byte ${at}`);
    }
    expected += count;
    if (expected > end - at) {
      throw new MsgpackShapeError(
        `${what} at byte ${at} claims ${count} elements, but only ${end - at} bytes remain`,
      );
    }
    open.push(count);
  };

  while (expected > 0) {
    need(1, "A value");
    // One element of the innermost container (or the top-level value) starts here.
    expected--;
    if (open.length > 0) open[open.length - 1]!--;
    const tag = bytes[at++]!;
    if (tag <= 0x7f || tag >= 0xe0 || tag === 0xc0 || tag === 0xc2 || tag === 0xc3) {
      // fixint, nil, bool: the tag is the value
    } else if (tag <= 0x8f) container(2 * (tag & 0x0f), "A map");
    else if (tag <= 0x9f) container(tag & 0x0f, "An array");
    else if (tag <= 0xbf) skip(tag & 0x1f, "A string");
    else {
      switch (tag) {
        case 0xc4:
        case 0xd9:
          need(1, "A length");
          skip(1 + bytes[at]!, "A string or bin");
          break;
        case 0xc5:
        case 0xda:
          need(2, "A length");
          skip(2 + view.getUint16(at), "A string or bin");
          break;
        case 0xc6:
        case 0xdb:
          need(4, "A length");
          skip(4 + view.getUint32(at), "A string or bin");
          break;
        case 0xc7:
          need(1, "A length");
          skip(2 + bytes[at]!, "An ext");
          break;
        case 0xc8:
          need(2, "A length");
          skip(3 + view.getUint16(at), "An ext");
          break;
        case 0xc9:
          need(4, "A length");
          skip(5 + view.getUint32(at), "An ext");
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          skip(4, "A number");
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip(8, "A number");
          break;
        case 0xcc:
        case 0xd0:
          skip(1, "A number");
          break;
        case 0xcd:
        case 0xd1:
          skip(2, "A number");
          break;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          skip(1 + (1 << (tag - 0xd4)), "A fixext");
          break;
        case 0xdc:
          need(2, "A length");
          at += 2;
          container(view.getUint16(at - 2), "An array");
          break;
        case 0xdd:
          need(4, "A length");
          at += 4;
          container(view.getUint32(at - 4), "An array");
          break;
        case 0xde:
          need(2, "A length");
          at += 2;
          container(2 * view.getUint16(at - 2), "A map");
          break;
        case 0xdf:
          need(4, "A length");
          at += 4;
          container(2 * view.getUint32(at - 4), "A map");
          break;
        default:
          throw new MsgpackShapeError(`Byte ${at - 1} is 0x${tag.toString(16)}, no msgpack type`);
      }
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
  }
  if (at !== end) {
    throw new MsgpackShapeError(`${end - at} bytes follow the value (at byte ${at})`);
  }
}
