/**
 * The messages exchanged between the IDS and the agent, validated at the boundary.
 *
 * A request is answered by zero or more `chunk` messages (a streamed response, `seq` counting
 * from 0) followed by exactly one `result` or `error` with the same `id`. An `error` with id 0
 * reports a connection-level problem just before the peer closes.
 *
 * @module
 */
import { CodedError } from "./coded_error.ts";

/** Version of this protocol, exchanged by the `hello` op. */
export const PROTOCOL_VERSION = 1;

/** Largest request id (ids are unsigned 32-bit, and 0 is reserved for connection errors). */
export const MAX_REQUEST_ID = 0xffff_ffff;

/** The operations the agent implements, in the order a session usually uses them. */
export const OPS = [
  "hello",
  "ping",
  "kernel_info",
  "btf",
  "kallsyms",
  "load",
  "run",
  "unload",
  "attest",
] as const;

/** Name of an operation the agent implements. */
export type Op = typeof OPS[number];

/** Whether `value` names an operation in {@linkcode OPS}. */
export function isOp(value: unknown): value is Op {
  return typeof value === "string" && (OPS as readonly string[]).includes(value);
}

/** Arguments of a request: a msgpack map with string keys. */
export type Args = Record<string, unknown>;

/** Asks the peer to perform `op`; answered by chunks and then one result or error. */
export interface Request {
  /** Message discriminator. */
  type: "request";
  /** Request id, unique among the sender's outstanding requests (1 to 2^32-1). */
  id: number;
  /** Operation name; usually an {@linkcode Op}, but unknown names must get an error reply. */
  op: string;
  /** Operation arguments (`{}` when the sender omitted them). */
  args: Args;
}

/** One piece of a streamed response to request `id`. */
export interface Chunk {
  /** Message discriminator. */
  type: "chunk";
  /** Id of the request this chunk answers. */
  id: number;
  /** Position of this chunk in the response, counting from 0. */
  seq: number;
  /** The bytes of this piece. */
  data: Uint8Array;
}

/** Ends request `id` successfully. */
export interface Result {
  /** Message discriminator. */
  type: "result";
  /** Id of the request this result ends. */
  id: number;
  /** Op-specific result value (may be `null`). */
  body: unknown;
}

/** Ends request `id` with an error, or (id 0) reports a connection-level error. */
export interface ErrorMessage {
  /** Message discriminator. */
  type: "error";
  /** Id of the request this error ends, or 0 when it concerns the whole connection. */
  id: number;
  /** Machine-readable reason, such as `"bad_args"` or `"unknown_op"`. */
  code: string;
  /** Human-readable explanation, sentence case without trailing period. */
  message: string;
}

/** Any message of the protocol. */
export type Message = Request | Chunk | Result | ErrorMessage;

/** Type tag of a {@linkcode Message}. */
export type MessageType = Message["type"];

/**
 * Why a message or its arguments were rejected:
 * - `malformed`: the value is not a valid protocol message
 * - `bad_args`: a request's arguments are missing or have the wrong type
 */
export type ProtocolErrorCode = "malformed" | "bad_args";

/**
 * Error raised when a received value is not a valid message or a request has bad arguments.
 * The `code` is suitable as the `code` of an {@linkcode ErrorMessage} reply.
 */
export class ProtocolError extends CodedError<ProtocolErrorCode> {
  override readonly name = "ProtocolError";
}

const FIELDS: Record<MessageType, readonly string[]> = {
  request: ["type", "id", "op", "args"],
  chunk: ["type", "id", "seq", "data"],
  result: ["type", "id", "body"],
  error: ["type", "id", "code", "message"],
};

function malformed(message: string): ProtocolError {
  return new ProtocolError("malformed", message);
}

/** Short description of a value's type for error messages. */
function kind(value: unknown): string {
  if (value === null) return "nil";
  if (value instanceof Uint8Array) return "bytes";
  if (Array.isArray(value)) return "array";
  if (typeof value === "object") return isPlainObject(value) ? "map" : "object";
  return typeof value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isUint32(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 &&
    value <= 0xffff_ffff;
}

function checkId(type: MessageType, value: unknown): number {
  const min = type === "error" ? 0 : 1;
  if (!isUint32(value) || value < min) {
    throw malformed(
      `Field id of ${type} message must be an integer from ${min} to ${MAX_REQUEST_ID}, got ${
        show(value)
      }`,
    );
  }
  return value;
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "bigint") return `${value}n`;
  return kind(value);
}

function field<T>(
  type: MessageType,
  map: Record<string, unknown>,
  name: string,
  check: (value: unknown) => value is T,
  expected: string,
): T {
  const value = map[name];
  if (!check(value)) {
    throw malformed(`Field ${name} of ${type} message must be ${expected}, got ${show(value)}`);
  }
  return value;
}

const isString = (value: unknown): value is string => typeof value === "string";
const isBytes = (value: unknown): value is Uint8Array => value instanceof Uint8Array;

/**
 * Checks that a decoded frame is exactly one protocol message: a map with string keys, a known
 * `type`, every required field with the right type and no other field. `args` of a request may
 * be omitted (it becomes `{}`).
 *
 * @throws {ProtocolError} code `malformed`, with a message naming the offending field.
 *
 * @example
 * ```ts
 * const message = parseMessage(await reader.next());
 * if (message.type === "request") console.log(message.op);
 * ```
 */
export function parseMessage(value: unknown): Message {
  if (!isPlainObject(value)) throw malformed(`Message must be a map, got ${kind(value)}`);
  if (!Object.hasOwn(value, "type")) throw malformed("Missing field type in message");
  const type = value.type;
  if (typeof type !== "string") {
    throw malformed(`Message field type must be a string, got ${show(type)}`);
  }
  if (!Object.hasOwn(FIELDS, type)) throw malformed(`Unknown message type ${show(type)}`);
  const messageType = type as MessageType;
  const allowed = FIELDS[messageType];
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw malformed(`Unexpected field ${show(key)} in ${messageType} message`);
    }
  }
  for (const key of allowed) {
    if (!Object.hasOwn(value, key) && !(messageType === "request" && key === "args")) {
      throw malformed(`Missing field ${key} in ${messageType} message`);
    }
  }
  const id = checkId(messageType, value.id);
  switch (messageType) {
    case "request": {
      const op = field(messageType, value, "op", isString, "a string");
      if (op.length === 0) throw malformed("Field op of request message must not be empty");
      const args = value.args === undefined ? {} : value.args;
      if (!isPlainObject(args)) {
        throw malformed(`Field args of request message must be a map, got ${kind(args)}`);
      }
      return { type: "request", id, op, args };
    }
    case "chunk": {
      const seq = field(messageType, value, "seq", isUint32, "an integer from 0 to 4294967295");
      const data = field(messageType, value, "data", isBytes, "bytes");
      return { type: "chunk", id, seq, data };
    }
    case "result":
      return { type: "result", id, body: value.body };
    case "error": {
      const code = field(messageType, value, "code", isString, "a string");
      if (code.length === 0) throw malformed("Field code of error message must not be empty");
      const message = field(messageType, value, "message", isString, "a string");
      return { type: "error", id, code, message };
    }
  }
}

/**
 * Builds a request message.
 *
 * @throws {ProtocolError} if `id` is not 1 to 2^32-1 or `op` is empty.
 */
export function requestMessage(id: number, op: string, args: Args = {}): Request {
  return parseMessage({ type: "request", id, op, args }) as Request;
}

/**
 * Builds one chunk of a streamed response.
 *
 * @throws {ProtocolError} if `id` or `seq` is out of range.
 */
export function chunkMessage(id: number, seq: number, data: Uint8Array): Chunk {
  return parseMessage({ type: "chunk", id, seq, data }) as Chunk;
}

/**
 * Builds the message that ends a request successfully.
 *
 * @throws {ProtocolError} if `id` is out of range.
 */
export function resultMessage(id: number, body: unknown = null): Result {
  return parseMessage({ type: "result", id, body }) as Result;
}

/**
 * Builds an error message; use id 0 for a connection-level error.
 *
 * @throws {ProtocolError} if `id` is out of range or `code` is empty.
 */
export function errorMessage(id: number, code: string, message: string): ErrorMessage {
  return parseMessage({ type: "error", id, code, message }) as ErrorMessage;
}

function badArgs(message: string): ProtocolError {
  return new ProtocolError("bad_args", message);
}

/** Looks up `name`; absent, `undefined` and `null` count as missing. */
function arg<T>(args: Args, name: string, fallback: T | undefined): unknown {
  const value = Object.hasOwn(args, name) ? args[name] : undefined;
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw badArgs(`Missing argument ${name}`);
  }
  return value;
}

/**
 * Reads a string argument.
 *
 * @param fallback returned when the argument is absent or nil; without it, absence is an error.
 * @throws {ProtocolError} code `bad_args`, e.g. "Argument name must be a string".
 */
export function argString(args: Args, name: string, fallback?: string): string {
  const value = arg(args, name, fallback);
  if (typeof value !== "string") throw badArgs(`Argument ${name} must be a string`);
  return value;
}

/**
 * Reads a bytes (msgpack bin) argument.
 *
 * @param fallback returned when the argument is absent or nil; without it, absence is an error.
 * @throws {ProtocolError} code `bad_args`, e.g. "Argument object must be bytes".
 */
export function argBytes(args: Args, name: string, fallback?: Uint8Array): Uint8Array {
  const value = arg(args, name, fallback);
  if (!(value instanceof Uint8Array)) throw badArgs(`Argument ${name} must be bytes`);
  return value;
}

/**
 * Reads a boolean argument.
 *
 * @param fallback returned when the argument is absent or nil; without it, absence is an error.
 * @throws {ProtocolError} code `bad_args`, e.g. "Argument follow must be a boolean".
 */
export function argBool(args: Args, name: string, fallback?: boolean): boolean {
  const value = arg(args, name, fallback);
  if (typeof value !== "boolean") throw badArgs(`Argument ${name} must be a boolean`);
  return value;
}

/**
 * Reads a non-negative integer argument that fits a JavaScript number exactly (up to 2^53-1);
 * a `bigint` in that range is accepted too.
 *
 * @param fallback returned when the argument is absent or nil; without it, absence is an error.
 * @throws {ProtocolError} code `bad_args`, e.g. "Argument handle must be a non-negative integer".
 */
export function argUint(args: Args, name: string, fallback?: number): number {
  const value = arg(args, name, fallback);
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === "bigint" && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(value);
  }
  throw badArgs(`Argument ${name} must be a non-negative integer`);
}

const U64_LIMIT = 1n << 64n;

/**
 * Reads an unsigned 64-bit integer argument (such as a kernel address) as a `bigint`; a
 * non-negative safe-integer number is accepted too.
 *
 * @param fallback returned when the argument is absent or nil; without it, absence is an error.
 * @throws {ProtocolError} code `bad_args`, e.g.
 * "Argument addr must be an unsigned 64-bit integer".
 */
export function argBigint(args: Args, name: string, fallback?: bigint): bigint {
  const value = arg(args, name, fallback);
  if (typeof value === "bigint" && value >= 0n && value < U64_LIMIT) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
    return BigInt(value);
  }
  throw badArgs(`Argument ${name} must be an unsigned 64-bit integer`);
}
