// Replay protection of handshake message 1 (TAI64N timestamps, ReplayGuard) and the busy notice.
import assert from "node:assert/strict";
import { toBase64 } from "../../../wire/secure/_crypto.ts";
import { generateKeyPair, type KeyPair } from "../../../wire/secure/noise.ts";
import {
  decodeTimestamp,
  encodeTimestamp,
  ReplayGuard,
  TIMESTAMP_BYTES,
  timestampNow,
} from "../../../wire/secure/replay.ts";
import {
  acceptSecure,
  BUSY_NOTICE,
  initiateSecure,
  SecureChannelError,
  sendBusyNotice,
} from "../../../wire/secure/secure_stream.ts";
import { closeQuietly, memoryPair } from "./_pipes.ts";

const IDS: KeyPair = await generateKeyPair();
const AGENT: KeyPair = await generateKeyPair();
const sameKey = (a: Uint8Array) => (b: Uint8Array) => toBase64(a) === toBase64(b);
const S = 1_000_000_000n;

function channelError(code: string, message: string) {
  return (error: unknown) => {
    assert.ok(error instanceof SecureChannelError, `expected a SecureChannelError, got ${error}`);
    assert.equal(error.code, code);
    assert.equal(error.message, message);
    return true;
  };
}

/** A message 1 body as an attacker would send it: 32 bytes of ephemeral key, then anything. */
function message1(ephemeral: number): Uint8Array {
  return new Uint8Array(96).fill(ephemeral);
}

Deno.test("encodeTimestamp() writes TAI64N and decodeTimestamp() reads it back", () => {
  const ns = 1_764_000_000n * S + 123_456_789n;
  const bytes = encodeTimestamp(ns);
  assert.equal(bytes.length, TIMESTAMP_BYTES);
  // 2^62 + seconds, then nanoseconds, big-endian.
  assert.deepEqual([...bytes.subarray(0, 4)], [0x40, 0x00, 0x00, 0x00]);
  assert.equal(new DataView(bytes.buffer).getUint32(8, false), 123_456_789);
  assert.equal(decodeTimestamp(bytes), ns);
});

Deno.test("decodeTimestamp() refuses a wrong length, nanoseconds past a second and seconds before 1970", () => {
  assert.equal(decodeTimestamp(new Uint8Array(11)), undefined);
  assert.equal(decodeTimestamp(new Uint8Array(0)), undefined);
  const badNanos = encodeTimestamp(5n * S);
  new DataView(badNanos.buffer).setUint32(8, 1_000_000_000, false);
  assert.equal(decodeTimestamp(badNanos), undefined);
  assert.equal(decodeTimestamp(new Uint8Array(12)), undefined);
});

Deno.test("timestampNow() is strictly increasing within a process", () => {
  let last = -1n;
  for (let i = 0; i < 10_000; i++) {
    const now = decodeTimestamp(timestampNow())!;
    assert.ok(now > last, `timestamp ${i} is ${now}, not after ${last}`);
    last = now;
  }
});

Deno.test("ReplayGuard accepts each timestamp of a key once, and none older than the window", async (t) => {
  const key = new Uint8Array(32).fill(7);
  const other = new Uint8Array(32).fill(8);
  const guard = new ReplayGuard({ reorderNs: S, perKey: 4, ephemerals: 2 });
  const ts = (ns: bigint) => encodeTimestamp(ns);
  await t.step("a new timestamp is fresh, the same one again is a replay", () => {
    assert.equal(guard.check(key, ts(100n * S), message1(1)), "fresh");
    assert.equal(guard.check(key, ts(100n * S), message1(2)), "replayed");
  });
  await t.step("another key has its own history", () => {
    assert.equal(guard.check(other, ts(100n * S), message1(3)), "fresh");
  });
  await t.step("an older timestamp inside the reorder window is fresh once", () => {
    assert.equal(guard.check(key, ts(100n * S - 1000n), message1(4)), "fresh");
    assert.equal(guard.check(key, ts(100n * S - 1000n), message1(5)), "replayed");
  });
  await t.step("a timestamp older than the window is a replay", () => {
    assert.equal(guard.check(key, ts(99n * S - 1n), message1(6)), "replayed");
  });
  await t.step("past perKey timestamps in the window, the oldest becomes the floor", () => {
    for (let i = 1n; i <= 4n; i++) {
      assert.equal(guard.check(key, ts(100n * S + i), message1(10 + Number(i))), "fresh");
    }
    // Five remembered would exceed 4: 100 s - 1000 ns and then 100 s were dropped, so the
    // floor is 100 s and anything at or below it is refused.
    assert.equal(guard.check(key, ts(100n * S - 500n), message1(20)), "replayed");
    assert.equal(guard.check(key, ts(100n * S + 10n), message1(21)), "fresh");
  });
  await t.step("a payload that is not a timestamp is refused", () => {
    assert.equal(guard.check(key, new Uint8Array(0), message1(30)), "no_timestamp");
    assert.equal(guard.check(key, new Uint8Array(13), message1(31)), "no_timestamp");
  });
  await t.step("the ephemeral keys of accepted messages 1 are remembered, the newest 2", () => {
    assert.equal(guard.isKnownEphemeral(message1(21)), true);
    assert.equal(guard.isKnownEphemeral(message1(14)), true);
    assert.equal(guard.isKnownEphemeral(message1(13)), false);
    assert.equal(guard.isKnownEphemeral(message1(2)), false, "a refused message 1 is not kept");
  });
});

/** Runs a handshake whose message 1 is recorded; returns its frame (prefix included). */
async function recordedHandshake(guard: ReplayGuard, timestamp?: Uint8Array): Promise<Uint8Array> {
  let recorded: Uint8Array | undefined;
  const [client, server] = memoryPair((frame, index) => {
    if (index === 0) recorded = frame.slice();
    return [frame];
  });
  const [ids, agent] = await Promise.all([
    initiateSecure(client, { staticKey: IDS, remoteStatic: AGENT.publicKey, timestamp }),
    acceptSecure(server, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey), replay: guard }),
  ]);
  ids.close();
  agent.close();
  return recorded!;
}

/** Feeds `frame` to a responder as handshake message 1 and returns why it refused. */
async function replay(guard: ReplayGuard, frame: Uint8Array): Promise<unknown> {
  const [client, server] = memoryPair();
  const accepting = acceptSecure(server, {
    staticKey: AGENT,
    isTrusted: sameKey(IDS.publicKey),
    replay: guard,
  });
  await client.write(frame);
  const error = await accepting.then(() => undefined, (error) => error);
  closeQuietly(client);
  return error;
}

Deno.test("acceptSecure() with a ReplayGuard refuses a replayed message 1 before answering", async () => {
  const guard = new ReplayGuard();
  const frame = await recordedHandshake(guard);
  channelError("replayed", "Handshake message 1 is a replay (known ephemeral key)")(
    await replay(guard, frame),
  );
});

Deno.test("acceptSecure() with a ReplayGuard refuses a new message 1 with an old timestamp", async () => {
  const guard = new ReplayGuard();
  // Older than the newest accepted by more than the 1 s reorder window.
  const old = encodeTimestamp(decodeTimestamp(timestampNow())! - 2n * S);
  await recordedHandshake(guard, timestampNow());
  const [client, server] = memoryPair();
  const outcome = await Promise.allSettled([
    initiateSecure(client, { staticKey: IDS, remoteStatic: AGENT.publicKey, timestamp: old }),
    acceptSecure(server, { staticKey: AGENT, isTrusted: sameKey(IDS.publicKey), replay: guard }),
  ]);
  assert.equal(outcome[1].status, "rejected");
  channelError(
    "replayed",
    `Handshake message 1 from ${toBase64(IDS.publicKey)} is a replay (its timestamp is not new)`,
  )(outcome[1].reason);
  assert.equal(outcome[0].status, "rejected", "the initiator gets no message 2");
});

Deno.test("acceptSecure() with a ReplayGuard refuses a message 1 without a timestamp", async () => {
  const [client, server] = memoryPair();
  const outcome = await Promise.allSettled([
    initiateSecure(client, {
      staticKey: IDS,
      remoteStatic: AGENT.publicKey,
      timestamp: new Uint8Array(0),
    }),
    acceptSecure(server, {
      staticKey: AGENT,
      isTrusted: sameKey(IDS.publicKey),
      replay: new ReplayGuard(),
    }),
  ]);
  assert.equal(outcome[1].status, "rejected");
  channelError(
    "replayed",
    "Handshake message 1 carries no timestamp (0 bytes of payload, expected 12)",
  )(outcome[1].reason);
});

Deno.test("initiateSecure() reports a busy notice as busy, not as a key mismatch", async () => {
  const [client, server] = memoryPair();
  const reading = server.readable.getReader();
  const initiating = initiateSecure(client, { staticKey: IDS, remoteStatic: AGENT.publicKey });
  await reading.read(); // message 1 arrived
  reading.releaseLock();
  await sendBusyNotice(server);
  await assert.rejects(
    initiating,
    channelError(
      "busy",
      "Handshake refused: the agent is busy or under attack (it answered with a busy notice)",
    ),
  );
  assert.deepEqual([...BUSY_NOTICE], [0, 0]);
});
