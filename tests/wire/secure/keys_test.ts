import assert from "node:assert/strict";
import { join } from "node:path";
import { toBase64 } from "../../../wire/secure/_crypto.ts";
import {
  formatPublicKey,
  generateIdentity,
  KeyFileError,
  parsePublicKey,
  publicIdentity,
  readIdentity,
  readPublicKey,
  readTrustedKeys,
  sameKeys,
  writeIdentity,
} from "../../../wire/secure/keys.ts";
import { keyPairFromPrivateKey } from "../../../wire/secure/noise.ts";

async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "ebpfmonitor-keys-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

function keyFileError(message: string | RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof KeyFileError, `expected a KeyFileError, got ${error}`);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  };
}

Deno.test("generateIdentity() makes consistent X25519 and Ed25519 key pairs", async () => {
  const identity = await generateIdentity("ids@host");
  for (const pair of [identity.noise, identity.signing]) {
    assert.equal(pair.publicKey.length, 32);
    assert.equal(pair.privateKey.length, 32);
  }
  const derived = await keyPairFromPrivateKey(identity.noise.privateKey);
  assert.deepEqual(derived.publicKey, identity.noise.publicKey);
  assert.notDeepEqual((await generateIdentity()).noise.publicKey, identity.noise.publicKey);
});

Deno.test("writeIdentity() writes id with mode 0600 and id.pub that read back", async () => {
  await using dir = await tempDir();
  const identity = await generateIdentity("agent on guest-1");
  const { privatePath, publicPath } = await writeIdentity(join(dir.path, "keys"), identity);
  assert.equal(privatePath, join(dir.path, "keys", "id"));
  assert.equal(publicPath, join(dir.path, "keys", "id.pub"));
  assert.equal((await Deno.stat(privatePath)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(publicPath)).mode! & 0o777, 0o644);
  assert.equal((await Deno.stat(join(dir.path, "keys"))).mode! & 0o777, 0o700);

  const text = await Deno.readTextFile(publicPath);
  assert.equal(
    text,
    `ebpfmonitor-id-v1 x25519:${toBase64(identity.noise.publicKey)} ed25519:${
      toBase64(identity.signing.publicKey)
    } agent on guest-1\n`,
  );
  assert.deepEqual(await readIdentity(privatePath), identity);
  const pub = await readPublicKey(publicPath);
  assert.deepEqual(pub, publicIdentity(identity));
  assert.ok(sameKeys(pub, publicIdentity(identity)));
});

Deno.test("writeIdentity() creates the private key 0600 even under a permissive umask", async () => {
  await using dir = await tempDir();
  const previous = Deno.umask(0);
  try {
    const { privatePath } = await writeIdentity(dir.path, await generateIdentity());
    assert.equal((await Deno.stat(privatePath)).mode! & 0o777, 0o600);
  } finally {
    Deno.umask(previous);
  }
});

Deno.test("writeIdentity() refuses to overwrite an existing private key", async () => {
  await using dir = await tempDir();
  await writeIdentity(dir.path, await generateIdentity());
  await assert.rejects(
    writeIdentity(dir.path, await generateIdentity()),
    keyFileError(
      `Private key ${
        join(dir.path, "id")
      } already exists: remove it first or choose another directory`,
    ),
  );
});

Deno.test("writeIdentity() does not follow a symlink planted at the private key path", async () => {
  await using dir = await tempDir();
  const target = join(dir.path, "elsewhere");
  await Deno.symlink(target, join(dir.path, "id"));
  await assert.rejects(writeIdentity(dir.path, await generateIdentity()), KeyFileError);
  await assert.rejects(Deno.stat(target), Deno.errors.NotFound);
});

Deno.test("readIdentity() refuses a private key readable or writable by group or others, naming which", async (t) => {
  await using dir = await tempDir();
  const { privatePath } = await writeIdentity(dir.path, await generateIdentity());
  const cases: [number, string][] = [
    [0o644, `Private key ${privatePath} is readable by group and others (mode 0644): chmod 600 it`],
    [0o640, `Private key ${privatePath} is readable by group (mode 0640): chmod 600 it`],
    [0o604, `Private key ${privatePath} is readable by others (mode 0604): chmod 600 it`],
    [0o620, `Private key ${privatePath} is writable by group (mode 0620): chmod 600 it`],
    [0o602, `Private key ${privatePath} is writable by others (mode 0602): chmod 600 it`],
    [0o666, `Private key ${privatePath} is readable by group and others (mode 0666): chmod 600 it`],
  ];
  for (const [mode, message] of cases) {
    await t.step(`mode ${mode.toString(8)}`, async () => {
      await Deno.chmod(privatePath, mode);
      await assert.rejects(readIdentity(privatePath), keyFileError(message));
    });
  }
  await Deno.chmod(privatePath, 0o400);
  await readIdentity(privatePath);
});

Deno.test("readTrustedKeys() refuses a file writable by group or others, naming which", async (t) => {
  await using dir = await tempDir();
  const { publicPath } = await writeIdentity(dir.path, await generateIdentity("ids"));
  const cases: [number, string][] = [
    [
      0o666,
      `Trusted keys file ${publicPath} is writable by group and others (mode 0666): chmod 644 it`,
    ],
    [0o664, `Trusted keys file ${publicPath} is writable by group (mode 0664): chmod 644 it`],
    [0o646, `Trusted keys file ${publicPath} is writable by others (mode 0646): chmod 644 it`],
  ];
  for (const [mode, message] of cases) {
    await t.step(`mode ${mode.toString(8)}`, async () => {
      await Deno.chmod(publicPath, mode);
      await assert.rejects(readTrustedKeys(publicPath), keyFileError(message));
    });
  }
  await t.step("mode 0644 and 0444 are fine", async () => {
    for (const mode of [0o644, 0o444]) {
      await Deno.chmod(publicPath, mode);
      assert.equal((await readTrustedKeys(publicPath)).length, 1);
    }
  });
});

Deno.test("readIdentity() explains a missing or malformed private key", async (t) => {
  await using dir = await tempDir();
  const path = join(dir.path, "id");
  await t.step("missing", async () => {
    await assert.rejects(readIdentity(path), keyFileError(/^Cannot read private key .*\/id: /));
  });
  const write = (text: string) => Deno.writeTextFile(path, text, { mode: 0o600 });
  await t.step("a public key where the private key belongs", async () => {
    const identity = await generateIdentity();
    await write(formatPublicKey(publicIdentity(identity)) + "\n");
    await assert.rejects(
      readIdentity(path),
      keyFileError(
        `Private key ${path} is a public key (an id.pub): give the private key, DIR/id, made by keygen beside it`,
      ),
    );
  });
  await t.step("a public key of mode 0644: its format is named, not its mode", async () => {
    await Deno.chmod(path, 0o644);
    await assert.rejects(readIdentity(path), keyFileError(/ is a public key \(an id\.pub\)/));
    await Deno.chmod(path, 0o600);
  });
  await t.step("something else entirely", async () => {
    await write("ssh-ed25519 AAAA user@host\n");
    await assert.rejects(
      readIdentity(path),
      keyFileError(
        `Private key ${path} is not an ebpfmonitor key: expected "ebpfmonitor-id-private-v1 x25519:<base64> ed25519:<base64> [comment]"`,
      ),
    );
  });
  await t.step("a short key", async () => {
    await write(`ebpfmonitor-id-private-v1 x25519:AAAA ed25519:${toBase64(new Uint8Array(32))}\n`);
    await assert.rejects(
      readIdentity(path),
      keyFileError(`Private key ${path} has an invalid x25519 key: expected 32 bytes in base64`),
    );
  });
  await t.step("two key lines", async () => {
    const k = toBase64(new Uint8Array(32).fill(1));
    const keyLine = `ebpfmonitor-id-private-v1 x25519:${k} ed25519:${k}\n`;
    await write(keyLine + keyLine);
    await assert.rejects(
      readIdentity(path),
      keyFileError(`Private key ${path} must hold exactly one key line, found 2`),
    );
  });
});

Deno.test("parsePublicKey() reads a line and rejects bad base64", () => {
  const identity = publicIdentity({
    noise: { publicKey: new Uint8Array(32).fill(1), privateKey: new Uint8Array(32) },
    signing: { publicKey: new Uint8Array(32).fill(2), privateKey: new Uint8Array(32) },
    comment: "ids on host-a",
  });
  const good = formatPublicKey(identity);
  assert.deepEqual(parsePublicKey(good), identity);
  assert.throws(
    () => parsePublicKey(good.replace("x25519:", "x25519:!")),
    keyFileError("Public key has an invalid x25519 key: expected 32 bytes in base64"),
  );
  assert.throws(
    () => parsePublicKey(good.replace("ed25519:", "ed25519:AAAA"), "Key line 4"),
    keyFileError("Key line 4 has an invalid ed25519 key: expected 32 bytes in base64"),
  );
});

Deno.test("readTrustedKeys() reads id.pub lines and skips blanks and comments", async () => {
  await using dir = await tempDir();
  const a = publicIdentity(await generateIdentity("ids-a"));
  const b = publicIdentity(await generateIdentity("ids-b"));
  const path = join(dir.path, "trusted");
  await Deno.writeTextFile(
    path,
    `# IDS keys allowed to connect\n\n${formatPublicKey(a)}\n  ${formatPublicKey(b)}\n`,
  );
  assert.deepEqual(await readTrustedKeys(path), [a, b]);
  await Deno.writeTextFile(path, `${formatPublicKey(a)}\nnot a key\n`);
  await assert.rejects(
    readTrustedKeys(path),
    keyFileError(/^Trusted keys file .*trusted line 2 is not an ebpfmonitor key/),
  );
});
