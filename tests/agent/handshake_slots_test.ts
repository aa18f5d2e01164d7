// The agent under a crowd of stalled, unauthenticated connections, and a silent authenticated one.
import assert from "node:assert/strict";
import { AgentClient } from "../../ids/client/agent_client.ts";
import { dial } from "../../wire/mod.ts";
import { AgentServer, DEFAULT_SERVER_LIMITS } from "../../agent/server.ts";
import { openChannel } from "../../ids/client/channel.ts";
import { generateIdentity, publicIdentity } from "../../wire/secure/keys.ts";

/** An agent with fresh keys and `limits`, and the IDS side's security to reach it. */
async function serveAgent(limits: Partial<typeof DEFAULT_SERVER_LIMITS>) {
  const ids = await generateIdentity("ids");
  const agentKey = await generateIdentity("agent");
  const server = new AgentServer(
    "tcp://127.0.0.1:0",
    { identity: agentKey, trusted: [publicIdentity(ids)], insecure: false },
    () => {},
    { ...DEFAULT_SERVER_LIMITS, ...limits },
  );
  const serving = server.serve();
  return {
    server,
    security: { identity: ids, agentKey: publicIdentity(agentKey) },
    async [Symbol.asyncDispose]() {
      server.close();
      await serving;
    },
  };
}

Deno.test(
  "stalled handshakes cannot lock an honest IDS out: the oldest waiting one gets a busy notice",
  async () => {
    // A handshake deadline of an hour: the honest IDS can only get in because a stalled peer is
    // dropped, never because one timed out (the client's own request deadline ends a failure).
    await using agent = await serveAgent({
      firstMessageMs: 3_600_000,
      handshakes: 16,
      handshakesPerSource: 8,
    });
    const stalled: Deno.Conn[] = [];
    try {
      // More silent peers from one address than the agent keeps waiting for message 1.
      for (let i = 0; i < 8 + 4; i++) stalled.push(await dial(agent.server.url));
      const client = await AgentClient.connect(agent.server.url, agent.security);
      await client.ping();
      client.close();
      // The first silent peers were dropped: they read the busy notice (00 00), then the end.
      const first = stalled[0]!;
      const buffer = new Uint8Array(16);
      const n = await first.read(buffer);
      assert.deepEqual([...buffer.subarray(0, n ?? 0)], [0, 0], "the busy notice");
      assert.equal(await first.read(buffer), null, "then the connection closed");
    } finally {
      for (const conn of stalled) {
        try {
          conn.close();
        } catch {
          // closed by the agent
        }
      }
    }
  },
);

Deno.test("a peer that completes the handshake but never asks anything is closed after the deadline", async () => {
  await using agent = await serveAgent({ firstMessageMs: 300 });
  const silent = await openChannel(agent.server.url, agent.security);
  const t0 = performance.now();
  const n = await silent.read!(new Uint8Array(16)).catch(() => null);
  assert.equal(n, null, "the agent closed the silent connection");
  // Not before the deadline (a busy machine only makes it later; the read ends the test).
  const waited = performance.now() - t0;
  assert.ok(waited >= 250, `closed after ${waited.toFixed(0)} ms, before the 300 ms deadline`);
  silent.close();
});
