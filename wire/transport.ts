/**
 * Endpoints as URLs (`tcp://host:port`, `vsock://cid:port`) and the sockets behind them.
 *
 * vsock needs Deno's unstable vsock API: run with `--unstable-vsock` (or `"unstable": ["vsock"]`
 * in deno.json). Without it Deno prints "Unstable API 'Deno.connect'. The `--unstable-vsock` flag
 * must be provided" and exits the process with code 70; this cannot be caught.
 *
 * @module
 */
import { CodedError } from "./coded_error.ts";

/** A TCP endpoint; same shape as a TCP `Deno.NetAddr`. */
export interface TcpEndpoint {
  /** Transport discriminator. */
  transport: "tcp";
  /** Host name or IP address (IPv6 without brackets). */
  hostname: string;
  /** Port, 0 to 65535; 0 means "pick a free port" when listening. */
  port: number;
}

/** A vsock endpoint; same shape as `Deno.VsockAddr`. */
export interface VsockEndpoint {
  /** Transport discriminator. */
  transport: "vsock";
  /** Context id: 2 is the host, 1 the local machine, {@linkcode VMADDR_CID_ANY} any (listen). */
  cid: number;
  /** vsock port, 0 to 2^32-1. */
  port: number;
}

/** Where to dial or listen. */
export type Endpoint = TcpEndpoint | VsockEndpoint;

/** vsock context id meaning "any" (listen on every CID); written `any` in endpoint URLs. */
export const VMADDR_CID_ANY = 0xffff_ffff;

/** vsock context id of the host. */
export const VMADDR_CID_HOST = 2;

/**
 * Why a transport operation failed:
 * - `bad_endpoint`: the endpoint URL or address is invalid
 * - `connect_failed`: dialing failed (refused, unreachable, reset...)
 * - `listen_failed`: binding the listener failed (address in use, not permitted...)
 */
export type TransportErrorCode = "bad_endpoint" | "connect_failed" | "listen_failed";

/** Error raised by the functions of this module; `cause` holds the Deno error, if any. */
export class TransportError extends CodedError<TransportErrorCode> {
  override readonly name = "TransportError";
}

const USAGE = "use tcp://host:port or vsock://cid:port";

function badEndpoint(message: string): TransportError {
  return new TransportError("bad_endpoint", message);
}

function parseNumber(text: string, max: number): number | null {
  if (!/^[0-9]{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value <= max ? value : null;
}

/**
 * Parses an endpoint URL: `tcp://host:port` (IPv6 hosts in brackets, `tcp://[::1]:7000`) or
 * `vsock://cid:port` (cid a number or `any`). Port 0 is accepted (listen on a free port).
 *
 * @throws {TransportError} code `bad_endpoint`, e.g. "Unsupported transport udp: use
 * tcp://host:port or vsock://cid:port".
 *
 * @example
 * ```ts
 * parseEndpoint("vsock://3:7000"); // { transport: "vsock", cid: 3, port: 7000 }
 * ```
 */
export function parseEndpoint(url: string): Endpoint {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/.exec(url);
  if (!match) throw badEndpoint(`Invalid endpoint ${JSON.stringify(url)}: ${USAGE}`);
  const scheme = match[1]!.toLowerCase();
  const rest = match[2]!;
  if (scheme !== "tcp" && scheme !== "vsock") {
    throw badEndpoint(`Unsupported transport ${scheme}: ${USAGE}`);
  }
  const split = /^(\[[^\]]*\]|[^:/?#@[\]\s]*):([^:]*)$/.exec(rest);
  if (!split) {
    throw badEndpoint(
      `Invalid endpoint ${url}: expected ${scheme}://${scheme === "tcp" ? "host" : "cid"}:port`,
    );
  }
  const host = split[1]!;
  const portText = split[2]!;
  if (portText === "") throw badEndpoint(`Invalid endpoint ${url}: missing port`);
  if (scheme === "tcp") {
    const port = parseNumber(portText, 65535);
    if (port === null) {
      throw badEndpoint(`Invalid port ${portText} in ${url}: must be an integer from 0 to 65535`);
    }
    const hostname = host.startsWith("[") ? host.slice(1, -1) : host;
    if (hostname === "") throw badEndpoint(`Invalid endpoint ${url}: missing host`);
    if (host.startsWith("[") && !hostname.includes(":")) {
      throw badEndpoint(`Invalid endpoint ${url}: brackets are only for IPv6 addresses`);
    }
    return { transport: "tcp", hostname, port };
  }
  const port = parseNumber(portText, 0xffff_ffff);
  if (port === null) {
    throw badEndpoint(
      `Invalid port ${portText} in ${url}: must be an integer from 0 to 4294967295`,
    );
  }
  if (host === "") throw badEndpoint(`Invalid endpoint ${url}: missing cid`);
  const cid = host.toLowerCase() === "any" ? VMADDR_CID_ANY : parseNumber(host, 0xffff_ffff);
  if (cid === null) {
    throw badEndpoint(
      `Invalid cid ${host} in ${url}: must be an integer from 0 to 4294967295 or "any"`,
    );
  }
  return { transport: "vsock", cid, port };
}

/**
 * Formats an endpoint or a socket address (`listener.addr`, `conn.remoteAddr`) as an endpoint
 * URL. For a TCP listener bound to port 0 this gives the port actually chosen.
 *
 * @throws {TransportError} code `bad_endpoint` for unix or udp addresses.
 *
 * @example
 * ```ts
 * const listener = listen(parseEndpoint("tcp://127.0.0.1:0"));
 * console.log(formatEndpoint(listener.addr)); // tcp://127.0.0.1:41234
 * ```
 */
export function formatEndpoint(addr: Deno.Addr | Endpoint): string {
  switch (addr.transport) {
    case "tcp": {
      const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      return `tcp://${host}:${addr.port}`;
    }
    case "vsock": {
      const cid = addr.cid === VMADDR_CID_ANY || addr.cid === -1 ? "any" : String(addr.cid);
      return `vsock://${cid}:${addr.port}`;
    }
    default:
      throw badEndpoint(
        `Cannot format a ${addr.transport} address as an endpoint: only tcp and vsock are supported`,
      );
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function toEndpoint(endpoint: Endpoint | string): Endpoint {
  return typeof endpoint === "string" ? parseEndpoint(endpoint) : endpoint;
}

/**
 * Connects to an endpoint. TCP connections get `TCP_NODELAY` (frames are small and
 * latency-bound).
 *
 * @throws {TransportError} code `connect_failed` ("Cannot connect to tcp://127.0.0.1:7000:
 * Connection refused (os error 111)"), or `bad_endpoint` for port 0 or an unparsable URL.
 */
export async function dial(endpoint: Endpoint | string): Promise<Deno.Conn> {
  const target = toEndpoint(endpoint);
  const name = formatEndpoint(target);
  if (target.port === 0) {
    throw badEndpoint(`Cannot connect to ${name}: port 0 is only valid for listening`);
  }
  try {
    if (target.transport === "tcp") {
      const conn = await Deno.connect({
        transport: "tcp",
        hostname: target.hostname,
        port: target.port,
      });
      conn.setNoDelay(true);
      return conn;
    }
    return await Deno.connect({ transport: "vsock", cid: target.cid, port: target.port });
  } catch (error) {
    throw new TransportError("connect_failed", `Cannot connect to ${name}: ${describe(error)}`, {
      cause: error,
    });
  }
}

/**
 * Listens on an endpoint. Accepted TCP connections should get `setNoDelay(true)`; use
 * {@linkcode accept} for that. Port 0 picks a free port: read it back with
 * `formatEndpoint(listener.addr)` (for vsock, Deno reports the requested port as given).
 *
 * @throws {TransportError} code `listen_failed` ("Cannot listen on tcp://127.0.0.1:7000: Address
 * already in use (os error 98)"), or `bad_endpoint` for an unparsable URL.
 */
export function listen(endpoint: Endpoint | string): Deno.Listener {
  const target = toEndpoint(endpoint);
  try {
    if (target.transport === "tcp") {
      return Deno.listen({ transport: "tcp", hostname: target.hostname, port: target.port });
    }
    return Deno.listen({ transport: "vsock", cid: target.cid, port: target.port });
  } catch (error) {
    throw new TransportError(
      "listen_failed",
      `Cannot listen on ${formatEndpoint(target)}: ${describe(error)}`,
      { cause: error },
    );
  }
}

/**
 * Accepts the next connection of a listener, setting `TCP_NODELAY` on TCP connections.
 *
 * @returns the connection, or `null` once the listener is closed.
 */
export async function accept(listener: Deno.Listener): Promise<Deno.Conn | null> {
  let conn: Deno.Conn;
  try {
    conn = await listener.accept();
  } catch (error) {
    if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted) {
      return null;
    }
    throw error;
  }
  if (conn.remoteAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
  return conn;
}
