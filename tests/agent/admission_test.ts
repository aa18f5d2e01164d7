// Handshake admission of an in-process agent server (no eBPF: only hello and ping are asked),
// with small bounds so that floods of a few hundred connections cross them.
import assert from "node:assert/strict";
import { AgentServer, DEFAULT_SERVER_LIMITS, type ServerLimits } from "../../agent/server.ts";
import { AgentClient } from "../../ids/client/agent_client.ts";
import type { ClientSecurity } from "../../ids/client/channel.ts";
import { dial } from "../../wire/mod.ts";
import { generateIdentity, publicIdentity } from "../../wire/secure/keys.ts";

interface Bed {
  url: string;
  security: ClientSecurity;
  log: string[];
  close(): Promise<void>;
}

async function startServer(limits: Partial<ServerLimits>): Promise<Bed> {
  const ids = await generateIdentity("ids");
  const agent = await generateIdentity("agent");
  const log: string[] = [];
  const server = new AgentServer(
    "tcp://127.0.0.1:0",
    { identity: agent, trusted: [publicIdentity(ids)], insecure: false },
    (line) => log.push(line),
    { ...DEFAULT_SERVER_LIMITS, ...limits },
  );
  const serving = server.serve();
  return {
    url: server.url,
    security: { identity: ids, agentKey: publicIdentity(agent) },
    log,
    close: async () => {
      server.close();
      await serving;
    },
  };
}

/** Reads a raw connection to its end; the bytes read (0 for a reset). */
async function readToEnd(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(64);
  let total = 0;
  try {
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) total += n;
  } catch {
    // reset by the agent
  }
  try {
    conn.close();
  } catch {
    // already closed
  }
  return total;
}

Deno.test("a trusted IDS gets in while stalled sockets from its own address churn past the bound", async () => {
  const bed = await startServer({ handshakes: 16, handshakesPerSource: 8 });
  let stop = false;
  let connects = 0;
  const budget = 3000; // connections the flood may open in all
  // 32 sockets, 4 times the per-address bound: each reconnects as soon as the agent drops it.
  const open = new Set<Deno.Conn>();
  const attackers = Array.from({ length: 32 }, async () => {
    while (!stop && connects < budget) {
      connects++;
      const conn = await dial(bed.url);
      open.add(conn);
      await readToEnd(conn);
      open.delete(conn);
    }
  });
  try {
    for (let i = 0; i < 10; i++) {
      const client = await AgentClient.connect(bed.url, bed.security);
      await client.ping();
      client.close();
    }
  } finally {
    stop = true;
    for (const conn of open) conn.close(); // else they wait out the 10 s handshake deadline
    await Promise.all(attackers);
    await bed.close();
  }
  assert.ok(
    bed.log.some((line) => /^dropped \d+ connection\(s\) waiting for admission/.test(line)),
    `the flood crossed the bound (${connects} connections): ${bed.log.slice(0, 5).join("; ")}`,
  );
});

Deno.test("authenticated handshakes that never ask anything hold at most `reserved` slots", async () => {
  const bed = await startServer({ reserved: 2 });
  const silent: AgentClient[] = [];
  try {
    // Three trusted handshakes without a request: the first is dropped for the third.
    const { openChannel } = await import("../../ids/client/channel.ts");
    const channels = [];
    for (let i = 0; i < 3; i++) channels.push(await openChannel(bed.url, bed.security));
    const first = await channels[0]!.read!(new Uint8Array(16)).catch(() => null);
    assert.equal(first, null, "the oldest reserved handshake was closed");
    for (const channel of channels) channel.close();
    // A trusted IDS still gets a session.
    const client = await AgentClient.connect(bed.url, bed.security);
    silent.push(client);
    await client.ping();
  } finally {
    for (const client of silent) client.close();
    await bed.close();
  }
  assert.ok(
    bed.log.some((line) => /\(latest from tcp:\S+, reserved\)$/.test(line)),
    bed.log.join("\n"),
  );
});
