/**
 * A lying agent for the hostile-agent tests: it holds the agent's key (as
 * whoever is root in the guest does), completes the real handshake with the
 * IDS, and forwards every request to a real agent running here, rewriting
 * selected answers on the way back. Every lie is thus a realistic change of
 * real kernel memory or of a real answer: a hash mask patched inside the
 * pages that hold it, a record stream inflated with tiny records, answers
 * dripped late, a kallsyms answer replaced by a huge one.
 *
 * Also: the peak RSS of a child process, sampled, with a ceiling past which
 * the child is killed (so that a failing test never makes the shared machine
 * swap).
 *
 * @module
 */
import { RECORD_HEADER_BYTES } from "../../bpf/records.ts";
import { openChannel } from "../../ids/client/channel.ts";
import { FramedConnection } from "../../wire/connection.ts";
import { chunkMessage, type Message } from "../../wire/protocol.ts";
import type { SecureStream } from "../../wire/secure/secure_stream.ts";
import { Guest } from "../../ids/guest.ts";
import { FakeAgent } from "./security.ts";
import { type KeySet, sleep, type TestAgent } from "./agent.ts";
import assert from "node:assert/strict";
import { processView } from "../../ids/os/process_view.ts";
import { taskLayout } from "../../ids/os/tasks_layout.ts";
import { socketLayout } from "../../ids/os/sockets_layout.ts";

/** What the IDS asked, as the lie sees it. */
export interface Asked {
  /** The operation (`kernel_info`, `kallsyms`, `run`...). */
  op: string;
  /** For `run` and `load`: the program's name. */
  program?: string;
  /** For `run`: the program's parameters. */
  params?: Uint8Array;
}

/**
 * A lie: given what was asked and the real answer's messages (chunks, then the
 * result or error), the messages to send instead (their ids and chunk numbers
 * are set by the relay).
 */
export type Lie = (
  asked: Asked,
  answer: Message[],
) => Promise<Iterable<Message>> | Iterable<Message>;

/** Tells the truth. */
export const TRUTH: Lie = (_, answer) => answer;

/** Messages are sent in chunks of at most this many bytes. */
const CHUNK_BYTES = 1 << 20;

/**
 * A lying agent in front of the real agent at `upstream`: the IDS reaches it
 * with `keys.security`; it reaches the real agent with the same keys.
 */
export class LyingAgent {
  readonly #fake: FakeAgent;
  /** Requests forwarded so far. */
  requests = 0;

  /** @param keys the agent's and the IDS's keys @param upstream the real agent @param lie the rewrite */
  constructor(keys: KeySet, upstream: string, public lie: Lie) {
    this.#fake = new FakeAgent(keys, (stream) => this.#relay(stream, keys, upstream));
  }

  /** Its URL. */
  get url(): string {
    return this.#fake.url;
  }

  async #relay(stream: SecureStream, keys: KeySet, upstream: string): Promise<void> {
    const ids = new FramedConnection(stream);
    const agent = new FramedConnection(await openChannel(upstream, keys.security));
    const programs = new Map<number, string>();
    try {
      for (;;) {
        const request = await ids.receive();
        if (request === null || request.type !== "request") return;
        this.requests++;
        const asked: Asked = { op: request.op };
        if (request.op === "load") asked.program = String(request.args.name);
        if (request.op === "run") {
          asked.program = programs.get(Number(request.args.handle));
          asked.params = request.args.params as Uint8Array;
        }
        await agent.send(request);
        const answer: Message[] = [];
        for (;;) {
          const message = await agent.receive();
          if (message === null) return;
          answer.push(message);
          if (message.type === "result" || message.type === "error") break;
        }
        const last = answer[answer.length - 1]!;
        if (request.op === "load" && last.type === "result") {
          programs.set(Number((last.body as { handle: number }).handle), asked.program!);
        }
        let seq = 0;
        for (const message of await this.lie(asked, answer)) {
          if (message.type === "chunk") {
            await ids.send(chunkMessage(request.id, seq++, message.data));
          } else {
            await ids.send({ ...message, id: request.id } as Message);
          }
        }
      }
    } catch {
      // the IDS went away (or gave up): end the session
    } finally {
      agent.close();
    }
  }

  /** Stops it. */
  close(): Promise<void> {
    return this.#fake.close();
  }
}

/** The chunks of an answer, each record's payload patched where it covers `addr`. */
function patchRecords(answer: Message[], addr: bigint, value: Uint8Array): Message[] {
  return answer.map((message) => {
    if (message.type !== "chunk") return message;
    const data = message.data.slice();
    const view = new DataView(data.buffer);
    for (let at = 0; at + RECORD_HEADER_BYTES <= data.byteLength;) {
      const len = view.getUint32(at + 4, true);
      const start = view.getBigUint64(at + 8, true);
      const payload = at + RECORD_HEADER_BYTES;
      if (addr >= start && addr + BigInt(value.byteLength) <= start + BigInt(len)) {
        data.set(value, payload + Number(addr - start));
      }
      at = payload + len;
    }
    return { ...message, data };
  });
}

/**
 * Patches the u32 at guest address `addr` (e.g. `inet_hashinfo.lhash2_mask`)
 * to `value` in every page or range the agent returns that holds it.
 */
export function patchU32(addr: bigint, value: number): Lie {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value, true);
  return (asked, answer) => asked.op === "run" ? patchRecords(answer, addr, bytes) : answer;
}

/**
 * `count` records (ADDR records with a tag no walker uses, each with `payload` bytes of
 * payload), in chunks.
 */
function* extraRecords(count: number, payload: number): Generator<Message> {
  const size = RECORD_HEADER_BYTES + payload;
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / size));
  for (let sent = 0; sent < count; sent += perChunk) {
    const n = Math.min(perChunk, count - sent);
    const data = new Uint8Array(n * size);
    const view = new DataView(data.buffer);
    for (let i = 0; i < n; i++) {
      view.setUint32(i * size, 2, true); // RecordKind.Addr
      view.setUint32(i * size + 4, payload, true);
      view.setBigUint64(i * size + 8, 0xffff_8880_0000_0000n + BigInt(sent + i), true);
      view.setBigInt64(i * size + 16, 99n, true);
    }
    yield { type: "chunk", id: 0, seq: 0, data };
  }
}

/**
 * Adds `count` records (tiny, or with `payload` bytes each) to every answer of `program`,
 * before its result.
 */
export function floodRecords(program: string, count: number, payload = 0): Lie {
  return (asked, answer) => {
    if (asked.op !== "run" || asked.program !== program) return answer;
    return (function* () {
      yield* answer.slice(0, -1);
      yield* extraRecords(count, payload);
      yield answer[answer.length - 1]!;
    })();
  };
}

/** Delays every answer by `ms` (an agent that drips its answers just inside each request's timeout). */
export function drip(ms: number): Lie {
  return async (_, answer) => {
    await sleep(ms);
    return answer;
  };
}

/** Answers `kallsyms` with `bytes` of tiny, valid-looking lines instead of the real text. */
export function hugeKallsyms(bytes: number): Lie {
  return (asked, answer) => {
    if (asked.op !== "kallsyms") return answer;
    const line = new TextEncoder().encode("ffffffff81000000 T a\n");
    const chunk = new Uint8Array(Math.floor(CHUNK_BYTES / line.byteLength) * line.byteLength);
    for (let at = 0; at < chunk.byteLength; at += line.byteLength) chunk.set(line, at);
    return (function* () {
      for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
        yield { type: "chunk", id: 0, seq: 0, data: chunk } as Message;
      }
      yield answer[answer.length - 1]!;
    })();
  };
}

/** The members of `task_struct` the endless list rewrites (from the guest's profile). */
export interface TaskMembers {
  /** `sizeof(struct task_struct)`. */
  size: number;
  /** Offsets of `tasks` (its `next` first), `pid` and `tgid`. */
  tasks: number;
  pid: number;
  tgid: number;
}

/** Where the fabricated tasks live: kernel addresses no page of this machine's kernel uses. */
const FAKE_TASKS = 0xffff_c9ff_0000_0000n;
const PAGE = 4096;

/**
 * A task list that never ends: the start task's `tasks.next` is patched (in every page the agent
 * returns that holds it) to a fabricated task, whose page reads the lie answers with copies of the
 * start task's pages, each fabricated task with its own pid and a `tasks.next` to the next one.
 * Every task is distinct, so only a bound on the list's length (or the deadline) ends the walk.
 * For the `page` and `bulk` fetch modes (whose memory is pages).
 */
export function endlessTasks(t: TaskMembers): Lie {
  const seen = new Map<bigint, Uint8Array>();
  const stride = BigInt(Math.ceil(t.size / PAGE) * PAGE);
  let start: bigint | undefined;
  const u64 = (value: bigint) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, value, true);
    return bytes;
  };
  const real = (addr: bigint): number => {
    const page = addr - addr % BigInt(PAGE);
    return seen.get(page)?.[Number(addr - page)] ?? 0;
  };
  const fakePage = (page: bigint): Uint8Array => {
    const index = (page - FAKE_TASKS) / stride;
    const base = FAKE_TASKS + index * stride;
    const bytes = new Uint8Array(PAGE);
    for (let i = 0; i < PAGE; i++) bytes[i] = real(start! + (page - base) + BigInt(i));
    const put = (offset: number, value: Uint8Array) => {
      const at = Number(base + BigInt(offset) - page);
      if (at >= 0 && at + value.byteLength <= PAGE) bytes.set(value, at);
    };
    put(t.tasks, u64(base + stride + BigInt(t.tasks)));
    const pid = new Uint8Array(4);
    new DataView(pid.buffer).setInt32(0, 1_000_000 + Number(index), true);
    put(t.pid, pid);
    put(t.tgid, pid);
    return bytes;
  };
  return (asked, answer) => {
    if (asked.op !== "run") return answer;
    if (asked.program === "read_page" && asked.params !== undefined) {
      const page = new DataView(asked.params.buffer, asked.params.byteOffset).getBigUint64(0, true);
      if (page >= FAKE_TASKS && page < FAKE_TASKS + (1n << 40n) && start !== undefined) {
        const data = new Uint8Array(RECORD_HEADER_BYTES + PAGE);
        const view = new DataView(data.buffer);
        view.setUint32(0, 1, true); // RecordKind.Page
        view.setUint32(4, PAGE, true);
        view.setBigUint64(8, page, true);
        data.set(fakePage(page), RECORD_HEADER_BYTES);
        return [{ type: "chunk", id: 0, seq: 0, data }, answer[answer.length - 1]!];
      }
    }
    for (const message of answer) {
      if (message.type !== "chunk") continue;
      const view = new DataView(message.data.buffer, message.data.byteOffset);
      for (let at = 0; at + RECORD_HEADER_BYTES <= message.data.byteLength;) {
        const kind = view.getUint32(at, true);
        const len = view.getUint32(at + 4, true);
        const addr = view.getBigUint64(at + 8, true);
        if (kind === 2 && view.getBigInt64(at + 16, true) === 1n) start ??= addr; // ADDR, START
        if (kind === 1 && len === PAGE) {
          const payload = at + RECORD_HEADER_BYTES;
          seen.set(addr, message.data.slice(payload, payload + len));
        }
        at += RECORD_HEADER_BYTES + len;
      }
    }
    if (start === undefined) return answer;
    return patchRecords(answer, start + BigInt(t.tasks), u64(FAKE_TASKS + BigInt(t.tasks)));
  };
}

/** The members of `task_struct` the endless-list lie rewrites, from the real agent's profile. */
export async function taskMembers(agent: TestAgent): Promise<TaskMembers> {
  const guest = await Guest.open(agent.url, agent.security);
  try {
    const t = taskLayout(guest.profile);
    return { size: t.size, tasks: t.tasks.offset, pid: t.pid.offset, tgid: t.tgid.offset };
  } finally {
    guest.close();
  }
}

/** Where the real agent's `inet_hashinfo` masks of the initial network namespace are. */
export async function hashMasks(agent: TestAgent): Promise<{ lhash2: bigint; ehash: bigint }> {
  const guest = await Guest.open(agent.url, agent.security);
  try {
    const l = socketLayout(guest.profile);
    assert.ok(l !== undefined, "this kernel's socket tables are known");
    const init = (await guest.acquire(processView(), "bulk")).items.find((p) => p.pid === 1);
    assert.ok(init !== undefined);
    const mem = guest.memory();
    const nsproxy = await mem.u64(init.addr + BigInt(l.nsproxy.offset));
    const net = await mem.u64(nsproxy + BigInt(l.net_ns.offset));
    const deathRow = l.deathRowPointer
      ? await mem.u64(net + BigInt(l.tcpDeathRow.offset))
      : net + BigInt(l.tcpDeathRow.offset);
    const hashinfo = await mem.u64(deathRow + BigInt(l.hashinfo.offset));
    return {
      lhash2: hashinfo + BigInt(l.lhash2_mask.offset),
      ehash: hashinfo + BigInt(l.ehash_mask.offset),
    };
  } finally {
    guest.close();
  }
}

/** Several lies in turn. */
export function lies(...all: Lie[]): Lie {
  return async (asked, answer) => {
    for (const lie of all) answer = [...await lie(asked, answer)];
    return answer;
  };
}

/** Peak RSS of a process, sampled; the process is killed past `ceilingBytes`. */
export class RssSampler {
  #peak = 0;
  /** Whether the ceiling was hit (and the process killed). */
  killed = false;
  readonly #timer: ReturnType<typeof setInterval>;

  /** Samples `pid` every 50 ms. */
  constructor(readonly pid: number, readonly ceilingBytes: number) {
    this.#timer = setInterval(() => this.sample(), 50);
  }

  /** Takes one sample (VmHWM, the kernel's own peak, when readable). */
  sample(): void {
    let status: string;
    try {
      status = Deno.readTextFileSync(`/proc/${this.pid}/status`);
    } catch {
      return;
    }
    const kib = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    this.#peak = Math.max(this.#peak, kib("VmHWM") * 1024, kib("VmRSS") * 1024);
    if (this.#peak > this.ceilingBytes && !this.killed) {
      this.killed = true;
      try {
        Deno.kill(this.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }

  /** The peak so far, bytes. */
  get peak(): number {
    return this.#peak;
  }

  /** Stops sampling (after one last sample). */
  stop(): number {
    this.sample();
    clearInterval(this.#timer);
    return this.#peak;
  }
}
