// The agent under a crowd of stalled, unauthenticated connections (root: real agent, real eBPF).
import assert from "node:assert/strict";
import { AgentClient } from "../../ids/client/agent_client.ts";
import { startLocalAgent } from "../../ids/local_agent.ts";
import { dial } from "../../wire/mod.ts";
import { AgentServer, DEFAULT_SERVER_LIMITS } from "../../agent/server.ts";
import { openChannel } from "../../ids/client/channel.ts";
import { generateIdentity, publicIdentity } from "../../wire/secure/keys.ts";
import { IS_ROOT } from "../_helpers/agent.ts";

Deno.test({
  name:
    "stalled handshakes cannot lock an honest IDS out: the oldest waiting one gets a busy notice (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const agent = await startLocalAgent();
    const stalled: Deno.Conn[] = [];
    try {
      // More silent peers from one address than the agent keeps waiting for message 1.
      for (let i = 0; i < DEFAULT_SERVER_LIMITS.handshakesPerSource + 4; i++) {
        stalled.push(await dial(agent.url));
      }
      const t0 = performance.now();
      const client = await AgentClient.connect(agent.url, agent.security);
      await client.ping();
      client.close();
      const waited = performance.now() - t0;
      // The handshake deadline is 10 s: an honest IDS must not have waited for it.
      assert.ok(waited < 5_000, `the honest IDS waited ${waited.toFixed(0)} ms`);
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
      await agent.stop();
    }
  },
});

Deno.test({
  name:
    "a peer that completes the handshake but never asks anything is closed after the deadline (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const ids = await generateIdentity("ids");
    const agentKey = await generateIdentity("agent");
    const server = new AgentServer(
      "tcp://127.0.0.1:0",
      { identity: agentKey, trusted: [publicIdentity(ids)], insecure: false },
      () => {},
      { ...DEFAULT_SERVER_LIMITS, firstMessageMs: 300 },
    );
    const serving = server.serve();
    try {
      const silent = await openChannel(server.url, {
        identity: ids,
        agentKey: publicIdentity(agentKey),
      });
      const t0 = performance.now();
      const n = await silent.read!(new Uint8Array(16)).catch(() => null);
      assert.equal(n, null, "the agent closed the silent connection");
      const waited = performance.now() - t0;
      assert.ok(waited >= 250 && waited < 5_000, `closed after ${waited.toFixed(0)} ms`);
      silent.close();
    } finally {
      server.close();
      await serving;
    }
  },
});
