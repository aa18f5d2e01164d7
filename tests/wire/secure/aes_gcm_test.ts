import assert from "node:assert/strict";
import {
  AuthenticationError,
  importKey,
  openAsync,
  openSync,
  sealAsync,
  sealSync,
  SYNC_MAX_BYTES,
} from "../../../wire/secure/_aes_gcm.ts";
import { CipherState } from "../../../wire/secure/noise.ts";
import { MAX_CHUNK_BYTES } from "../../../wire/secure/secure_stream.ts";

const random = (length: number) => {
  const out = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, offset + 65536));
  }
  return out;
};

const SIZES = [
  0,
  1,
  15,
  16,
  17,
  31,
  255,
  1024,
  SYNC_MAX_BYTES - 1,
  SYNC_MAX_BYTES,
  SYNC_MAX_BYTES + 1,
  MAX_CHUNK_BYTES,
];

Deno.test("sealSync() and sealAsync() produce the same ciphertext and tag", async (t) => {
  for (const size of SIZES) {
    await t.step(`${size} bytes`, async () => {
      const key = random(32);
      const webKey = await importKey(key);
      for (const adLength of [0, 32]) {
        const iv = random(12);
        const ad = random(adLength);
        const plaintext = random(size);
        const sync = sealSync(key, iv, ad, plaintext);
        assert.deepEqual(sync, await sealAsync(webKey, iv, ad, plaintext));
        assert.equal(sync.length, size + 16);
        assert.deepEqual(openSync(key, iv, ad, sync), plaintext);
        assert.deepEqual(await openAsync(webKey, iv, ad, sync), plaintext);
      }
    });
  }
});

Deno.test("openSync() and openAsync() reject what fails authentication", async (t) => {
  const key = random(32);
  const webKey = await importKey(key);
  const iv = random(12);
  const ad = random(32);
  const sealed = sealSync(key, iv, ad, random(100));
  const flip = (bytes: Uint8Array, index: number) => {
    const copy = bytes.slice();
    copy[index]! ^= 1;
    return copy;
  };
  const cases: [string, Uint8Array, Uint8Array, Uint8Array, Uint8Array][] = [
    ["a modified ciphertext", key, iv, ad, flip(sealed, 3)],
    ["a modified tag", key, iv, ad, flip(sealed, sealed.length - 1)],
    ["another associated data", key, iv, flip(ad, 0), sealed],
    ["another nonce", key, flip(iv, 11), ad, sealed],
    ["another key", flip(key, 0), iv, ad, sealed],
    ["a truncated tag", key, iv, ad, sealed.subarray(0, sealed.length - 1)],
    ["fewer bytes than a tag", key, iv, ad, sealed.subarray(0, 15)],
  ];
  for (const [name, k, n, a, c] of cases) {
    await t.step(name, async () => {
      assert.throws(() => openSync(k, n, a, c), AuthenticationError);
      const otherKey = k === key ? webKey : await importKey(k);
      await assert.rejects(openAsync(otherKey, n, a, c), AuthenticationError);
    });
  }
});

Deno.test("CipherState gives the same bytes whichever way a payload is encrypted", async () => {
  const key = random(32);
  const [a, b, c] = [new CipherState(), new CipherState(), new CipherState()];
  await Promise.all([a, b, c].map((state) => state.initializeKey(key)));
  for (const size of SIZES) {
    const plaintext = random(size);
    const viaAsync = await a.encryptWithAd(new Uint8Array(0), plaintext);
    const viaSync = b.encryptWithAdSync(new Uint8Array(0), plaintext);
    assert.deepEqual(viaSync, viaAsync);
    assert.deepEqual(await c.decryptWithAd(new Uint8Array(0), viaAsync), plaintext);
  }
  // Every state went through the same nonces.
  assert.equal(a.nonce, BigInt(SIZES.length));
  assert.equal(b.nonce, a.nonce);
  assert.equal(c.nonce, a.nonce);
});

Deno.test("CipherState.decryptAt() and decryptAtSync() agree and leave n unchanged", async () => {
  const key = random(32);
  const sender = new CipherState();
  const receiver = new CipherState();
  await sender.initializeKey(key);
  await receiver.initializeKey(key);
  const small = sender.encryptWithAdSync(new Uint8Array(0), random(10));
  const large = await sender.encryptWithAd(new Uint8Array(0), random(SYNC_MAX_BYTES * 2));
  assert.deepEqual(
    receiver.decryptAtSync(new Uint8Array(0), small, 0n),
    await receiver.decryptAt(new Uint8Array(0), small, 0n),
  );
  assert.deepEqual(
    receiver.decryptAtSync(new Uint8Array(0), large, 1n),
    await receiver.decryptAt(new Uint8Array(0), large, 1n),
  );
  assert.throws(
    () => receiver.decryptAtSync(new Uint8Array(0), small, 1n),
    /failed authentication/,
  );
  await assert.rejects(receiver.decryptAt(new Uint8Array(0), large, 0n), /failed authentication/);
  assert.equal(receiver.nonce, 0n);
});
