/**
 * The wire protocol shared by the agent (in the guest) and the IDS (on the host), bottom up:
 * - `frame.ts`: length-prefixed msgpack frames ({@linkcode encodeFrame}, {@linkcode FrameReader})
 * - `protocol.ts`: the messages and their validation ({@linkcode parseMessage}, arg helpers)
 * - `transport.ts`: `tcp://` and `vsock://` endpoints ({@linkcode dial}, {@linkcode listen})
 * - `connection.ts`: {@linkcode FramedConnection}, messages over a connection
 *
 * @example
 * ```ts
 * import { dial, FramedConnection, requestMessage } from "./wire/mod.ts";
 *
 * const connection = new FramedConnection(await dial("tcp://127.0.0.1:7000"));
 * await connection.send(requestMessage(1, "ping"));
 * const reply = await connection.receive();
 * connection.close();
 * ```
 *
 * @module
 */

export {
  decodePayload,
  encodeFrame,
  FRAME_PREFIX_BYTES,
  FrameError,
  type FrameErrorCode,
  type FrameOptions,
  FrameReader,
  MAX_FRAME_BYTES,
} from "./frame.ts";
export {
  argBigint,
  argBool,
  argBytes,
  type Args,
  argString,
  argUint,
  type Chunk,
  chunkMessage,
  type ErrorMessage,
  errorMessage,
  isOp,
  MAX_REQUEST_ID,
  type Message,
  type MessageType,
  type Op,
  OPS,
  parseMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  type ProtocolErrorCode,
  type Request,
  requestMessage,
  type Result,
  resultMessage,
} from "./protocol.ts";
export {
  accept,
  dial,
  type Endpoint,
  formatEndpoint,
  listen,
  parseEndpoint,
  type TcpEndpoint,
  TransportError,
  type TransportErrorCode,
  VMADDR_CID_ANY,
  VMADDR_CID_HOST,
  type VsockEndpoint,
} from "./transport.ts";
export {
  type ByteStream,
  ConnectionError,
  type ConnectionErrorCode,
  FramedConnection,
} from "./connection.ts";
