import assert from "node:assert/strict";
import { hex, toHex } from "../../../wire/secure/_crypto.ts";
import {
  CipherState,
  generateKeyPair,
  HandshakeState,
  keyPairFromPrivateKey,
  MAX_NONCE,
  NoiseError,
  PROTOCOL_NAME,
  SymmetricState,
} from "../../../wire/secure/noise.ts";

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_static: string;
  init_ephemeral: string;
  init_remote_static: string;
  resp_prologue: string;
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const VECTORS: Record<string, Vector> = {
  cacophony: await readVector("cacophony_Noise_IK_25519_AESGCM_SHA256.json"),
  "noise-c": await readVector("noise-c_Noise_IK_25519_AESGCM_SHA256.json"),
};

async function readVector(name: string): Promise<Vector> {
  const url = new URL(`../../testdata/noise/${name}`, import.meta.url);
  const vector = JSON.parse(await Deno.readTextFile(url));
  // noise-c names the protocol `name`, cacophony `protocol_name`.
  vector.protocol_name ??= vector.name;
  return vector;
}

async function vectorPair(
  vector: Vector,
): Promise<{ initiator: HandshakeState; responder: HandshakeState }> {
  const initiator = await HandshakeState.initialize({
    role: "initiator",
    prologue: hex(vector.init_prologue),
    staticKeyPair: await keyPairFromPrivateKey(hex(vector.init_static)),
    ephemeralKeyPair: await keyPairFromPrivateKey(hex(vector.init_ephemeral)),
    remoteStatic: hex(vector.init_remote_static),
  });
  const responder = await HandshakeState.initialize({
    role: "responder",
    prologue: hex(vector.resp_prologue),
    staticKeyPair: await keyPairFromPrivateKey(hex(vector.resp_static)),
    ephemeralKeyPair: await keyPairFromPrivateKey(hex(vector.resp_ephemeral)),
  });
  return { initiator, responder };
}

async function randomPair(
  prologues: [string, string] = ["ebpfmonitor/1", "ebpfmonitor/1"],
  pinned?: Uint8Array,
) {
  const idsKeys = await generateKeyPair();
  const agentKeys = await generateKeyPair();
  const encoder = new TextEncoder();
  const initiator = await HandshakeState.initialize({
    role: "initiator",
    prologue: encoder.encode(prologues[0]),
    staticKeyPair: idsKeys,
    remoteStatic: pinned ?? agentKeys.publicKey,
  });
  const responder = await HandshakeState.initialize({
    role: "responder",
    prologue: encoder.encode(prologues[1]),
    staticKeyPair: agentKeys,
  });
  return { initiator, responder, idsKeys, agentKeys };
}

function isNoiseError(code: string, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof NoiseError, `expected a NoiseError, got ${error}`);
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  };
}

Deno.test("the test vectors are for the implemented protocol", () => {
  for (const vector of Object.values(VECTORS)) {
    assert.equal(vector.protocol_name, PROTOCOL_NAME);
    assert.equal(vector.messages.length, 6);
  }
});

Deno.test("IK handshake and transport messages match the published vectors byte for byte", async (t) => {
  for (const [source, vector] of Object.entries(VECTORS)) {
    await t.step(source, async () => {
      const { initiator, responder } = await vectorPair(vector);
      const messages = vector.messages;

      // Handshake message 1: initiator -> responder.
      const m1 = await initiator.writeMessage(hex(messages[0]!.payload));
      assert.equal(toHex(m1), messages[0]!.ciphertext);
      assert.equal(toHex(await responder.readMessage(m1)), messages[0]!.payload);
      const initiatorStatic = await keyPairFromPrivateKey(hex(vector.init_static));
      assert.deepEqual(responder.remoteStatic, initiatorStatic.publicKey);
      const afterMessage1 = toHex(responder.handshakeHash);
      assert.equal(toHex(initiator.handshakeHash), afterMessage1);

      // Handshake message 2: responder -> initiator.
      const m2 = await responder.writeMessage(hex(messages[1]!.payload));
      assert.equal(toHex(m2), messages[1]!.ciphertext);
      assert.equal(toHex(await initiator.readMessage(m2)), messages[1]!.payload);

      assert.ok(initiator.isComplete && responder.isComplete);
      const ids = initiator.transport();
      const agent = responder.transport();
      assert.deepEqual(ids.handshakeHash, agent.handshakeHash);
      // See tests/testdata/noise/README.md: cacophony records h after message 1.
      const expectedHash = source === "cacophony" ? afterMessage1 : toHex(ids.handshakeHash);
      assert.equal(vector.handshake_hash, expectedHash);

      // Transport messages alternate, initiator first: both directions.
      for (const [index, { payload, ciphertext }] of messages.slice(2).entries()) {
        const [sender, receiver] = index % 2 === 0 ? [ids, agent] : [agent, ids];
        const sent = await sender.send.encryptWithAd(new Uint8Array(), hex(payload));
        assert.equal(toHex(sent), ciphertext, `transport message ${index + 1}`);
        assert.equal(toHex(await receiver.receive.decryptWithAd(new Uint8Array(), sent)), payload);
      }
    });
  }
});

Deno.test("a handshake with random keys gives both sides matching keys and hashes", async () => {
  const { initiator, responder, idsKeys, agentKeys } = await randomPair();
  const payload = await responder.readMessage(await initiator.writeMessage());
  assert.equal(payload.length, 0);
  assert.deepEqual(responder.remoteStatic, idsKeys.publicKey);
  await initiator.readMessage(await responder.writeMessage(new TextEncoder().encode("hello")));
  const ids = initiator.transport();
  const agent = responder.transport();
  assert.deepEqual(ids.handshakeHash, agent.handshakeHash);
  assert.deepEqual(ids.remoteStatic, agentKeys.publicKey);
  const data = new Uint8Array(70000).map((_, i) => i & 0xff);
  const sealed = await agent.send.encryptWithAd(new Uint8Array(), data);
  assert.deepEqual(await ids.receive.decryptWithAd(new Uint8Array(), sealed), data);
});

Deno.test("the responder rejects message 1 built with a wrong pinned key", async () => {
  const wrong = await generateKeyPair();
  const { initiator, responder } = await randomPair(undefined, wrong.publicKey);
  await assert.rejects(
    responder.readMessage(await initiator.writeMessage()),
    isNoiseError("decrypt_failed", /^Handshake message 1 failed authentication$/),
  );
  assert.equal(responder.remoteStatic, null);
  await assert.rejects(responder.writeMessage(), isNoiseError("bad_state", /already failed/));
});

Deno.test("the responder rejects message 1 under a different prologue", async () => {
  const { initiator, responder } = await randomPair(["ebpfmonitor/1", "ebpfmonitor/2"]);
  await assert.rejects(
    responder.readMessage(await initiator.writeMessage()),
    isNoiseError("decrypt_failed"),
  );
});

Deno.test("the initiator rejects a modified message 2", async () => {
  const { initiator, responder } = await randomPair();
  await responder.readMessage(await initiator.writeMessage());
  const m2 = await responder.writeMessage();
  m2[40]! ^= 1;
  await assert.rejects(
    initiator.readMessage(m2),
    isNoiseError("decrypt_failed", /^Handshake message 2 failed authentication$/),
  );
});

Deno.test("readMessage() rejects a truncated or oversized handshake message", async (t) => {
  await t.step("truncated", async () => {
    const { initiator, responder } = await randomPair();
    const m1 = await initiator.writeMessage();
    await assert.rejects(
      responder.readMessage(m1.subarray(0, 50)),
      isNoiseError(
        "bad_message",
        /^Handshake message 1 is too short \(50 bytes, expected at least 96\)$/,
      ),
    );
  });
  await t.step("oversized", async () => {
    const { responder } = await randomPair();
    await assert.rejects(responder.readMessage(new Uint8Array(65536)), isNoiseError("bad_message"));
  });
});

Deno.test("handshake steps out of turn fail", async () => {
  const { initiator, responder } = await randomPair();
  await assert.rejects(initiator.readMessage(new Uint8Array(96)), isNoiseError("bad_state"));
  await assert.rejects(responder.writeMessage(), isNoiseError("bad_state"));
  assert.throws(() => initiator.transport(), isNoiseError("bad_state"));
});

Deno.test("the initiator needs the responder's static key", async () => {
  await assert.rejects(
    HandshakeState.initialize({
      role: "initiator",
      prologue: new Uint8Array(),
      staticKeyPair: await generateKeyPair(),
    }),
    isNoiseError("bad_key"),
  );
});

Deno.test("CipherState never uses the reserved nonce 2^64-1", async () => {
  const cipher = new CipherState();
  await cipher.initializeKey(new Uint8Array(32).fill(1));
  cipher.setNonce(MAX_NONCE - 1n);
  await cipher.encryptWithAd(new Uint8Array(), new Uint8Array([1]));
  assert.equal(cipher.nonce, MAX_NONCE);
  await assert.rejects(
    cipher.encryptWithAd(new Uint8Array(), new Uint8Array([1])),
    isNoiseError("nonce_exhausted"),
  );
  await assert.rejects(
    cipher.decryptWithAd(new Uint8Array(), new Uint8Array(17)),
    isNoiseError("nonce_exhausted"),
  );
});

Deno.test("CipherState does not advance the nonce on a failed decryption", async () => {
  const key = new Uint8Array(32).fill(9);
  const sender = new CipherState();
  const receiver = new CipherState();
  await sender.initializeKey(key);
  await receiver.initializeKey(key);
  const first = await sender.encryptWithAd(new Uint8Array(), new Uint8Array([1, 2, 3]));
  const forged = first.slice();
  forged[0]! ^= 0x80;
  await assert.rejects(
    receiver.decryptWithAd(new Uint8Array(), forged),
    isNoiseError("decrypt_failed", /nonce 0 failed authentication/),
  );
  assert.equal(receiver.nonce, 0n);
  assert.deepEqual(
    await receiver.decryptWithAd(new Uint8Array(), first),
    new Uint8Array([1, 2, 3]),
  );
  assert.equal(receiver.nonce, 1n);
  // Replaying the same ciphertext fails: the implicit nonce moved on.
  await assert.rejects(
    receiver.decryptWithAd(new Uint8Array(), first),
    isNoiseError("decrypt_failed"),
  );
});

Deno.test("CipherState without a key passes data through", async () => {
  const cipher = new CipherState();
  assert.equal(cipher.hasKey(), false);
  assert.deepEqual(
    await cipher.encryptWithAd(new Uint8Array([1]), new Uint8Array([7, 8])),
    new Uint8Array([7, 8]),
  );
});

Deno.test("rekey() changes the key in step on both sides", async () => {
  const key = new Uint8Array(32).fill(3);
  const a = new CipherState();
  const b = new CipherState();
  await a.initializeKey(key);
  await b.initializeKey(key);
  await a.rekey();
  const sealed = await a.encryptWithAd(new Uint8Array(), new Uint8Array([5]));
  await assert.rejects(b.decryptWithAd(new Uint8Array(), sealed), isNoiseError("decrypt_failed"));
  await b.rekey();
  assert.deepEqual(await b.decryptWithAd(new Uint8Array(), sealed), new Uint8Array([5]));
});

Deno.test("SymmetricState pads a short protocol name and hashes a long one", async () => {
  const short = await SymmetricState.initialize("Noise_IK_25519_AESGCM_SHA256");
  const expected = new Uint8Array(32);
  expected.set(new TextEncoder().encode("Noise_IK_25519_AESGCM_SHA256"));
  assert.deepEqual(short.getHandshakeHash(), expected);
  const longName = "Noise_IK_25519_AESGCM_SHA256_and_some_more";
  const long = await SymmetricState.initialize(longName);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(longName)),
  );
  assert.deepEqual(long.getHandshakeHash(), digest);
});
