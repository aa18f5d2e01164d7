// The IDS's client against an agent that stalls or floods (an impostor holding the agent's key,
// the worst case): each request ends with a clear error, never a hang or unbounded memory.
import assert from "node:assert/strict";
import { AgentClient, AgentError } from "../../ids/client/agent_client.ts";
import { FramedConnection } from "../../wire/connection.ts";
import { chunkMessage, PROTOCOL_VERSION, resultMessage } from "../../wire/protocol.ts";
import type { SecureStream } from "../../wire/secure/secure_stream.ts";
import { deadline, FakeAgent } from "../_helpers/security.ts";
import { makeKeys, sleep } from "../_helpers/agent.ts";

/** Answers hello, then does `after` with the connection. */
function fakeAgent(after: (conn: FramedConnection) => Promise<void>) {
  return async (stream: SecureStream) => {
    const conn = new FramedConnection(stream);
    const hello = await conn.receive();
    if (hello?.type !== "request") return;
    await conn.send(resultMessage(hello.id, {
      version: PROTOCOL_VERSION,
      agent: "impostor",
      pid: 1,
      release: "x",
    }));
    await after(conn);
  };
}

Deno.test("a request the agent never answers fails after the client's deadline", async () => {
  const keys = await makeKeys();
  const agent = new FakeAgent(
    keys,
    fakeAgent(async (conn) => {
      await conn.receive(); // the ping: never answered
      await sleep(3_000);
    }),
  );
  try {
    const client = await AgentClient.connect(agent.url, keys.security, {
      timeoutMs: 300,
      maxResponseBytes: 1 << 20,
    });
    const error = await deadline(client.ping().then(() => null, (e) => e), 5_000, "ping");
    assert.ok(error instanceof AgentError);
    assert.equal(error.code, "timeout");
    assert.match(error.message, /no answer within 300 ms/);
    client.close();
  } finally {
    await agent.close();
    await keys.remove();
  }
});

Deno.test("an answer larger than the client's bound is refused and the connection closed", async () => {
  const keys = await makeKeys();
  const agent = new FakeAgent(
    keys,
    fakeAgent(async (conn) => {
      const request = await conn.receive();
      if (request?.type !== "request") return;
      const chunk = new Uint8Array(64 * 1024);
      for (let seq = 0; seq < 64; seq++) {
        await conn.send(chunkMessage(request.id, seq, chunk)).catch(() => {});
      }
    }),
  );
  try {
    const client = await AgentClient.connect(agent.url, keys.security, {
      timeoutMs: 10_000,
      maxResponseBytes: 1 << 20,
    });
    const error = await deadline(client.request("btf").then(() => null, (e) => e), 10_000, "btf");
    assert.ok(error instanceof AgentError);
    assert.equal(error.code, "too_large");
    client.close();
  } finally {
    await agent.close();
    await keys.remove();
  }
});
