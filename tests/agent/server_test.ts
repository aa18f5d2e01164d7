// The agent's protocol, against a real agent (a child process, real eBPF: needs root) over TCP.
import assert from "node:assert/strict";
import {
  type ByteStream,
  encodeFrame,
  FramedConnection,
  type Message,
  PROTOCOL_VERSION,
  requestMessage,
} from "../../wire/mod.ts";
import { bpfObject } from "../../bpf/objects.ts";
import { openChannel } from "../../ids/client/channel.ts";
import { generateIdentity, type Identity } from "../../wire/secure/keys.ts";
import { signObject } from "../../wire/secure/sign.ts";
import {
  bpftoolPrograms,
  eventually,
  IS_ROOT,
  type TestAgent,
  withAgent,
} from "../_helpers/agent.ts";

const ignore = !IS_ROOT;

/**
 * A raw protocol connection to the agent: the secure channel (the IDS's keys
 * the local agent trusts) and the framed view of it.
 */
interface Peer {
  raw: ByteStream;
  /** The IDS's identity: `ask` signs every load with it, as the real client does. */
  identity?: Identity;
  conn: FramedConnection;
  nextId: number;
  [Symbol.dispose](): void;
}

async function open(agent: TestAgent): Promise<Peer> {
  const raw = await openChannel(agent.url, agent.security);
  const identity = agent.security.identity;
  const conn = new FramedConnection(raw);
  return { raw, conn, identity, nextId: 1, [Symbol.dispose]: () => conn.close() };
}

/** Sends one request and collects the answer up to its result or error. */
async function ask(peer: Peer, op: string, args: Record<string, unknown> = {}): Promise<Message[]> {
  const id = peer.nextId++;
  if (op === "load" && peer.identity && !("signature" in args)) {
    args = { ...args, signature: await signObject(peer.identity, args.object as Uint8Array) };
  }
  await peer.conn.send(requestMessage(id, op, args));
  const answer: Message[] = [];
  for (;;) {
    const message = await peer.conn.receive();
    assert.ok(message, `the agent closed the connection instead of answering ${op}`);
    answer.push(message);
    if (message.type === "result" || message.type === "error") return answer;
  }
}

async function last(peer: Peer, op: string, args: Record<string, unknown> = {}): Promise<Message> {
  const answer = await ask(peer, op, args);
  return answer[answer.length - 1]!;
}

async function greet(peer: Peer): Promise<void> {
  const answer = await last(peer, "hello", { version: PROTOCOL_VERSION });
  assert.equal(answer.type, "result", JSON.stringify(answer));
}

async function greeted(agent: TestAgent): Promise<Peer> {
  const peer = await open(agent);
  await greet(peer);
  return peer;
}

function assertError(message: Message | null, code: string, pattern?: RegExp): void {
  assert.ok(message, "expected an error frame, the connection closed");
  assert.equal(message.type, "error", JSON.stringify(message));
  if (message.type !== "error") return;
  assert.equal(message.code, code, message.message);
  if (pattern) assert.match(message.message, pattern);
}

/** The next receive ends: the agent closed this connection. */
async function assertClosed(peer: Peer): Promise<void> {
  assert.equal(await peer.conn.receive(), null, "the agent kept the connection open");
}

async function assertPing(peer: Peer): Promise<void> {
  assert.equal((await last(peer, "ping")).type, "result");
}

Deno.test({
  name: "agent answers a request before hello with an error and closes the connection (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await open(agent);
      const answer = await ask(peer, "ping");
      assertError(answer[0]!, "no_hello", /first request must be hello/);
      await assertClosed(peer);
    }),
});

Deno.test({
  name: "agent answers a hello with a wrong protocol version with error version (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await open(agent);
      const answer = await last(peer, "hello", { version: PROTOCOL_VERSION + 98 });
      assertError(answer, "version", new RegExp(`this agent speaks ${PROTOCOL_VERSION}`));
      await assertClosed(peer);
    }),
});

Deno.test({
  name: "agent answers hello with its pid and release, and ping with an empty result (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await open(agent);
      const hello = await last(peer, "hello", { version: PROTOCOL_VERSION });
      assert.equal(hello.type, "result");
      if (hello.type !== "result") return;
      const body = hello.body as Record<string, unknown>;
      assert.equal(body.version, PROTOCOL_VERSION);
      assert.equal(body.pid, agent.pid);
      assert.equal(body.release, Deno.osRelease());
      await assertPing(peer);
    }),
});

Deno.test({
  name: "agent answers an unknown operation with unknown_op and keeps the connection (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      assertError(await last(peer, "frobnicate"), "unknown_op", /frobnicate/);
      await assertPing(peer);
    }),
});

for (
  const [what, bytes, code] of [
    // A one-byte payload 0xc1: the one type tag msgpack never uses.
    ["a malformed frame (garbage msgpack)", new Uint8Array([0, 0, 0, 1, 0xc1]), "malformed"],
    [
      "an oversized length prefix (0xffffffff)",
      new Uint8Array([0xff, 0xff, 0xff, 0xff]),
      "oversized",
    ],
  ] as const
) {
  Deno.test({
    name: `agent answers ${what} with an error and closes only that connection (root)`,
    ignore,
    fn: () =>
      withAgent(async (agent) => {
        using before = await greeted(agent);
        using bad = await greeted(agent);
        await bad.raw.write(bytes);
        const answer = await bad.conn.receive();
        assertError(answer, code);
        assert.equal(answer?.id, 0, "a frame error is answered with id 0");
        await assertClosed(bad);
        using after = await greeted(agent);
        await assertPing(before);
        await assertPing(after);
      }),
  });
}

Deno.test({
  name: "agent answers a frame that is no message with malformed and closes (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      await peer.raw.write(encodeFrame({ type: "request", id: "one" }));
      const answer = await peer.conn.receive();
      assertError(answer, "malformed");
      await assertClosed(peer);
    }),
});

Deno.test({
  name: "agent answers a load of garbage bytes with a libbpf error and keeps working (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      const garbage = new TextEncoder().encode("this is not an ELF file, not at all");
      const answer = await last(peer, "load", { name: "garbage", object: garbage });
      assertError(answer, "failed", /bpf_object__open_mem\(garbage\) failed/);
      await assertPing(peer);
      const loaded = await last(peer, "load", {
        name: "read_page",
        object: bpfObject("read_page"),
      });
      assert.equal(loaded.type, "result", JSON.stringify(loaded));
    }),
});

Deno.test({
  name: "agent answers run and unload of an unknown handle with bad_handle (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      const params = new Uint8Array(8);
      assertError(await last(peer, "run", { handle: 42, params }), "bad_handle", /42/);
      assertError(await last(peer, "unload", { handle: 42 }), "bad_handle", /42/);
      await assertPing(peer);
    }),
});

Deno.test({
  name: "agent refuses parameters longer than the program's params map (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      const loaded = await last(peer, "load", {
        name: "read_page",
        object: bpfObject("read_page"),
      });
      assert.equal(loaded.type, "result");
      const handle = (loaded.type === "result" ? loaded.body : {}) as { handle: number };
      // read_page's params map holds the agent's header and one u64.
      const capacity = 8;
      const answer = await last(peer, "run", { handle: handle.handle, params: new Uint8Array(64) });
      assertError(
        answer,
        "failed",
        new RegExp(`Parameters of 64 bytes exceed the ${capacity} that read_page takes`),
      );
      await assertPing(peer);
    }),
});

Deno.test({
  name: "agent refuses a seventeenth program on one connection with limit (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      const object = bpfObject("read_page");
      const handles: number[] = [];
      for (let i = 0; i < 16; i++) {
        const answer = await last(peer, "load", { name: `read_page_${i}`, object });
        assert.equal(answer.type, "result", JSON.stringify(answer));
        if (answer.type === "result") handles.push((answer.body as { handle: number }).handle);
      }
      assert.equal(new Set(handles).size, 16, "every load has its own handle");
      assertError(await last(peer, "load", { name: "one_too_many", object }), "limit", /16/);
      // Unloading one makes room again; another connection has its own budget.
      assert.equal((await last(peer, "unload", { handle: handles[0] })).type, "result");
      assert.equal((await last(peer, "load", { name: "again", object })).type, "result");
      using other = await greeted(agent);
      assert.equal((await last(other, "load", { name: "other", object })).type, "result");
    }),
});

Deno.test({
  name: "agent unloads a connection's programs when the connection closes (root, bpftool)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      const names = new Set(["walk_tasks", "read_page"]);
      const idsBefore = new Set((await bpftoolPrograms()).map((p) => p.id));
      const peer = await greeted(agent);
      let mine: number[];
      try {
        for (const name of names) {
          const answer = await last(peer, "load", { name, object: bpfObject(name as "read_page") });
          assert.equal(answer.type, "result", JSON.stringify(answer));
        }
        mine = (await bpftoolPrograms())
          .filter((p) => names.has(p.name) && !idsBefore.has(p.id))
          .map((p) => p.id);
        assert.equal(mine.length, 2, "bpftool shows the two programs this connection loaded");
      } finally {
        peer.conn.close();
      }
      const gone = await eventually(async () => {
        const ids = new Set((await bpftoolPrograms()).map((p) => p.id));
        return mine.every((id) => !ids.has(id));
      });
      assert.ok(gone, `programs ${mine.join(", ")} are still loaded after the connection closed`);
    }),
});

Deno.test({
  name:
    "agent refuses an eBPF object without a signature, one signed by an untrusted key, and a tampered one (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      using peer = await greeted(agent);
      const object = bpfObject("read_page");
      assertError(
        await last(peer, "load", { name: "read_page", object, signature: undefined }),
        "unsigned",
        /carries no signature/,
      );
      const stranger = await generateIdentity("not trusted");
      assertError(
        await last(peer, "load", {
          name: "read_page",
          object,
          signature: await signObject(stranger, object),
        }),
        "bad_signature",
        /not signed by a trusted IDS key/,
      );
      const tampered = object.slice();
      tampered[tampered.length - 1]! ^= 1;
      assertError(
        await last(peer, "load", {
          name: "read_page",
          object: tampered,
          signature: await signObject(peer.identity!, object),
        }),
        "bad_signature",
      );
      // The honest, signed object still loads on the same connection.
      assert.equal((await last(peer, "load", { name: "read_page", object })).type, "result");
    }),
});
