// The MAC ending handshake message 1, checked before any Diffie-Hellman.
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { appendMac1, checkMac1, MAC1_BYTES } from "../../../wire/secure/mac1.ts";

const AGENT = new Uint8Array(32).fill(0xa5);
const OTHER = new Uint8Array(32).fill(0x5a);
const MESSAGE = new Uint8Array(108).map((_, i) => i);

Deno.test("appendMac1() appends HMAC-SHA-256 under SHA-256(label || key), cut to 16 bytes", () => {
  const sealed = appendMac1(MESSAGE, AGENT);
  assert.equal(sealed.length, MESSAGE.length + MAC1_BYTES);
  assert.deepEqual(sealed.subarray(0, MESSAGE.length), MESSAGE);
  const key = createHash("sha256").update("ebpfmonitor-mac1-v1\0").update(AGENT).digest();
  const mac = createHmac("sha256", key).update(MESSAGE).digest().subarray(0, 16);
  assert.deepEqual([...sealed.subarray(MESSAGE.length)], [...mac]);
});

Deno.test("checkMac1() returns message 1 for the right key and null otherwise", async (t) => {
  const sealed = appendMac1(MESSAGE, AGENT);
  await t.step("right key", () => assert.deepEqual(checkMac1(sealed, AGENT), MESSAGE));
  await t.step("another responder's key", () => assert.equal(checkMac1(sealed, OTHER), null));
  await t.step("one bit flipped, in the message or in the MAC", () => {
    for (const at of [0, 50, sealed.length - 1]) {
      const changed = sealed.slice();
      changed[at]! ^= 1;
      assert.equal(checkMac1(changed, AGENT), null, `bit at ${at}`);
    }
  });
  await t.step(
    "shorter than a MAC",
    () => assert.equal(checkMac1(new Uint8Array(15), AGENT), null),
  );
});
