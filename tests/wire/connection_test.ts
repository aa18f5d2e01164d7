import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  accept,
  chunkMessage,
  ConnectionError,
  dial,
  encodeFrame,
  errorMessage,
  formatEndpoint,
  FramedConnection,
  FrameError,
  listen,
  type Message,
  ProtocolError,
  requestMessage,
  resultMessage,
} from "../../wire/mod.ts";

/** A connected pair of framed TCP connections on 127.0.0.1; `raw` is the server's socket. */
async function tcpPair(): Promise<{
  client: FramedConnection;
  server: FramedConnection;
  raw: Deno.Conn;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const listener = listen("tcp://127.0.0.1:0");
  const [clientConn, serverConn] = await Promise.all([
    dial(formatEndpoint(listener.addr)),
    accept(listener),
  ]);
  listener.close();
  const client = new FramedConnection(clientConn);
  const server = new FramedConnection(serverConn!);
  return {
    client,
    server,
    raw: serverConn!,
    [Symbol.asyncDispose]: () => {
      client.close();
      server.close();
      return Promise.resolve();
    },
  };
}

Deno.test("FramedConnection exchanges every message type over TCP loopback", async () => {
  await using pair = await tcpPair();
  const { client, server } = pair;
  const request = requestMessage(1, "run", {
    addr: 0xffffffff81e00000n,
    object: new Uint8Array([0x7f, 0x45, 0x4c, 0x46]),
  });
  const replies: Message[] = [
    chunkMessage(1, 0, new Uint8Array(4096).fill(1)),
    chunkMessage(1, 1, new Uint8Array(4096).fill(2)),
    resultMessage(1, { pages: 2, next: 0xffff_8880_0000_1000n }),
    errorMessage(0, "shutting_down", "Agent is shutting down"),
  ];
  await client.send(request);
  assert.deepEqual(await server.receive(), request);
  for (const reply of replies) await server.send(reply);
  for (const reply of replies) assert.deepEqual(await client.receive(), reply);

  const expectedClientBytes = encodeFrame(request).length;
  const expectedServerBytes = replies.reduce((sum, m) => sum + encodeFrame(m).length, 0);
  assert.equal(client.bytesSent, expectedClientBytes);
  assert.equal(server.bytesReceived, expectedClientBytes);
  assert.equal(server.bytesSent, expectedServerBytes);
  assert.equal(client.bytesReceived, expectedServerBytes);
});

Deno.test("FramedConnection never interleaves concurrent sends", async () => {
  await using pair = await tcpPair();
  const { client, server } = pair;
  const count = 64;
  const sends = Array.from(
    { length: count },
    (_, seq) => client.send(chunkMessage(5, seq, new Uint8Array(100_000).fill(seq))),
  );
  const received: Message[] = [];
  for (let i = 0; i < count; i++) {
    const message = await server.receive();
    assert.ok(message);
    received.push(message);
  }
  await Promise.all(sends);
  received.forEach((message, seq) => {
    assert.equal(message.type, "chunk");
    if (message.type !== "chunk") return;
    assert.equal(message.seq, seq);
    assert.equal(message.data.length, 100_000);
    assert.ok(message.data.every((byte) => byte === seq));
  });
  assert.equal(client.bytesSent, server.bytesReceived);
});

Deno.test("FramedConnection.receive() returns null when the peer closes", async () => {
  await using pair = await tcpPair();
  await pair.client.send(resultMessage(1, "bye"));
  pair.client.close();
  assert.deepEqual(await pair.server.receive(), resultMessage(1, "bye"));
  assert.equal(await pair.server.receive(), null);
});

Deno.test("FramedConnection.close() is idempotent and ends a pending receive", async () => {
  await using pair = await tcpPair();
  const pending = pair.server.receive();
  pair.server.close();
  pair.server.close();
  assert.equal(pair.server.closed, true);
  assert.equal(await pending, null);
  assert.equal(await pair.server.receive(), null);
  await assert.rejects(
    pair.server.send(resultMessage(1, null)),
    (error: unknown) =>
      error instanceof ConnectionError && error.code === "closed" &&
      error.message === "Cannot send on a closed connection",
  );
});

Deno.test("FramedConnection.receive() rejects a valid frame that is not a message", async () => {
  await using pair = await tcpPair();
  await pair.raw.write(encodeFrame({ type: "request", id: 1, op: "ping", sudo: true }));
  await assert.rejects(
    pair.client.receive(),
    (error: unknown) =>
      error instanceof ProtocolError && error.code === "malformed" &&
      error.message === 'Unexpected field "sudo" in request message',
  );
});

Deno.test("FramedConnection.receive() rejects garbage and oversized frames", async (t) => {
  await t.step("garbage msgpack", async () => {
    await using pair = await tcpPair();
    await pair.raw.write(new Uint8Array([0, 0, 0, 1, 0xc1]));
    await assert.rejects(
      pair.client.receive(),
      (error: unknown) => error instanceof FrameError && error.code === "malformed",
    );
  });
  await t.step("oversized prefix", async () => {
    await using pair = await tcpPair();
    await pair.raw.write(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    await assert.rejects(pair.client.receive(), {
      name: "FrameError",
      code: "oversized",
      message: "Frame of 4294967295 bytes exceeds the maximum of 8388608",
    });
  });
  await t.step("truncated frame", async () => {
    await using pair = await tcpPair();
    await pair.raw.write(new Uint8Array([0, 0, 0, 10, 0x01]));
    pair.server.close();
    await assert.rejects(pair.client.receive(), {
      name: "FrameError",
      code: "truncated",
      message: "Connection closed in the middle of a frame (5 of 14 bytes)",
    });
  });
});

Deno.test("FramedConnection.send() refuses a message over its frame limit", async () => {
  const listener = listen("tcp://127.0.0.1:0");
  const [conn, peer] = await Promise.all([dial(formatEndpoint(listener.addr)), accept(listener)]);
  listener.close();
  const small = new FramedConnection(conn, { maxFrameBytes: 64 });
  try {
    await assert.rejects(small.send(chunkMessage(1, 0, new Uint8Array(100))), {
      name: "FrameError",
      code: "oversized",
    });
    assert.equal(small.bytesSent, 0);
    await small.send(resultMessage(1, "still usable"));
    assert.equal(small.bytesSent, encodeFrame(resultMessage(1, "still usable")).length);
  } finally {
    small.close();
    peer?.close();
  }
});

Deno.test("vsock endpoints work or fail with a clear message", async () => {
  // vsock needs --unstable-vsock, and without it Deno exits the process, so probe in a child.
  const probe = fileURLToPath(new URL("../_helpers/vsock_probe.ts", import.meta.url));
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-vsock", probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const report = JSON.parse(stdout) as { stage: string; error?: string; listening?: string };
  switch (report.stage) {
    case "exchanged":
      assert.match(report.listening!, /^vsock:\/\/any:\d+$/);
      return;
    case "listen":
      assert.match(report.error!, /^Cannot listen on vsock:\/\/any:\d+: .+/);
      break;
    case "dial":
      assert.match(report.error!, /^Cannot connect to vsock:\/\/1:\d+: .+/);
      break;
    default:
      assert.fail(`Unexpected probe report ${stdout}`);
  }
  console.log(`vsock is not available on this machine, exchange skipped: ${report.error}`);
});
