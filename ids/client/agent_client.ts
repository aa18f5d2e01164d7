/**
 * The IDS's client of one agent: connects, greets, and sends requests one at
 * a time, collecting streamed chunks. It counts round trips and bytes, which
 * is what the benchmark compares between fetch modes.
 *
 * @module
 */
import {
  FramedConnection,
  type Message,
  PROTOCOL_VERSION,
  requestMessage,
} from "../../wire/mod.ts";
import type { AttestBody, HelloBody, KernelInfo, LoadBody, RunSummary } from "../../wire/ops.ts";
import { CodedError } from "../../wire/coded_error.ts";
import { concatBytes } from "../../wire/bytes.ts";
import { signObject } from "../../wire/secure/sign.ts";
import { type ClientSecurity, openChannel } from "./channel.ts";
import { checkKernelInfo } from "./kernel_info.ts";
import { type Budget, HostileAnswer, unlimitedBudget } from "./budget.ts";
import { printable } from "../printable.ts";

export type { HelloBody, KernelInfo, RunSummary };

/** The agent answered a request with an error frame. */
export class AgentError extends CodedError {
  override readonly name = "AgentError";
  /** @param op the operation @param code the agent's code (e.g. "bad_handle", "failed") @param message the agent's message */
  constructor(op: string, code: string, message: string) {
    super(code, `Agent could not ${op}: ${printable(message)}`);
  }
}

/** Counters of a client's traffic. */
export interface TrafficStats {
  /** Requests answered (each one round trip). */
  roundTrips: number;
  /** Bytes of frames sent. */
  bytesSent: number;
  /** Bytes of frames received. */
  bytesReceived: number;
}

/** A streamed answer: the chunks in order and the final body. */
export interface Streamed<T> {
  /** The chunks' bytes, in order. */
  chunks: Uint8Array[];
  /** The result body. */
  body: T;
}

/** How one request's answer is taken. */
export interface RequestOptions {
  /** Most bytes of its streamed chunks (default: the client's `maxResponseBytes`). */
  maxBytes?: number;
  /**
   * Takes each chunk as it arrives instead of collecting it (the answer's `chunks` is then
   * empty); a throw ends the request and closes the connection.
   */
  onChunk?: (data: Uint8Array) => Promise<void> | void;
}

/** Bounds on each request, so that a stuck or hostile agent cannot hang or exhaust the IDS. */
export interface ClientLimits {
  /** Longest wait for a whole answer, ms. */
  timeoutMs: number;
  /** Most bytes of streamed chunks in one answer. */
  maxResponseBytes: number;
}

/** Two minutes and 1 GiB (a bulk walk of 10,000 processes streams about 65 MB). */
export const DEFAULT_CLIENT_LIMITS: ClientLimits = {
  timeoutMs: 120_000,
  maxResponseBytes: 1 << 30,
};

/** How long past the budget's deadline a request waits (see `#exchange`), ms. */
const DEADLINE_GRACE_MS = 50;

/** A connection to one agent. */
export class AgentClient {
  readonly #conn: FramedConnection;
  readonly #security: ClientSecurity;
  /** The agent's URL. */
  readonly url: string;
  #nextId = 1;
  #queue: Promise<unknown> = Promise.resolve();
  #roundTrips = 0;
  #hello: HelloBody | undefined;

  /** Bounds on each request. */
  readonly limits: ClientLimits;
  /**
   * The budget of the current command or check: its deadline bounds every
   * request's wait, and every answer's bytes count against it.
   */
  budget: Budget = unlimitedBudget();

  private constructor(
    conn: FramedConnection,
    url: string,
    security: ClientSecurity,
    limits: ClientLimits,
  ) {
    this.#conn = conn;
    this.url = url;
    this.#security = security;
    this.limits = limits;
  }

  /**
   * Connects to `url` (tcp://host:port or vsock://cid:port) over a secure
   * channel (or plaintext with `security.insecure`) and exchanges hellos.
   */
  static async connect(
    url: string,
    security: ClientSecurity,
    limits: ClientLimits = DEFAULT_CLIENT_LIMITS,
  ): Promise<AgentClient> {
    const channel = await openChannel(url, security);
    const client = new AgentClient(new FramedConnection(channel), url, security, limits);
    try {
      const hello = await client.request<HelloBody>("hello", {
        version: PROTOCOL_VERSION,
        client: "ebpfmonitor-ids/0.1.0",
      });
      client.#hello = hello.body;
    } catch (error) {
      client.close();
      if (security.insecure && error instanceof AgentError && error.code === "closed") {
        throw new AgentError(
          "hello",
          "closed",
          "the agent closed the connection: it probably requires a secure channel (use --key and --agent-key instead of --insecure)",
        );
      }
      throw error;
    }
    return client;
  }

  /** The agent's hello. */
  get hello(): HelloBody {
    if (this.#hello === undefined) throw new Error("Agent has not said hello");
    return this.#hello;
  }

  /** Traffic so far. */
  get stats(): TrafficStats {
    return {
      roundTrips: this.#roundTrips,
      bytesSent: this.#conn.bytesSent,
      bytesReceived: this.#conn.bytesReceived,
    };
  }

  /**
   * Sends one request and waits for its answer (chunks, then a result). Requests
   * from concurrent callers are queued, so each is one round trip.
   */
  request<T>(
    op: string,
    args: Record<string, unknown> = {},
    options: RequestOptions = {},
  ): Promise<Streamed<T>> {
    const next = this.#queue.then(() => this.#exchange<T>(op, args, options));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #exchange<T>(
    op: string,
    args: Record<string, unknown>,
    options: RequestOptions,
  ): Promise<Streamed<T>> {
    const id = this.#nextId++;
    const budget = this.budget;
    budget.check();
    // A stuck or hostile agent must not hang the IDS, nor grow its memory without bound:
    // past the deadline or the size, the connection is closed and the request fails. The
    // budget's deadline is waited a little past, so that a caller's own timer on the same
    // deadline (ids watch's) reports it first.
    const waitMs = Math.min(
      this.limits.timeoutMs,
      Math.ceil(budget.remainingMs) + DEADLINE_GRACE_MS,
    );
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#conn.close();
    }, waitMs);
    try {
      return await this.#answer<T>(op, id, args, options, () => timedOut);
    } catch (error) {
      if (error instanceof AgentError && error.code === "timeout") budget.check();
      if (!(error instanceof AgentError)) this.#conn.close();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async #answer<T>(
    op: string,
    id: number,
    args: Record<string, unknown>,
    options: RequestOptions,
    timedOut: () => boolean,
  ): Promise<Streamed<T>> {
    const maxBytes = options.maxBytes ?? this.limits.maxResponseBytes;
    await this.#conn.send(requestMessage(id, op, args));
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    let seq = 0;
    for (;;) {
      const message: Message | null = await this.#conn.receive();
      if (message === null) {
        if (timedOut()) {
          throw new AgentError(op, "timeout", `no answer within ${this.limits.timeoutMs} ms`);
        }
        throw new AgentError(op, "closed", "the connection closed before the answer");
      }
      if (message.type === "error") {
        this.#roundTrips++;
        throw new AgentError(op, message.code, message.message);
      }
      if (message.id !== id) {
        throw new AgentError(op, "malformed", `answer for request ${message.id}, not ${id}`);
      }
      if (message.type === "chunk") {
        if (message.seq !== seq++) {
          throw new AgentError(op, "malformed", `chunk ${message.seq} arrived out of order`);
        }
        bytes += message.data.byteLength;
        if (bytes > maxBytes) {
          this.#conn.close();
          throw new AgentError(op, "too_large", `the answer exceeds ${maxBytes} bytes`);
        }
        this.budget.spendBytes(message.data.byteLength);
        if (options.onChunk === undefined) chunks.push(message.data);
        else await options.onChunk(message.data);
        await this.budget.pace();
      } else if (message.type === "result") {
        this.#roundTrips++;
        return { chunks, body: message.body as T };
      } else {
        throw new AgentError(op, "malformed", `unexpected ${message.type} message`);
      }
    }
  }

  /** The empty request: one round trip, nothing else. */
  async ping(): Promise<void> {
    await this.request("ping");
  }

  /**
   * Kernel facts, every field checked by type and range.
   *
   * @throws {AgentError} code `malformed` naming the bad field.
   */
  async kernelInfo(): Promise<KernelInfo> {
    const body = (await this.request<unknown>("kernel_info")).body;
    try {
      return checkKernelInfo(body);
    } catch (error) {
      throw new AgentError("kernel_info", "malformed", (error as Error).message);
    }
  }

  /** The raw BTF of the guest kernel (/sys/kernel/btf/vmlinux), at most `maxBytes`. */
  async btf(maxBytes = this.limits.maxResponseBytes): Promise<Uint8Array> {
    return concatBytes(...(await this.#bounded("btf", "BTF", maxBytes)).chunks);
  }

  /**
   * The guest's /proc/kallsyms text, at most `maxBytes` and `maxLines` lines
   * (counted before the text is decoded).
   */
  async kallsyms(
    maxBytes = this.limits.maxResponseBytes,
    maxLines = Number.MAX_SAFE_INTEGER,
  ): Promise<string> {
    const bytes = concatBytes(...(await this.#bounded("kallsyms", "kallsyms", maxBytes)).chunks);
    let lines = 0;
    for (let at = bytes.indexOf(10); at >= 0; at = bytes.indexOf(10, at + 1)) {
      if (++lines > maxLines) {
        throw new HostileAnswer(
          "max_kallsyms_lines",
          `the guest's kallsyms has more than ${maxLines} lines`,
        );
      }
    }
    return new TextDecoder().decode(bytes);
  }

  /** A request whose answer larger than `maxBytes` is a hostile answer. */
  async #bounded(op: string, what: string, maxBytes: number): Promise<Streamed<unknown>> {
    try {
      return await this.request(op, {}, { maxBytes });
    } catch (error) {
      if (error instanceof AgentError && error.code === "too_large") {
        const limit = op === "btf" ? "max_btf_bytes" : "max_kallsyms_bytes";
        throw new HostileAnswer(limit, `the guest's ${what} is larger than ${maxBytes} bytes`);
      }
      throw error;
    }
  }

  /**
   * Loads an eBPF object into the guest kernel, signed with the IDS's key
   * (when it has one); returns its handle.
   */
  async load(name: string, object: Uint8Array): Promise<number> {
    const identity = this.#security.identity;
    const args: Record<string, unknown> = { name, object };
    if (identity) args.signature = await signObject(identity, object);
    const answer = await this.request<LoadBody>("load", args);
    return answer.body.handle;
  }

  /**
   * Runs a loaded program with `params`; returns the record chunks and the summary (or, with
   * `onChunk`, hands each chunk to it as it arrives).
   */
  run(
    handle: number,
    params: Uint8Array,
    onChunk?: (data: Uint8Array) => Promise<void> | void,
  ): Promise<Streamed<RunSummary>> {
    return this.request<RunSummary>("run", { handle, params }, onChunk ? { onChunk } : {});
  }

  /** Asks for an SEV-SNP attestation report binding the agent's key to `nonce`. */
  async attest(nonce: Uint8Array): Promise<Uint8Array> {
    return (await this.request<AttestBody>("attest", { nonce })).body.report;
  }

  /** Unloads a program. */
  async unload(handle: number): Promise<void> {
    await this.request("unload", { handle });
  }

  /** Closes the connection (the agent unloads this connection's programs). */
  close(): void {
    this.#conn.close();
  }
}
