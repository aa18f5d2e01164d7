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
import { CodedError } from "../wire/coded_error.ts";
import { equalBytes } from "../wire/bytes.ts";
import type { AttestBody, HelloBody, LoadBody } from "../wire/ops.ts";
import { type Identity, type PublicIdentity, publicIdentity } from "../wire/secure/keys.ts";
import {
  attestAgentKey,
  AttestationError,
  SEV_GUEST_PATH,
  sevGuestAvailable,
} from "./attestation.ts";
import { acceptSecure, sendBusyNotice } from "../wire/secure/secure_stream.ts";
import { ReplayGuard } from "../wire/secure/replay.ts";
import { waitingBound } from "./open_files.ts";
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
  /** Authenticated connections served at once; more get a busy notice and are closed. */
  connections: number;
  /**
   * Connections waiting for handshake message 1, from all sources. When one more
   * arrives, the oldest waiting connection of the source with the most is dropped
   * (with a busy notice): an honest IDS sends message 1 as soon as it connects, so
   * peers that connect and stall cannot lock it out.
   */
  handshakes: number;
  /** Connections waiting for message 1 from one source address; past it, that source's oldest is dropped. */
  handshakesPerSource: number;
  /**
   * Handshakes that authenticated a trusted key with a fresh timestamp and wait for
   * their first request; past it the oldest is dropped. Strangers never get here.
   */
  reserved: number;
  /** Requests per second one connection may make (a faster peer is slowed down). */
  requestsPerSecond: number;
  /** How long a connection may stay silent after its handshake before it is closed, ms. */
  firstMessageMs: number;
}

/**
 * Default bounds. Connections waiting for message 1: half the open-file limit, at most
 * 4096 (2048 from one address); a stalled connection costs a socket and a few hundred bytes.
 */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  programsPerConnection: 16,
  chunkBytes: DEFAULT_RUN_LIMITS.chunkBytes,
  connections: 8,
  handshakes: waitingBound(),
  handshakesPerSource: Math.floor(waitingBound() / 2),
  reserved: 8,
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
class RequestError extends CodedError {
  override readonly name = "RequestError";
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
          log(`closing connection: ${(error as Error).message}`);
          if (error instanceof FrameError || error instanceof ProtocolError) {
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

/**
 * Where one connection stands in admission:
 * - `waiting`: accepted, handshake message 1 not yet here (droppable, oldest first)
 * - `working`: message 1 is here and being checked (not droppable: the work is the agent's)
 * - `reserved`: a trusted key with a fresh timestamp, waiting for its first request
 * - `session`: admitted
 * - `dropped`: pushed out; it closes
 */
type Stage = "waiting" | "working" | "reserved" | "session" | "dropped";

interface Admission {
  conn: Deno.Conn;
  peer: string;
  source: string;
  stage: Stage;
  /** Closes the connection (the secure stream once there is one). */
  close(): void;
}

/** How often, at most, the agent logs how many connections it dropped, ms. */
const DROP_LOG_MS = 1000;

/** A listening agent. */
export class AgentServer {
  readonly #listener: Deno.Listener;
  readonly #limits: ServerLimits;
  readonly #security: AgentSecurity;
  readonly #sessions = new Set<Session>();
  /** Connections waiting for message 1, by source address, oldest first. */
  readonly #waiting = new Map<string, Set<Admission>>();
  #waitingCount = 0;
  /** Authenticated handshakes waiting for their first request, oldest first. */
  readonly #reserved = new Set<Admission>();
  /** Every connection not yet a session. */
  readonly #admitting = new Set<Admission>();
  readonly #replay = new ReplayGuard();
  readonly #log: (line: string) => void;
  #dropped = 0;
  #dropLoggedAt = -Infinity;

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
      let conn: Deno.Conn | null;
      try {
        conn = await accept(this.#listener);
      } catch (error) {
        // Out of file descriptors, or a connection reset before it was accepted: keep serving.
        this.#log(`cannot accept a connection: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      if (conn === null) return;
      const peer = formatEndpoint(conn.remoteAddr);
      if (this.#sessions.size >= this.#limits.connections) {
        this.#log(`refused ${peer}: already ${this.#limits.connections} connections`);
        sendBusyNotice(conn);
        continue;
      }
      const admission: Admission = {
        conn,
        peer,
        source: sourceOf(conn.remoteAddr),
        stage: "waiting",
        close: () => closeQuietly(conn),
      };
      this.#admitting.add(admission);
      this.#wait(admission);
      this.#open(admission).finally(() => {
        this.#leaveStage(admission);
        this.#admitting.delete(admission);
      });
    }
  }

  /** Puts a new connection among those waiting for message 1, dropping one if over a bound. */
  #wait(admission: Admission): void {
    let queue = this.#waiting.get(admission.source);
    if (queue === undefined) {
      queue = new Set();
      this.#waiting.set(admission.source, queue);
    }
    queue.add(admission);
    this.#waitingCount++;
    if (queue.size > this.#limits.handshakesPerSource) {
      this.#drop(queue.values().next().value!);
    } else if (this.#waitingCount > this.#limits.handshakes) {
      let fullest = queue;
      for (const other of this.#waiting.values()) if (other.size > fullest.size) fullest = other;
      this.#drop(fullest.values().next().value!);
    }
  }

  /** Takes a connection out of its admission stage (waiting or reserved). */
  #leaveStage(admission: Admission): void {
    if (admission.stage === "waiting") {
      const queue = this.#waiting.get(admission.source)!;
      queue.delete(admission);
      this.#waitingCount--;
      if (queue.size === 0) this.#waiting.delete(admission.source);
    } else if (admission.stage === "reserved") {
      this.#reserved.delete(admission);
    }
  }

  /** Drops a waiting or reserved connection: a busy notice, then close. */
  #drop(admission: Admission): void {
    this.#leaveStage(admission);
    const stage = admission.stage;
    admission.stage = "dropped";
    if (stage === "waiting") sendBusyNotice(admission.conn);
    else admission.close();
    this.#dropped++;
    const now = performance.now();
    if (now - this.#dropLoggedAt >= DROP_LOG_MS) {
      this.#log(
        `dropped ${this.#dropped} connection(s) waiting for admission (latest from ${admission.peer}, ${stage})`,
      );
      this.#dropped = 0;
      this.#dropLoggedAt = now;
    }
  }

  /** Authenticates a connection (secure mode) and serves it. */
  async #open(admission: Admission): Promise<void> {
    const { conn, peer } = admission;
    let framed: FramedConnection;
    if (this.#security.insecure) {
      framed = new FramedConnection(conn);
    } else {
      const trusted = this.#security.trusted;
      try {
        const stream = await acceptSecure(conn, {
          staticKey: this.#security.identity!.noise,
          isTrusted: (key) => trusted.some((k) => equalBytes(k.noise, key)),
          replay: this.#replay,
          onMessage1: () => {
            if (admission.stage !== "waiting") return; // dropped just before it arrived
            this.#leaveStage(admission);
            admission.stage = "working";
          },
        });
        framed = new FramedConnection(stream);
        admission.close = () => framed.close();
      } catch (error) {
        // The peer learns nothing: the connection just closes.
        if (admission.stage !== "dropped") {
          this.#log(`closed ${peer} during the handshake: ${(error as Error).message}`);
        }
        closeQuietly(conn);
        return;
      }
      if (admission.stage === "dropped") {
        framed.close();
        return;
      }
      // Only a trusted key with a fresh timestamp gets here: strangers and replays never do.
      admission.stage = "reserved";
      this.#reserved.add(admission);
      if (this.#reserved.size > this.#limits.reserved) {
        this.#drop(this.#reserved.values().next().value!);
      }
    }
    const session = new Session(
      framed,
      this.#limits,
      this.#security.trusted,
      this.#security.identity,
    );
    // A connection becomes a session only with its first authenticated request.
    const admit = () => {
      if (admission.stage === "dropped") return false;
      if (this.#sessions.size >= this.#limits.connections) {
        this.#log(`refused ${peer}: already ${this.#limits.connections} connections`);
        return false;
      }
      this.#leaveStage(admission);
      admission.stage = "session";
      this.#sessions.add(session);
      this.#log(`connection from ${peer}`);
      return true;
    };
    try {
      await session.serve(this.#log, admit);
    } catch (error) {
      this.#log(`connection from ${peer} failed: ${(error as Error).message}`);
    } finally {
      if (this.#sessions.delete(session)) this.#log(`connection from ${peer} closed`);
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
    for (const admission of this.#admitting) admission.close();
  }
}

/** The address a connection comes from, without its port: what per-source bounds count. */
function sourceOf(addr: Deno.Addr): string {
  if (addr.transport === "tcp" || addr.transport === "udp") {
    return `${addr.transport}:${addr.hostname}`;
  }
  if (addr.transport === "vsock") return `vsock:${addr.cid}`;
  return addr.transport;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}
