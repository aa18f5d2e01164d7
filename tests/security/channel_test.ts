// The secure channel as seen on the wire, against a real agent (a child process, real eBPF:
// needs root): what an unauthenticated peer gets back (nothing), what an eavesdropper sees
// (no plaintext), what a replayer gets (no session), and the connection limit.
import { concatBytes } from "../../wire/bytes.ts";
import assert from "node:assert/strict";
import { AgentClient } from "../../ids/client/agent_client.ts";
import type { ClientSecurity } from "../../ids/client/channel.ts";
import { Guest } from "../../ids/guest.ts";
import { startLocalAgent } from "../../ids/local_agent.ts";
import { encodeFrame, PROTOCOL_VERSION, requestMessage } from "../../wire/mod.ts";
import { generateIdentity } from "../../wire/secure/keys.ts";
import { HandshakeState } from "../../wire/secure/noise.ts";
import { DEFAULT_PROLOGUE } from "../../wire/secure/secure_stream.ts";
import { timestampNow } from "../../wire/secure/replay.ts";
import { appendMac1 } from "../../wire/secure/mac1.ts";
import { IS_ROOT, sleep, type TestAgent, withAgent } from "../_helpers/agent.ts";
import {
  connectRaw,
  contains,
  drain,
  type Drained,
  Prng,
  Relay,
  writeQuietly,
} from "../_helpers/security.ts";
import { processView } from "../../ids/os/process_view.ts";

const ignore = !IS_ROOT;

/** Handshake message 2 of IK on the wire: prefix, e (32), encrypted empty payload (16). */
const MESSAGE_2_BYTES = 2 + 32 + 16;

function prefixed(body: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([body.length >> 8, body.length & 0xff]), body);
}

const plaintextHello = () =>
  encodeFrame(requestMessage(1, "hello", { version: PROTOCOL_VERSION, client: "plaintext" }));

/** Sends `bytes` on a fresh raw connection, ends the sending side, and reads to the end. */
async function sendRaw(agent: TestAgent, bytes: Uint8Array, closeWrite = true): Promise<Drained> {
  const conn = await connectRaw(agent.url);
  await writeQuietly(conn, bytes);
  if (closeWrite) await conn.closeWrite().catch(() => {});
  return await drain(conn, 5000);
}

function assertSilentClose(result: Drained, what: string): void {
  assert.notEqual(result.end, "timeout", `${what}: the agent kept the connection open`);
  assert.equal(result.bytes.length, 0, `${what}: the agent sent ${result.bytes.length} bytes`);
}

/** Waits until the agent's log has `count` lines matching `pattern`. */
async function logged(agent: TestAgent, pattern: RegExp, count: number): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  for (let i = 0; i < 100; i++) {
    if ((agent.process.stderr.match(global) ?? []).length >= count) return;
    await sleep(20);
  }
  assert.fail(`the agent logged ${pattern} fewer than ${count} times:\n${agent.process.stderr}`);
}

/** An honest IDS still gets through. */
async function assertServes(agent: TestAgent): Promise<void> {
  const client = await AgentClient.connect(agent.url, agent.security);
  try {
    await client.ping();
  } finally {
    client.close();
  }
}

Deno.test({
  name: "an unauthenticated peer gets the connection closed and zero bytes from the agent (root)",
  ignore,
  fn: (t) =>
    withAgent(async (agent) => {
      const handshakeClosed = /closed tcp:\/\/127\.0\.0\.1:\d+ during the handshake/;
      let closes = 0;
      await t.step("a client with an unknown key (a complete, valid message 1)", async () => {
        const stranger = await generateIdentity("stranger");
        const handshake = await HandshakeState.initialize({
          role: "initiator",
          prologue: DEFAULT_PROLOGUE,
          staticKeyPair: stranger.noise,
          remoteStatic: agent.security.agentKey!.noise,
        });
        // Not half-closed: the agent must close on its own, right after message 1.
        const message1 = appendMac1(await handshake.writeMessage(), agent.security.agentKey!.noise);
        const result = await sendRaw(agent, prefixed(message1), false);
        assertSilentClose(result, "unknown key");
        await logged(agent, /during the handshake: Peer key \S+ is not trusted/, 1);
        closes++;
      });
      await t.step("a client that skips the handshake (a plaintext hello frame)", async () => {
        assertSilentClose(await sendRaw(agent, plaintextHello(), false), "plaintext hello");
        closes++;
      });
      await t.step("clients that send random bytes", async () => {
        const prng = new Prng(0x5eed_0001);
        for (let i = 0; i < 12; i++) {
          const bytes = prng.bytes(1 + prng.length(2048));
          const result = await sendRaw(agent, bytes);
          assertSilentClose(result, `random case ${i} (seed ${prng.seed})`);
          closes++;
        }
      });
      await logged(agent, handshakeClosed, closes);
      // Neither "connection from" nor "connection from ... closed": they were never admitted.
      assert.doesNotMatch(agent.process.stderr, /^ebpfmonitor agent: connection from/m);
      await assertServes(agent);
      await logged(agent, /agent: connection from \S+ closed/, 1);
      const closed = agent.process.stderr.match(
        /^ebpfmonitor agent: connection from \S+ closed$/gm,
      );
      assert.equal(closed?.length, 1, "one admitted connection, one closed line");
    }, { verbose: true }),
});

Deno.test({
  name: "the agent parses no request before the handshake completes (root)",
  ignore,
  fn: (t) =>
    withAgent(async (agent) => {
      await t.step("a garbage message 1 followed by a valid plaintext hello frame", async () => {
        const garbage = prefixed(new Prng(7).bytes(96));
        assertSilentClose(
          await sendRaw(agent, concatBytes(garbage, plaintextHello()), false),
          "garbage",
        );
      });
      await t.step("a valid message 1 followed at once by a plaintext hello frame", async () => {
        const handshake = await HandshakeState.initialize({
          role: "initiator",
          prologue: DEFAULT_PROLOGUE,
          staticKeyPair: agent.security.identity!.noise,
          remoteStatic: agent.security.agentKey!.noise,
        });
        const message1 = prefixed(
          appendMac1(await handshake.writeMessage(timestampNow()), agent.security.agentKey!.noise),
        );
        const result = await sendRaw(agent, concatBytes(message1, plaintextHello()), false);
        assert.notEqual(result.end, "timeout", "the agent kept the connection open");
        // The agent answers the handshake (message 2, which is genuine) and nothing more: the
        // plaintext frame fails authentication as a transport message and ends the connection.
        assert.equal(result.bytes.length, MESSAGE_2_BYTES, "only handshake message 2 came back");
        await handshake.readMessage(result.bytes.subarray(2));
        assert.ok(handshake.isComplete);
      });
      await logged(agent, /during the handshake|failed/, 2);
      await assertServes(agent);
    }, { verbose: true }),
});

/** Texts an honest session carries, which must not be visible on the wire. */
function plaintextMarkers(): Map<string, Uint8Array> {
  const text = (s: string) => new TextEncoder().encode(s);
  const btf = Deno.readFileSync("/sys/kernel/btf/vmlinux");
  const kallsyms = Deno.readTextFileSync("/proc/kallsyms").split("\n");
  const symbol = kallsyms.find((line, i) => i > 1000 && line.length >= 24)!;
  return new Map([
    ["BTF header (0x9feb...)", btf.subarray(0, 16)],
    ["a BTF string", btf.subarray(btf.length - 4096, btf.length - 4096 + 24)],
    ["a kallsyms line", text(symbol)],
    ["ELF header of the eBPF objects", new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1])],
    ['"hello"', text("hello")],
    ['"kernel_info"', text("kernel_info")],
    ['"kallsyms"', text("kallsyms")],
    ['"walk_tasks"', text("walk_tasks")],
    ['"ebpfmonitor-agent"', text("ebpfmonitor-agent")],
    ["the kernel release", text(Deno.osRelease())],
  ]);
}

/** An honest session through `relay`: profile, programs, a bulk process list. */
async function honestSession(url: string, security: ClientSecurity): Promise<number> {
  const guest = await Guest.open(url, security);
  try {
    return (await guest.acquire(processView(), "bulk")).items.length;
  } finally {
    guest.close();
  }
}

Deno.test({
  name:
    "an eavesdropper sees none of an honest session's plaintext, and a replayed message 1 gets no answer (root)",
  ignore,
  fn: (t) =>
    withAgent(async (agent) => {
      const markers = plaintextMarkers();
      const btfBytes = Deno.statSync("/sys/kernel/btf/vmlinux").size;
      const relay = new Relay(agent.url);
      try {
        assert.ok((await honestSession(relay.url, agent.security)) > 0);
        await relay.close();
        const toAgent = relay.toAgent(0);
        const toIds = relay.toIds(0);

        await t.step("the capture holds the session (both directions, the BTF's size)", () => {
          assert.equal(relay.sessions.length, 1);
          assert.ok(toIds.length > btfBytes, `${toIds.length} bytes from the agent`);
          assert.ok(toAgent.length > 3 * 4096, `${toAgent.length} bytes to the agent`);
        });

        await t.step("none of the plaintext appears in either direction", () => {
          for (const [what, needle] of markers) {
            assert.ok(!contains(toIds, needle), `${what} is visible agent → IDS`);
            assert.ok(!contains(toAgent, needle), `${what} is visible IDS → agent`);
          }
        });

        await t.step(
          "a replayed message 1 (and the rest of the IDS's bytes) is closed with nothing sent",
          async () => {
            const length = (toAgent[0]! << 8) | toAgent[1]!;
            const message1 = toAgent.subarray(0, 2 + length);
            const cases = [
              // Message 1 alone, then the replayer ends its side: the agent waits for no more.
              { replay: message1, closeWrite: true },
              // Message 1 and the recorded requests: they fail authentication under the new keys.
              { replay: toAgent.subarray(0, 64 * 1024), closeWrite: false },
            ];
            for (const { replay, closeWrite } of cases) {
              const result = await sendRaw(agent, replay, closeWrite);
              assert.notEqual(
                result.end,
                "timeout",
                "the agent kept the replayer's connection open",
              );
              // Protocol 2: the agent knows this message 1 (its ephemeral key and timestamp
              // were used) and refuses it before answering, keeping no state for it.
              assert.equal(result.bytes.length, 0, "the agent answered a replay");
            }
            await logged(agent, /is a replay/, cases.length);
          },
        );
      } finally {
        await relay.close();
      }
      await assertServes(agent);
    }, { verbose: true }),
});

Deno.test({
  name: "a plaintext (--insecure) session through the same relay does show the markers (root)",
  ignore,
  fn: async () => {
    // The control for the test above: the search finds plaintext when there is some.
    const agent = await startLocalAgent({ insecure: true });
    const relay = new Relay(agent.url);
    try {
      assert.ok((await honestSession(relay.url, agent.security)) > 0);
      await relay.close();
      const toIds = relay.toIds(0);
      const toAgent = relay.toAgent(0);
      const markers = plaintextMarkers();
      assert.ok(contains(toIds, markers.get("BTF header (0x9feb...)")!));
      assert.ok(contains(toIds, markers.get("a kallsyms line")!));
      assert.ok(contains(toAgent, markers.get('"kernel_info"')!));
      assert.ok(contains(toAgent, markers.get("ELF header of the eBPF objects")!));
    } finally {
      await relay.close();
      await agent.stop();
    }
  },
});

Deno.test({
  name:
    "the ninth concurrent connection is closed, unanswered and logged as over the limit, while eight are open; closing one frees a slot (root)",
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      const clients: AgentClient[] = [];
      try {
        for (let i = 0; i < 8; i++) {
          clients.push(await AgentClient.connect(agent.url, agent.security));
        }
        const ninth = await sendRaw(agent, new Uint8Array(0), false);
        assert.notEqual(ninth.end, "timeout", "the agent kept the ninth connection open");
        assert.deepEqual([...ninth.bytes], [0, 0], "the ninth connection gets the busy notice");
        await assert.rejects(
          AgentClient.connect(agent.url, agent.security),
          /^Error: Cannot open a secure channel to tcp:\/\/127\.0\.0\.1:\d+: agent busy or under attack \(6 tries\)/,
        );
        await logged(agent, /refused tcp:\/\/127\.0\.0\.1:\d+: already 8 connections/, 2);
        for (const client of clients) await client.ping();

        clients.shift()!.close();
        let again: AgentClient | undefined;
        for (let i = 0; i < 50 && again === undefined; i++) {
          again = await AgentClient.connect(agent.url, agent.security).catch(() => undefined);
          if (again === undefined) await sleep(50);
        }
        assert.ok(again, "no slot freed after one of the eight closed");
        clients.push(again);
        await again.ping();
        await assert.rejects(
          AgentClient.connect(agent.url, agent.security),
          /agent busy or under attack/,
          "eight again: the next is refused",
        );
      } finally {
        for (const client of clients) client.close();
      }
    }, { verbose: true }),
});

Deno.test({
  name:
    "eight replays of a captured handshake message 1 hold no session slot: the IDS still gets in (root)",
  // The agent counts a connection as a session only once an authenticated message arrives, which
  // a replayer never sends.
  ignore,
  fn: () =>
    withAgent(async (agent) => {
      const relay = new Relay(agent.url);
      try {
        const client = await AgentClient.connect(relay.url, agent.security);
        await client.ping();
        client.close();
        await sleep(100);
      } finally {
        await relay.close();
      }
      const recorded = relay.toAgent(0);
      const message1 = recorded.subarray(0, 2 + ((recorded[0]! << 8) | recorded[1]!));
      const replayers: Deno.Conn[] = [];
      try {
        for (let i = 0; i < 8; i++) {
          const conn = await connectRaw(agent.url);
          await writeQuietly(conn, message1);
          replayers.push(conn);
        }
        await sleep(500);
        // The replayers completed handshakes but never proved the IDS's key: no session slot.
        await assertServes(agent);
      } finally {
        for (const conn of replayers) conn.close();
      }
    }),
});
