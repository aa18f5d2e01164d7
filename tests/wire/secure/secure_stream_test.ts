import assert from "node:assert/strict";
import { FramedConnection } from "../../../wire/connection.ts";
import { chunkMessage, requestMessage, resultMessage } from "../../../wire/protocol.ts";
import { toBase64 } from "../../../wire/secure/_crypto.ts";
import { prefixed } from "../../../wire/secure/_messages.ts";
import { generateKeyPair, HandshakeState, type KeyPair } from "../../../wire/secure/noise.ts";
import {
  acceptSecure,
  DEFAULT_PROLOGUE,
  initiateSecure,
  MAX_CHUNK_BYTES,
  SecureChannelError,
  type SecureStream,
} from "../../../wire/secure/secure_stream.ts";
import { appendMac1 } from "../../../wire/secure/mac1.ts";
import { closeQuietly, drain, memoryPair, type Tamper } from "./_pipes.ts";

const IDS: KeyPair = await generateKeyPair();
const AGENT: KeyPair = await generateKeyPair();
const INTRUDER: KeyPair = await generateKeyPair();

const sameKey = (a: Uint8Array) => (b: Uint8Array) => toBase64(a) === toBase64(b);
const text = (s: string) => new TextEncoder().encode(s);
const decode = (chunks: Uint8Array[]) => chunks.map((c) => new TextDecoder().decode(c));

/** Handshakes over an in-memory pair: client = IDS (initiator), server = agent (responder). */
async function securePair(
  tamper?: Tamper,
): Promise<{ ids: SecureStream; agent: SecureStream }> {
  const [client, server] = memoryPair(tamper);
  const [ids, agent] = await Promise.all([
    initiateSecure(client, { staticKey: IDS, remoteStatic: AGENT.publicKey }),
    acceptSecure(server, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey) }),
  ]);
  return { ids, agent };
}

function channelError(code: string, message: string | RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof SecureChannelError, `expected a SecureChannelError, got ${error}`);
    assert.equal(error.code, code);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}

/** Sends "one", "two", "three", "four" from the IDS; returns what the agent read and the error. */
async function sendFour(tamper: Tamper) {
  const { ids, agent } = await securePair(tamper);
  for (const word of ["one", "two", "three", "four"]) await ids.write(text(word));
  const result = await drain(agent.readable);
  ids.close();
  await Promise.all([ids.closed, agent.closed]);
  return { ...result, agent };
}

Deno.test("SecureStream carries data both ways and splits large writes", async () => {
  const { ids, agent } = await securePair();
  assert.deepEqual(agent.remoteStatic, IDS.publicKey);
  assert.deepEqual(ids.remoteStatic, AGENT.publicKey);
  assert.deepEqual(ids.handshakeHash, agent.handshakeHash);

  const big = new Uint8Array(3 * MAX_CHUNK_BYTES + 10).map((_, i) => (i * 13) & 0xff);
  assert.equal(await ids.write(big), big.length);
  assert.equal(ids.messagesSent, 4);
  assert.equal(await agent.write(text("pong")), 4);
  assert.equal(await ids.write(new Uint8Array(0)), 0);
  ids.close();

  const atAgent = await drain(agent.readable);
  assert.equal(atAgent.error, null);
  assert.deepEqual(
    atAgent.chunks.map((c) => c.length),
    [MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, MAX_CHUNK_BYTES, 10],
  );
  const joined = new Uint8Array(big.length);
  let offset = 0;
  for (const chunk of atAgent.chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  assert.deepEqual(joined, big);
  // 4 data messages and the close notice.
  assert.equal(agent.messagesReceived, 5);
  assert.deepEqual(decode((await drain(ids.readable)).chunks), []);
  agent.close();
  await Promise.all([ids.closed, agent.closed]);
  await assert.rejects(ids.write(text("late")), channelError("closed", /closed secure channel/));
});

Deno.test("a modified message ends the stream: message 3 failed authentication", async () => {
  const { chunks, error, agent } = await sendFour((frame, index) => {
    if (index === 3) frame[frame.length - 1]! ^= 0x01;
    return [frame];
  });
  assert.deepEqual(decode(chunks), ["one", "two"]);
  channelError("authentication_failed", "Secure channel: message 3 failed authentication")(error);
  await assert.rejects(agent.write(text("x")), channelError("authentication_failed", /message 3/));
});

Deno.test("a replayed message fails authentication", async () => {
  const { chunks, error } = await sendFour((frame, index) =>
    index === 2 ? [frame, frame] : [frame]
  );
  assert.deepEqual(decode(chunks), ["one", "two"]);
  channelError("authentication_failed", "Secure channel: message 3 failed authentication")(error);
});

Deno.test("swapped messages fail authentication", async () => {
  let held: Uint8Array | null = null;
  const { chunks, error } = await sendFour((frame, index) => {
    if (index === 2) {
      held = frame;
      return [];
    }
    return index === 3 ? [frame, held!] : [frame];
  });
  assert.deepEqual(decode(chunks), ["one"]);
  channelError("authentication_failed", "Secure channel: message 2 failed authentication")(error);
});

Deno.test("a dropped message makes the next one fail authentication", async () => {
  const { chunks, error } = await sendFour((frame, index) => index === 2 ? [] : [frame]);
  assert.deepEqual(decode(chunks), ["one"]);
  channelError("authentication_failed", "Secure channel: message 2 failed authentication")(error);
});

Deno.test("a message cut off by the end of the connection is reported as truncated", async () => {
  const { chunks, error } = await sendFour((frame, index, control) => {
    if (index === 2) {
      control.close();
      return [frame.subarray(0, 10)];
    }
    return [frame];
  });
  assert.deepEqual(decode(chunks), ["one"]);
  channelError(
    "truncated",
    "Secure channel: message 2 is truncated (the connection closed after 10 of 21 bytes)",
  )(error);
});

Deno.test("a connection cut between messages without a close notice is an error", async () => {
  const { chunks, error } = await sendFour((frame, index, control) => {
    if (index === 2) {
      control.close();
      return [];
    }
    return [frame];
  });
  assert.deepEqual(decode(chunks), ["one"]);
  channelError(
    "truncated",
    "Secure channel: the connection closed without a close notice after message 1 (data may have been cut off)",
  )(error);
});

Deno.test("a modified handshake message 1 is rejected and answered with silence", async () => {
  const [client, server] = memoryPair((frame, index) => {
    if (index === 0) frame[40]! ^= 0x01;
    return [frame];
  });
  const [ids, agent] = await Promise.allSettled([
    initiateSecure(client, { staticKey: IDS, remoteStatic: AGENT.publicKey }),
    acceptSecure(server, { staticKey: AGENT, isTrusted: () => true }),
  ]);
  assert.equal(agent.status, "rejected");
  channelError(
    "handshake_failed",
    "Handshake message 1 has a wrong MAC: the peer does not know this side's public key, speaks another protocol version, or the message was modified",
  )(agent.reason);
  assert.equal(ids.status, "rejected");
  channelError("handshake_failed", /closed the connection without answering/)(ids.reason);
});

Deno.test("the two sides must use the same prologue (an IDS of protocol 1 fails)", async () => {
  const [client, server] = memoryPair();
  const [ids, agent] = await Promise.allSettled([
    initiateSecure(client, {
      staticKey: IDS,
      remoteStatic: AGENT.publicKey,
      prologue: text("ebpfmonitor/1"),
    }),
    acceptSecure(server, { staticKey: AGENT, isTrusted: () => true }),
  ]);
  assert.equal(ids.status, "rejected");
  assert.equal(agent.status, "rejected");
  channelError("handshake_failed", /^Handshake message 1 failed authentication/)(agent.reason);
});

// --- Over TCP loopback ---------------------------------------------------------------------

async function tcpPair(): Promise<[Deno.Conn, Deno.Conn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  return [client, server];
}

Deno.test("FramedConnection runs over SecureStream on TCP loopback, both ways", async () => {
  const [clientConn, serverConn] = await tcpPair();
  const [idsStream, agentStream] = await Promise.all([
    initiateSecure(clientConn, { staticKey: IDS, remoteStatic: AGENT.publicKey }),
    acceptSecure(serverConn, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey) }),
  ]);
  const ids = new FramedConnection(idsStream);
  const agent = new FramedConnection(agentStream);

  const object = new Uint8Array(200_000).map((_, i) => i & 0xff);
  await ids.send(requestMessage(1, "run", { addr: 0xffffffff81e00000n, object }));
  const request = await agent.receive();
  assert.deepEqual(request, requestMessage(1, "run", { addr: 0xffffffff81e00000n, object }));

  const page = new Uint8Array(4096).fill(7);
  await agent.send(chunkMessage(1, 0, page));
  await agent.send(resultMessage(1, { pages: 1 }));
  assert.deepEqual(await ids.receive(), chunkMessage(1, 0, page));
  assert.deepEqual(await ids.receive(), resultMessage(1, { pages: 1 }));

  ids.close();
  // The close notice ends the agent's stream cleanly.
  assert.equal(await agent.receive(), null);
  agent.close();
  await Promise.all([idsStream.closed, agentStream.closed]);
});

Deno.test("FramedConnection reports a secure channel failure as a receive error", async () => {
  const [clientConn, serverConn] = await tcpPair();
  const [idsStream, agentStream] = await Promise.all([
    initiateSecure(clientConn, { staticKey: IDS, remoteStatic: AGENT.publicKey }),
    acceptSecure(serverConn, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey) }),
  ]);
  const agent = new FramedConnection(agentStream);
  // A forged transport message written straight to the socket, under the secure layer.
  await clientConn.write(prefixed(new Uint8Array(40)));
  await assert.rejects(
    agent.receive(),
    (error: unknown) => {
      assert.match(
        (error as Error).message,
        /^Cannot receive frame: Secure channel: message 1 failed authentication$/,
      );
      return true;
    },
  );
  idsStream.close();
  agent.close();
  await Promise.all([idsStream.closed, agentStream.closed]);
});

Deno.test("the agent closes without sending anything to an untrusted IDS key", async () => {
  const [clientConn, serverConn] = await tcpPair();
  // Message 1 from an intruder with a valid handshake but a key the agent does not trust.
  const intruder = await HandshakeState.initialize({
    role: "initiator",
    prologue: DEFAULT_PROLOGUE,
    staticKeyPair: INTRUDER,
    remoteStatic: AGENT.publicKey,
  });
  await clientConn.write(prefixed(appendMac1(await intruder.writeMessage(), AGENT.publicKey)));
  await assert.rejects(
    acceptSecure(serverConn, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey) }),
    (error: unknown) => {
      channelError("untrusted_peer", `Peer key ${toBase64(INTRUDER.publicKey)} is not trusted`)(
        error,
      );
      assert.deepEqual((error as SecureChannelError).peerKey, INTRUDER.publicKey);
      return true;
    },
  );
  // Nothing was sent back: the first read sees the end of the stream.
  const received = await drain(clientConn.readable);
  assert.deepEqual(received, { chunks: [], error: null });
  closeQuietly(clientConn);
});

Deno.test("the IDS fails clearly when the agent does not hold the pinned key", async () => {
  const [clientConn, serverConn] = await tcpPair();
  const [ids, agent] = await Promise.allSettled([
    initiateSecure(clientConn, { staticKey: IDS, remoteStatic: INTRUDER.publicKey }),
    acceptSecure(serverConn, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey) }),
  ]);
  assert.equal(ids.status, "rejected");
  channelError(
    "handshake_failed",
    "Handshake failed: the peer closed the connection without answering: it does not hold the pinned key or does not trust this key",
  )(ids.reason);
  assert.equal(agent.status, "rejected");
  channelError(
    "handshake_failed",
    "Handshake message 1 has a wrong MAC: the peer does not know this side's public key, speaks another protocol version, or the message was modified",
  )(agent.reason);
});

Deno.test("the agent checks message 1's MAC before any Diffie-Hellman, and then the handshake", async (t) => {
  await t.step("garbage: a wrong MAC", async () => {
    const [client, server] = memoryPair();
    const accepting = acceptSecure(server, { staticKey: AGENT, isTrusted: () => true });
    await client.write(prefixed(new Uint8Array(124).fill(9)));
    await assert.rejects(
      accepting,
      channelError("handshake_failed", /^Handshake message 1 has a wrong MAC/),
    );
  });
  await t.step("garbage under a right MAC: the handshake fails", async () => {
    const [client, server] = memoryPair();
    const accepting = acceptSecure(server, { staticKey: AGENT, isTrusted: () => true });
    await client.write(prefixed(appendMac1(new Uint8Array(108).fill(9), AGENT.publicKey)));
    await assert.rejects(
      accepting,
      channelError("handshake_failed", /^Handshake message 1 failed authentication/),
    );
  });
});

Deno.test("the handshake has a deadline", async () => {
  const [clientConn, serverConn] = await tcpPair();
  await assert.rejects(
    acceptSecure(serverConn, { staticKey: AGENT, isTrusted: () => true, timeoutMs: 200 }),
    channelError("timeout", "Handshake timed out after 0.2 s"),
  );
  // The agent dropped the silent peer.
  assert.deepEqual(await drain(clientConn.readable), { chunks: [], error: null });
  closeQuietly(clientConn);
});

Deno.test("the agent reads nothing past handshake message 1 before the handshake completes", async () => {
  const [clientConn, serverConn] = await tcpPair();
  const handshake = await HandshakeState.initialize({
    role: "initiator",
    prologue: DEFAULT_PROLOGUE,
    staticKeyPair: IDS,
    remoteStatic: AGENT.publicKey,
  });
  const message1 = prefixed(appendMac1(await handshake.writeMessage(), AGENT.publicKey));
  // Message 1 and a forged "transport" message in one write: the agent must take only message 1
  // for the handshake, and treat the rest as transport data, which fails authentication.
  const forged = prefixed(new Uint8Array(30).fill(0xee));
  const both = new Uint8Array(message1.length + forged.length);
  both.set(message1);
  both.set(forged, message1.length);
  await clientConn.write(both);
  const agent = await acceptSecure(serverConn, {
    staticKey: AGENT,
    isTrusted: sameKey(IDS.publicKey),
  });
  const { error } = await drain(agent.readable);
  channelError("authentication_failed", "Secure channel: message 1 failed authentication")(error);
  await agent.closed;
  closeQuietly(clientConn);
});

Deno.test("SecureStream throughput over TCP loopback with 1 MiB writes", async () => {
  const MIB = 1 << 20;
  const WRITES = 32;
  const block = new Uint8Array(MIB).map((_, i) => (i * 31) & 0xff);

  async function measure(
    client: { write(b: Uint8Array): Promise<number>; close(): void },
    server: { readable: ReadableStream<Uint8Array> },
  ): Promise<number> {
    const start = performance.now();
    const reading = (async () => {
      let total = 0;
      for await (const chunk of server.readable) {
        total += chunk.length;
        if (total === WRITES * MIB) break;
      }
      return total;
    })();
    for (let i = 0; i < WRITES; i++) {
      let written = 0;
      while (written < MIB) written += await client.write(block.subarray(written));
    }
    assert.equal(await reading, WRITES * MIB);
    return (WRITES * MIB) / MIB / ((performance.now() - start) / 1000);
  }

  const [plainClient, plainServer] = await tcpPair();
  const plain = await measure(plainClient, plainServer);
  closeQuietly(plainClient);
  closeQuietly(plainServer);

  const [clientConn, serverConn] = await tcpPair();
  const [ids, agent] = await Promise.all([
    initiateSecure(clientConn, { staticKey: IDS, remoteStatic: AGENT.publicKey }),
    acceptSecure(serverConn, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey) }),
  ]);
  const secure = await measure(ids, agent);
  ids.close();
  agent.close();
  await Promise.all([ids.closed, agent.closed]);
  console.log(
    `TCP loopback, ${WRITES} x 1 MiB writes: plain ${plain.toFixed(0)} MiB/s, ` +
      `SecureStream ${secure.toFixed(0)} MiB/s`,
  );
  assert.ok(secure > 0);
});

Deno.test("close() ends a pending read and releases the connection", async () => {
  const { ids, agent } = await securePair();
  const reader = agent.readable.getReader();
  const pending = reader.read();
  agent.close();
  assert.deepEqual(await pending, { value: undefined, done: true });
  await agent.closed;
  // The IDS saw the agent's close notice: an orderly end.
  assert.deepEqual(await drain(ids.readable), { chunks: [], error: null });
  ids.close();
  await ids.closed;
});
