import assert from "node:assert/strict";
import {
  ed25519PublicKey,
  ed25519Sign,
  ed25519Verify,
  hex,
  toHex,
} from "../../../wire/secure/_crypto.ts";
import { generateIdentity, publicIdentity } from "../../../wire/secure/keys.ts";
import {
  OBJECT_SIGNATURE_DOMAIN,
  SignatureError,
  signObject,
  verifyObject,
} from "../../../wire/secure/sign.ts";

// RFC 8032 section 7.1, tests 1 to 3.
const RFC8032 = [
  {
    name: "test 1 (empty message)",
    secretKey: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065" +
      "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    name: "test 2 (one byte)",
    secretKey: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
      "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    name: "test 3 (two bytes)",
    secretKey: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac" +
      "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
];

Deno.test("raw Ed25519 matches the RFC 8032 test vectors", async (t) => {
  for (const vector of RFC8032) {
    await t.step(vector.name, async () => {
      const seed = hex(vector.secretKey);
      assert.equal(toHex(await ed25519PublicKey(seed)), vector.publicKey);
      const signature = await ed25519Sign(seed, hex(vector.message));
      assert.equal(toHex(signature), vector.signature);
      assert.ok(await ed25519Verify(hex(vector.publicKey), hex(vector.message), signature));
      const wrong = signature.slice();
      wrong[10]! ^= 1;
      assert.equal(await ed25519Verify(hex(vector.publicKey), hex(vector.message), wrong), false);
    });
  }
});

Deno.test("signObject() signs SHA-256 of the domain prefix and the object bytes", async () => {
  const ids = await generateIdentity("ids");
  const object = new TextEncoder().encode("\x7fELF fake object");
  const signature = await signObject(ids, object);
  assert.equal(signature.length, 64);
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new Uint8Array([...new TextEncoder().encode(OBJECT_SIGNATURE_DOMAIN), ...object]),
    ),
  );
  assert.ok(await ed25519Verify(ids.signing.publicKey, digest, signature));
  // Not a plain signature over the bytes: no cross-protocol reuse.
  assert.equal(await ed25519Verify(ids.signing.publicKey, object, signature), false);
});

Deno.test("verifyObject() returns the trusted key that signed the object", async () => {
  const first = await generateIdentity("first");
  const second = await generateIdentity("second");
  const object = new Uint8Array(4096).map((_, i) => i * 7);
  const trusted = [publicIdentity(first), publicIdentity(second)];
  const signer = await verifyObject(trusted, object, await signObject(second, object));
  assert.equal(signer.comment, "second");
});

Deno.test("verifyObject() rejects tampered objects, signatures and untrusted signers", async (t) => {
  const ids = await generateIdentity("ids");
  const intruder = await generateIdentity("intruder");
  const object = new Uint8Array(1000).fill(0x42);
  const signature = await signObject(ids, object);
  const trusted = [publicIdentity(ids)];
  const notTrusted = /^eBPF object walk\.bpf\.o is not signed by a trusted IDS key \(tried .+\)$/;
  const rejects = (promise: Promise<unknown>, message: RegExp) =>
    assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof SignatureError);
      assert.match(error.message, message);
      return true;
    });

  await t.step("one flipped bit in the object", async () => {
    const tampered = object.slice();
    tampered[500]! ^= 0x01;
    await rejects(verifyObject(trusted, tampered, signature, "walk.bpf.o"), notTrusted);
  });
  await t.step("an appended byte", async () => {
    const longer = new Uint8Array([...object, 0]);
    await rejects(verifyObject(trusted, longer, signature, "walk.bpf.o"), notTrusted);
  });
  await t.step("one flipped bit in the signature", async () => {
    const bad = signature.slice();
    bad[63]! ^= 0x80;
    await rejects(verifyObject(trusted, object, bad, "walk.bpf.o"), notTrusted);
  });
  await t.step("a signature by an untrusted key", async () => {
    const forged = await signObject(intruder, object);
    await rejects(verifyObject(trusted, object, forged, "walk.bpf.o"), notTrusted);
  });
  await t.step("no trusted keys at all", async () => {
    await rejects(
      verifyObject([], object, signature, "walk.bpf.o"),
      /is not signed by a trusted IDS key \(no IDS key is trusted\)$/,
    );
  });
  await t.step("a truncated signature", async () => {
    await rejects(
      verifyObject(trusted, object, signature.subarray(0, 63), "walk.bpf.o"),
      /^eBPF object walk\.bpf\.o has a malformed signature \(63 bytes, expected 64\)$/,
    );
  });
});
