/**
 * Test helpers of the security suite: a seeded PRNG, raw-socket reads, a recording TCP relay,
 * a fake (impostor) agent, many sleepers started at once, and bpftool's link lists (the agent
 * started from the CLI with keys made for it is tests/_helpers/agent.ts's `startAgent`). Every helper that starts a process or
 * a listener stops it on every path; processes are ended by pid only.
 *
 * @module
 */
import { concatBytes } from "../../wire/bytes.ts";
import { acceptSecure, type SecureStream } from "../../wire/secure/secure_stream.ts";
import { bpftoolPrograms, bpftoolShow, type KeySet, sleep } from "./agent.ts";

// --- Deterministic randomness ----------------------------------------------------------------

/** The seed of the fuzz tests: FUZZ_SEED from the environment, else a fixed one. */
export function fuzzSeed(fallback: number): number {
  const text = Deno.env.get("FUZZ_SEED");
  return text === undefined ? fallback : Number(text) >>> 0;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same cases. */
export class Prng {
  #state: number;

  /** @param seed any 32-bit integer */
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer from 0 to n - 1. */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const word = this.u32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (word >>> (8 * j)) & 0xff;
    }
    return out;
  }

  /** A length skewed towards small values, at most `max`. */
  length(max: number): number {
    const scale = this.pick([4, 16, 64, 512, 4096, max]);
    return this.int(Math.min(scale, max) + 1);
  }

  /**
   * A mutation of `input`: bit flips, byte sets to edge values, truncation, extension,
   * duplicated or deleted slices, or an interesting 32-bit value written somewhere.
   */
  mutate(input: Uint8Array): Uint8Array {
    let out = input.slice();
    const rounds = 1 + this.int(4);
    for (let r = 0; r < rounds; r++) {
      const at = out.length === 0 ? 0 : this.int(out.length);
      switch (this.int(7)) {
        case 0:
          if (out.length > 0) out[at]! ^= 1 << this.int(8);
          break;
        case 1:
          if (out.length > 0) out[at] = this.pick([0, 1, 0x7f, 0x80, 0xc1, 0xff, this.int(256)]);
          break;
        case 2:
          out = out.slice(0, this.int(out.length + 1));
          break;
        case 3:
          out = concatBytes(out, this.bytes(this.length(64)));
          break;
        case 4: {
          const end = Math.min(out.length, at + 1 + this.int(16));
          out = concatBytes(out.slice(0, end), out.slice(at, end), out.slice(end));
          break;
        }
        case 5:
          out = concatBytes(
            out.slice(0, at),
            out.slice(Math.min(out.length, at + 1 + this.int(16))),
          );
          break;
        default: {
          if (out.length < 4) break;
          const word = this.pick([0, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x0001_0001, 0xffff]);
          new DataView(out.buffer, out.byteOffset).setUint32(this.int(out.length - 3), word);
        }
      }
    }
    return out;
  }
}

/** Whether `needle` occurs in `haystack`. */
export function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  const first = needle[0]!;
  for (let i = haystack.indexOf(first); i >= 0 && i <= haystack.length - needle.length;) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
    i = haystack.indexOf(first, i + 1);
  }
  return false;
}

// --- Time bounds -----------------------------------------------------------------------------

/** Thrown by {@linkcode deadline} when the promise did not settle in time. */
export class DeadlineError extends Error {
  /** @param what what was awaited @param ms the bound */
  constructor(what: string, ms: number) {
    super(`${what} did not settle within ${ms} ms`);
    this.name = "DeadlineError";
  }
}

/** `promise`, or a {@linkcode DeadlineError} after `ms`. */
export async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

// --- Raw sockets -----------------------------------------------------------------------------

/** What came back on a raw socket before it ended. */
export interface Drained {
  /** Every byte received. */
  bytes: Uint8Array;
  /** How it ended: `eof` (orderly close), `reset` (connection reset), `timeout` (still open). */
  end: "eof" | "reset" | "timeout";
}

/**
 * Reads `conn` until the peer closes it (or `timeoutMs` passes: then `end` is `timeout`), and
 * closes it. A reset counts as the peer closing.
 */
export async function drain(conn: Deno.Conn, timeoutMs = 5000): Promise<Drained> {
  const parts: Uint8Array[] = [];
  const read = (async (): Promise<Drained["end"]> => {
    const buffer = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch (error) {
        if (error instanceof Deno.errors.ConnectionReset) return "reset";
        if (error instanceof Deno.errors.BadResource) return "timeout"; // closed by the timer
        throw error;
      }
      if (n === null) return "eof";
      parts.push(buffer.slice(0, n));
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    const end = await Promise.race([read, late]);
    return { bytes: concatBytes(...parts), end };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
    await read.catch(() => {});
  }
}

/** Writes all of `bytes`, ignoring a peer that already closed. */
export async function writeQuietly(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  try {
    let written = 0;
    while (written < bytes.length) written += await conn.write(bytes.subarray(written));
  } catch {
    // The peer closed first: what it answered is what the test reads.
  }
}

/** The port a TCP URL names. */
export function portOf(url: string): number {
  return Number(new URL(url.replace(/^tcp:/, "http:")).port);
}

/** Connects a raw TCP socket to a tcp:// URL. */
export function connectRaw(url: string): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port: portOf(url) });
}

/** A TCP port nothing listens on now (bound, read, released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

// --- A recording relay -----------------------------------------------------------------------

/**
 * A TCP relay between the IDS and the agent that records what goes over the wire in both
 * directions, per connection. `onAgentBytes` sees each piece the agent sends (for fault
 * injection).
 */
export class Relay {
  readonly #listener: Deno.TcpListener;
  readonly #target: number;
  readonly #tasks = new Set<Promise<void>>();
  readonly #conns = new Set<Deno.Conn>();
  /** Per connection: what the IDS sent and what the agent sent, in order. */
  readonly sessions: { toAgent: Uint8Array[]; toIds: Uint8Array[] }[] = [];
  /** Called with the size of each piece the agent sends. */
  onAgentBytes: (bytes: number) => void = () => {};
  #serving: Promise<void>;

  /** Relays to the agent at `agentUrl`. */
  constructor(agentUrl: string) {
    this.#target = portOf(agentUrl);
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#serving = this.#serve();
  }

  /** The relay's URL, to give the IDS instead of the agent's. */
  get url(): string {
    return `tcp://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  /** Everything the IDS sent to the agent on connection `index`. */
  toAgent(index = 0): Uint8Array {
    return concatBytes(...(this.sessions[index]?.toAgent ?? []));
  }

  /** Everything the agent sent to the IDS on connection `index`. */
  toIds(index = 0): Uint8Array {
    return concatBytes(...(this.sessions[index]?.toIds ?? []));
  }

  async #serve(): Promise<void> {
    for (;;) {
      let client: Deno.Conn;
      try {
        client = await this.#listener.accept();
      } catch {
        return;
      }
      const record = { toAgent: [] as Uint8Array[], toIds: [] as Uint8Array[] };
      this.sessions.push(record);
      const task = this.#relay(client, record);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  async #relay(client: Deno.Conn, record: { toAgent: Uint8Array[]; toIds: Uint8Array[] }) {
    this.#conns.add(client);
    let agent: Deno.Conn;
    try {
      agent = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
    } catch {
      close(client);
      return;
    }
    this.#conns.add(agent);
    const pump = async (from: Deno.Conn, to: Deno.Conn, into: Uint8Array[], agentSide: boolean) => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await from.read(buffer);
          if (n === null) break;
          const piece = buffer.slice(0, n);
          into.push(piece);
          if (agentSide) this.onAgentBytes(n);
          let written = 0;
          while (written < n) written += await to.write(piece.subarray(written));
        }
      } catch {
        // either side went away: end both
      }
      close(from);
      close(to);
    };
    await Promise.all([
      pump(client, agent, record.toAgent, false),
      pump(agent, client, record.toIds, true),
    ]);
    this.#conns.delete(client);
    this.#conns.delete(agent);
  }

  /** Stops relaying and closes every connection. */
  async close(): Promise<void> {
    close(this.#listener);
    for (const conn of this.#conns) close(conn);
    await this.#serving;
    await Promise.all(this.#tasks);
  }
}

function close(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // already closed
  }
}

/** Whether process `pid` is alive (and not a zombie). */
export function isAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

// --- A fake agent ----------------------------------------------------------------------------

/**
 * A TCP server that speaks the secure channel with the agent's key (an impostor holding the
 * key) and hands each authenticated stream to `serve`.
 */
export class FakeAgent {
  readonly #listener: Deno.TcpListener;
  readonly #tasks = new Set<Promise<void>>();
  readonly #raw = new Set<Deno.Conn>();
  readonly #serving: Promise<void>;

  /**
   * @param keys whose agent identity the fake holds and whose IDS it trusts
   * @param serve what it does with each connection (the stream is closed after it)
   */
  constructor(keys: KeySet, serve: (stream: SecureStream) => Promise<void>) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#serving = this.#serve(keys, serve);
  }

  async #serve(keys: KeySet, serve: (stream: SecureStream) => Promise<void>): Promise<void> {
    const trusted = keys.ids.noise.publicKey;
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      this.#raw.add(conn);
      // As the real agent does: a round trip is not held up by Nagle and delayed ACKs.
      (conn as Deno.TcpConn).setNoDelay(true);
      const task = (async () => {
        try {
          const stream = await acceptSecure(conn, {
            staticKey: keys.agent.noise,
            isTrusted: (key) => key.every((byte, i) => byte === trusted[i]),
          });
          try {
            await serve(stream);
          } finally {
            stream.close();
            await stream.closed;
          }
        } catch {
          // a failed case is the client's business
        } finally {
          close(conn);
          this.#raw.delete(conn);
        }
      })();
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  /** Its URL. */
  get url(): string {
    return `tcp://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  /** Stops it and every connection. */
  async close(): Promise<void> {
    close(this.#listener);
    for (const conn of this.#raw) close(conn);
    await this.#serving;
    await Promise.all(this.#tasks);
  }
}

// --- bpftool ---------------------------------------------------------------------------------

/** One link as `bpftool link show --json` lists it. */
export interface BpfLinkInfo {
  id: number;
  type: string;
  prog_id: number;
}

/** The eBPF links in the kernel now. */
export async function bpftoolLinks(): Promise<BpfLinkInfo[]> {
  const list = await bpftoolShow("link") as unknown as BpfLinkInfo[];
  return list.map(({ id, type, prog_id }) => ({ id, type, prog_id }));
}

/** The eBPF programs and links a process holds open, from /proc/PID/fdinfo. */
export function heldBpf(pid: number): { programs: Set<number>; links: Set<number> } {
  const programs = new Set<number>();
  const links = new Set<number>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${entry.name}`);
    } catch {
      continue; // closed meanwhile
    }
    const link = /^link_id:\s*(\d+)$/m.exec(info)?.[1];
    const program = /^prog_id:\s*(\d+)$/m.exec(info)?.[1];
    if (link !== undefined) links.add(Number(link));
    else if (program !== undefined) programs.add(Number(program));
  }
  return { programs, links };
}

/**
 * Waits until none of `programs` and `links` is left in the kernel (bpftool's lists); returns
 * what is still there after `timeoutMs`.
 */
export async function waitUnloaded(
  held: { programs: Set<number>; links: Set<number> },
  timeoutMs = 10_000,
): Promise<{ programs: number[]; links: number[] }> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const programs = (await bpftoolPrograms()).map((p) => p.id).filter((id) =>
      held.programs.has(id)
    );
    const links = (await bpftoolLinks()).map((l) => l.id).filter((id) => held.links.has(id));
    if ((programs.length === 0 && links.length === 0) || Date.now() > until) {
      return { programs, links };
    }
    await sleep(100);
  }
}

// --- ELF -------------------------------------------------------------------------------------

/** One ELF64 section header: where it is, its name, flags, and its bytes' place in the file. */
export interface ElfSection {
  /** File offset of the header itself. */
  at: number;
  /** The section's name. */
  name: string;
  /** sh_flags. */
  flags: bigint;
  /** File offset of the section's bytes. */
  offset: number;
  /** Bytes of the section in the file. */
  size: number;
}

/** The section headers of a little-endian ELF64 object (an eBPF object file). */
export function sections(elf: Uint8Array): ElfSection[] {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = Number(view.getBigUint64(0x28, true));
  const entry = view.getUint16(0x3a, true);
  const count = view.getUint16(0x3c, true);
  const header = (i: number) => {
    const at = shoff + i * entry;
    return {
      at,
      nameOffset: view.getUint32(at, true),
      flags: view.getBigUint64(at + 8, true),
      offset: Number(view.getBigUint64(at + 0x18, true)),
      size: Number(view.getBigUint64(at + 0x20, true)),
    };
  };
  const strings = header(view.getUint16(0x3e, true)).offset;
  return Array.from({ length: count }, (_, i) => {
    const { at, nameOffset, flags, offset, size } = header(i);
    const start = strings + nameOffset;
    const name = new TextDecoder().decode(elf.subarray(start, elf.indexOf(0, start)));
    return { at, name, flags, offset, size };
  });
}
