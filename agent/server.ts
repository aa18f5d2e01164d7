/**
 * The agent's server: accepts connections, greets, and answers requests. Each
 * connection owns the programs it loaded; they are detached and unloaded when
 * it ends. A malformed frame ends that connection only.
 *
 * @module
 */
import {
  accept,
  argBytes,
  argString,
  argUint,
  chunkMessage,
  errorMessage,
  formatEndpoint,
  FramedConnection,
  FrameError,
  listen,
  PROTOCOL_VERSION,
  ProtocolError,
  type Request,
  resultMessage,
} from "../wire/mod.ts";
import { equalBytes } from "../wire/bytes.ts";
import type { AttestBody, HelloBody, LoadBody } from "../wire/ops.ts";
import { type Identity, type PublicIdentity, publicIdentity } from "../wire/secure/keys.ts";
import {
  attestAgentKey,
  AttestationError,
  SEV_GUEST_PATH,
  sevGuestAvailable,
} from "./attestation.ts";
import { acceptSecure } from "../wire/secure/secure_stream.ts";
import { SignatureError, verifyObject } from "../wire/secure/sign.ts";
import { TokenBucket } from "./rate_limit.ts";
import { BTF_PATH, KALLSYMS_PATH, kernelInfo, readChunks } from "./kernel_info.ts";
import { DEFAULT_RUN_LIMITS, LoadedProgram } from "./program.ts";

/** Version string the agent reports in its hello. */
export const AGENT_VERSION = "ebpfmonitor-agent/0.1.0";

/** Bounds that keep one peer from exhausting the agent. */
export interface ServerLimits {
  /** Programs one connection may hold loaded at once. */
  programsPerConnection: number;
  /** Largest chunk of streamed data. */
  chunkBytes: number;
  /** Authenticated connections served at once; more are closed at once. */
  connections: number;
  /**
   * Handshakes under way at once. When one more arrives, the oldest pending
   * handshake is dropped: an honest IDS completes its handshake in
   * milliseconds, so a peer that opens connections and stalls cannot lock it out.
   */
  handshakes: number;
  /** Requests per second one connection may make (a faster peer is slowed down). */
  requestsPerSecond: number;
  /** How long a connection may stay silent after its handshake before it is closed, ms. */
  firstMessageMs: number;
}

/** Default bounds. */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  programsPerConnection: 16,
  chunkBytes: DEFAULT_RUN_LIMITS.chunkBytes,
  connections: 8,
  handshakes: 16,
  firstMessageMs: 10_000,
  requestsPerSecond: 20_000,
};

/** Who may talk to the agent and whose eBPF objects it loads. */
export interface AgentSecurity {
  /** The agent's identity (its Noise static key); absent only when insecure. */
  identity?: Identity;
  /** The trusted IDS keys: channel peers, and signers of the objects the agent loads. */
  trusted: PublicIdentity[];
  /** Plaintext and unauthenticated channel (test set-ups only). */
  insecure: boolean;
}

/** The value of `promise`, or undefined when `ms` pass first. */
async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** An error answered to the IDS with a code it can act on. */
class RequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The state of one connection. */
class Session {
  readonly #conn: FramedConnection;
  readonly #limits: ServerLimits;
  readonly #signers: PublicIdentity[];
  readonly #identity: Identity | undefined;
  readonly #rate: TokenBucket;
  readonly #programs = new Map<number, LoadedProgram>();
  #nextHandle = 1;
  #greeted = false;

  /**
   * @param conn the connection
   * @param limits the bounds
   * @param signers keys whose signature an object needs (none: objects load unsigned)
   * @param identity the agent's identity (what `attest` binds), absent when insecure
   */
  constructor(
    conn: FramedConnection,
    limits: ServerLimits,
    signers: PublicIdentity[],
    identity: Identity | undefined,
  ) {
    this.#conn = conn;
    this.#limits = limits;
    this.#signers = signers;
    this.#identity = identity;
    this.#rate = new TokenBucket(limits.requestsPerSecond, limits.requestsPerSecond);
  }

  /**
   * Serves requests until the peer leaves or breaks the protocol. The first
   * message must come within the limits' `firstMessageMs`, and `admit()` decides then
   * whether the connection may become a session (false: it is closed).
   */
  async serve(
    log: (line: string) => void,
    admit: () => boolean = () => true,
  ): Promise<void> {
    const firstMessageMs = this.#limits.firstMessageMs;
    try {
      for (let first = true;; first = false) {
        let message;
        try {
          message = first
            ? await withDeadline(this.#conn.receive(), firstMessageMs)
            : await this.#conn.receive();
        } catch (error) {
          if (error instanceof FrameError || error instanceof ProtocolError) {
            log(`closing connection: ${error.message}`);
            await this.#conn.send(errorMessage(0, error.code, error.message)).catch(() => {});
          }
          return;
        }
        if (message === undefined) {
          log(`closing connection: no request within ${firstMessageMs} ms of the handshake`);
          return;
        }
        if (message === null) return;
        if (first && !admit()) return;
        if (message.type !== "request") {
          const text = `Expected a request, got a ${message.type} message`;
          await this.#conn.send(errorMessage(0, "malformed", text)).catch(() => {});
          return;
        }
        if (!this.#greeted && message.op !== "hello") {
          const text = "The first request must be hello";
          await this.#conn.send(errorMessage(message.id, "no_hello", text)).catch(() => {});
          return;
        }
        const wait = this.#rate.take();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        try {
          await this.#answer(message);
        } catch (error) {
          const code = error instanceof RequestError || error instanceof ProtocolError
            ? error.code
            : "failed";
          const text = error instanceof Error ? error.message : String(error);
          await this.#conn.send(errorMessage(message.id, code, text));
          if (code === "version") return;
        }
      }
    } finally {
      this.close();
    }
  }

  async #answer(request: Request): Promise<void> {
    const { id, args } = request;
    switch (request.op) {
      case "hello": {
        const version = argUint(args, "version");
        if (version !== PROTOCOL_VERSION) {
          throw new RequestError(
            "version",
            `Protocol version ${version} is not supported: this agent speaks ${PROTOCOL_VERSION}`,
          );
        }
        this.#greeted = true;
        const hello: HelloBody = {
          version: PROTOCOL_VERSION,
          agent: AGENT_VERSION,
          pid: Deno.pid,
          release: Deno.osRelease(),
        };
        return await this.#conn.send(resultMessage(id, hello));
      }
      case "ping":
        return await this.#conn.send(resultMessage(id, {}));
      case "kernel_info":
        return await this.#conn.send(resultMessage(id, kernelInfo()));
      case "btf":
        return await this.#stream(id, BTF_PATH);
      case "kallsyms":
        return await this.#stream(id, KALLSYMS_PATH);
      case "load":
        return await this.#conn.send(resultMessage(id, await this.#load(args)));
      case "run":
        return await this.#run(id, args);
      case "unload": {
        const handle = argUint(args, "handle");
        this.#program(handle).close();
        this.#programs.delete(handle);
        return await this.#conn.send(resultMessage(id, {}));
      }
      case "attest":
        return await this.#conn.send(resultMessage(id, await this.#attest(args)));
      default:
        throw new RequestError("unknown_op", `Unknown operation ${JSON.stringify(request.op)}`);
    }
  }

  async #load(args: Record<string, unknown>): Promise<LoadBody> {
    const name = argString(args, "name");
    const object = argBytes(args, "object");
    if (this.#signers.length > 0) {
      const signature = args.signature == null ? undefined : argBytes(args, "signature");
      if (signature === undefined) {
        throw new RequestError("unsigned", `eBPF object ${name} carries no signature: refused`);
      }
      try {
        await verifyObject(this.#signers, object, signature, name);
      } catch (error) {
        if (error instanceof SignatureError) throw new RequestError("bad_signature", error.message);
        throw error;
      }
    }
    if (this.#programs.size >= this.#limits.programsPerConnection) {
      throw new RequestError(
        "limit",
        `A connection may hold ${this.#limits.programsPerConnection} programs at once: unload one first`,
      );
    }
    const program = LoadedProgram.load(name, object);
    const handle = this.#nextHandle++;
    this.#programs.set(handle, program);
    return { handle, program: program.name };
  }

  /** An SEV-SNP report binding this agent's keys to the IDS's nonce. */
  async #attest(args: Record<string, unknown>): Promise<AttestBody> {
    const nonce = argBytes(args, "nonce");
    if (this.#identity === undefined) {
      throw new RequestError(
        "no_identity",
        "This agent runs without a key (--insecure): nothing to attest",
      );
    }
    if (!sevGuestAvailable()) {
      throw new RequestError(
        "not_supported",
        `SEV-SNP attestation is not available: ${SEV_GUEST_PATH} does not exist (not an SEV-SNP guest)`,
      );
    }
    try {
      return { report: await attestAgentKey(publicIdentity(this.#identity), nonce) };
    } catch (error) {
      if (error instanceof AttestationError) throw new RequestError("attestation", error.message);
      throw error;
    }
  }

  #program(handle: number): LoadedProgram {
    const program = this.#programs.get(handle);
    if (program === undefined) {
      throw new RequestError("bad_handle", `No program with handle ${handle}`);
    }
    return program;
  }

  async #run(id: number, args: Record<string, unknown>): Promise<void> {
    const program = this.#program(argUint(args, "handle"));
    const params = argBytes(args, "params");
    const run = program.run(params, { ...DEFAULT_RUN_LIMITS, chunkBytes: this.#limits.chunkBytes });
    let seq = 0;
    for (;;) {
      const step = run.next();
      if (step.done) return await this.#conn.send(resultMessage(id, step.value));
      await this.#conn.send(chunkMessage(id, seq++, step.value));
    }
  }

  async #stream(id: number, path: string): Promise<void> {
    let seq = 0;
    let bytes = 0;
    try {
      for await (const chunk of readChunks(path, this.#limits.chunkBytes)) {
        await this.#conn.send(chunkMessage(id, seq++, chunk));
        bytes += chunk.byteLength;
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new RequestError("not_found", `${path} does not exist on this kernel`);
      }
      throw error;
    }
    await this.#conn.send(resultMessage(id, { bytes }));
  }

  close(): void {
    for (const program of this.#programs.values()) program.close();
    this.#programs.clear();
    this.#conn.close();
  }
}

/** A listening agent. */
export class AgentServer {
  readonly #listener: Deno.Listener;
  readonly #limits: ServerLimits;
  readonly #security: AgentSecurity;
  readonly #sessions = new Set<Session>();
  readonly #pending = new Set<Deno.Conn>();
  readonly #log: (line: string) => void;

  /**
   * Listens on `url` (tcp://host:port or vsock://cid:port; port 0 picks one).
   * `log` receives one line per notable event.
   */
  constructor(
    url: string,
    security: AgentSecurity,
    log: (line: string) => void,
    limits = DEFAULT_SERVER_LIMITS,
  ) {
    if (!security.insecure && security.identity === undefined) {
      throw new Error("A secure agent needs its identity (--key)");
    }
    if (!security.insecure && security.trusted.length === 0) {
      throw new Error("A secure agent needs at least one trusted IDS key (--trust)");
    }
    this.#listener = listen(url);
    this.#limits = limits;
    this.#security = security;
    this.#log = log;
  }

  /** The URL the agent listens on, with the real port. */
  get url(): string {
    return formatEndpoint(this.#listener.addr);
  }

  /** Accepts and serves connections until {@linkcode close}. */
  async serve(): Promise<void> {
    for (;;) {
      const conn = await accept(this.#listener);
      if (conn === null) return;
      const peer = formatEndpoint(conn.remoteAddr);
      if (this.#sessions.size >= this.#limits.connections) {
        this.#log(`refused ${peer}: already ${this.#limits.connections} connections`);
        conn.close();
        continue;
      }
      if (this.#pending.size >= this.#limits.handshakes) {
        const oldest = this.#pending.values().next().value!;
        this.#pending.delete(oldest);
        this.#log(`dropped the oldest of ${this.#limits.handshakes} pending handshakes`);
        closeQuietly(oldest);
      }
      this.#pending.add(conn);
      this.#open(conn, peer).finally(() => this.#pending.delete(conn));
    }
  }

  /** Authenticates a connection (secure mode) and serves it. */
  async #open(conn: Deno.Conn, peer: string): Promise<void> {
    let framed: FramedConnection;
    if (this.#security.insecure) {
      framed = new FramedConnection(conn);
    } else {
      const trusted = this.#security.trusted;
      try {
        const stream = await acceptSecure(conn, {
          staticKey: this.#security.identity!.noise,
          isTrusted: (key) => trusted.some((k) => equalBytes(k.noise, key)),
        });
        framed = new FramedConnection(stream);
      } catch (error) {
        // The peer learns nothing: the connection just closes.
        this.#log(`closed ${peer} during the handshake: ${(error as Error).message}`);
        closeQuietly(conn);
        return;
      }
    }
    const session = new Session(
      framed,
      this.#limits,
      this.#security.trusted,
      this.#security.identity,
    );
    // A connection stays pending until its first authenticated message: a replayed handshake
    // message 1 completes a handshake but never sends one, so it holds no session slot.
    const admit = () => {
      if (!this.#pending.has(conn)) return false; // dropped as the oldest pending one
      if (this.#sessions.size >= this.#limits.connections) {
        this.#log(`refused ${peer}: already ${this.#limits.connections} connections`);
        return false;
      }
      this.#pending.delete(conn);
      this.#sessions.add(session);
      this.#log(`connection from ${peer}`);
      return true;
    };
    try {
      await session.serve(this.#log, admit);
    } catch (error) {
      this.#log(`connection from ${peer} failed: ${(error as Error).message}`);
    } finally {
      this.#sessions.delete(session);
      this.#log(`connection from ${peer} closed`);
    }
  }

  /** Stops listening and ends every connection (their programs are unloaded). */
  close(): void {
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const session of this.#sessions) session.close();
    this.#sessions.clear();
    for (const conn of this.#pending) closeQuietly(conn);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
