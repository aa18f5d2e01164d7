/**
 * Identities and their key files.
 *
 * An identity is an X25519 key pair (the Noise static key of the secure channel) and an Ed25519
 * key pair (signs eBPF objects). On disk, one line of text each:
 *
 * ```text
 * dir/id      (mode 0600)  ebpfmonitor-id-private-v1 x25519:<base64 private> ed25519:<base64 seed> [comment]
 * dir/id.pub  (mode 0644)  ebpfmonitor-id-v1 x25519:<base64 public> ed25519:<base64 public> [comment]
 * ```
 *
 * A trusted-keys file is `id.pub` lines, one per trusted peer; blank lines and lines starting
 * with `#` are ignored.
 *
 * @example
 * ```ts
 * const ids = await generateIdentity("ids@host");
 * const { privatePath, publicPath } = await writeIdentity("/etc/ebpfmonitor", ids);
 * const again = await readIdentity(privatePath);
 * const trusted = await readTrustedKeys("/etc/ebpfmonitor/trusted_ids");
 * ```
 *
 * @module
 */

import { equalBytes } from "../bytes.ts";
import { join } from "node:path";
import {
  ed25519PublicKey,
  fromBase64,
  generateEd25519KeyPair,
  generateX25519KeyPair,
  type KeyPair,
  toBase64,
  x25519PublicKey,
} from "./_crypto.ts";

export type { KeyPair } from "./_crypto.ts";

/** First word of a public key line. */
export const PUBLIC_KEY_TAG = "ebpfmonitor-id-v1";

/** First word of a private key file. */
export const PRIVATE_KEY_TAG = "ebpfmonitor-id-private-v1";

/** File name of the private key in an identity directory; the public key adds `.pub`. */
export const IDENTITY_FILE = "id";

/** A peer's public keys. */
export interface PublicIdentity {
  /** X25519 static public key (Noise). */
  noise: Uint8Array;
  /** Ed25519 public key (object signatures). */
  signing: Uint8Array;
  /** Free text after the keys (may be empty). */
  comment: string;
}

/** This side's key pairs. */
export interface Identity {
  /** X25519 static key pair (Noise). */
  noise: KeyPair;
  /** Ed25519 key pair (object signatures); `privateKey` is the 32-byte seed. */
  signing: KeyPair;
  /** Free text (host, role...), one line. */
  comment: string;
}

/** Error raised for unreadable, malformed or unsafe key files. */
export class KeyFileError extends Error {
  /** Creates a key file error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KeyFileError";
  }
}

function checkComment(comment: string): void {
  if (/[\r\n]/.test(comment)) throw new KeyFileError("Key comment must be a single line");
}

/** A new identity with random X25519 and Ed25519 key pairs. */
export async function generateIdentity(comment = ""): Promise<Identity> {
  checkComment(comment);
  return {
    noise: await generateX25519KeyPair(),
    signing: await generateEd25519KeyPair(),
    comment,
  };
}

/** The public half of an identity. */
export function publicIdentity(identity: Identity): PublicIdentity {
  return {
    noise: identity.noise.publicKey.slice(),
    signing: identity.signing.publicKey.slice(),
    comment: identity.comment,
  };
}

/** Whether two public identities have the same keys (comments are ignored). */
export function sameKeys(a: PublicIdentity, b: PublicIdentity): boolean {
  return equalBytes(a.noise, b.noise) && equalBytes(a.signing, b.signing);
}

function line(tag: string, noise: Uint8Array, signing: Uint8Array, comment: string): string {
  const keys = `${tag} x25519:${toBase64(noise)} ed25519:${toBase64(signing)}`;
  return comment === "" ? keys : `${keys} ${comment}`;
}

/** The `id.pub` line of a public identity (no newline). */
export function formatPublicKey(identity: PublicIdentity): string {
  checkComment(identity.comment);
  return line(PUBLIC_KEY_TAG, identity.noise, identity.signing, identity.comment);
}

interface ParsedLine {
  x25519: Uint8Array;
  ed25519: Uint8Array;
  comment: string;
}

function parseLine(text: string, tag: string, where: string): ParsedLine {
  const match = /^(\S+) x25519:(\S+) ed25519:(\S+)(?: (.*))?$/.exec(text.trim());
  if (match === null || match[1] !== tag) {
    throw new KeyFileError(
      `${where} is not an ebpfmonitor key: expected "${tag} x25519:<base64> ed25519:<base64> [comment]"`,
    );
  }
  const x25519 = fromBase64(match[2]!);
  if (x25519 === null || x25519.length !== 32) {
    throw new KeyFileError(`${where} has an invalid x25519 key: expected 32 bytes in base64`);
  }
  const ed25519 = fromBase64(match[3]!);
  if (ed25519 === null || ed25519.length !== 32) {
    throw new KeyFileError(`${where} has an invalid ed25519 key: expected 32 bytes in base64`);
  }
  return { x25519, ed25519, comment: match[4] ?? "" };
}

/**
 * Parses one `id.pub` line; `where` names its origin in errors (e.g. "/x/id.pub line 3").
 *
 * @throws {KeyFileError} for a malformed line.
 */
export function parsePublicKey(text: string, where = "Public key"): PublicIdentity {
  const parsed = parseLine(text, PUBLIC_KEY_TAG, where);
  return { noise: parsed.x25519, signing: parsed.ed25519, comment: parsed.comment };
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new KeyFileError(`Cannot read ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Reads a public key file (`id.pub`: one line).
 *
 * @throws {KeyFileError} if the file cannot be read or is malformed.
 */
export async function readPublicKey(path: string): Promise<PublicIdentity> {
  const lines = (await readText(path, "public key")).split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1) {
    throw new KeyFileError(
      `Public key ${path} must hold exactly one key line, found ${lines.length}`,
    );
  }
  return parsePublicKey(lines[0]!, `Public key ${path}`);
}

/** Who, of group and others, the permission bits `group` and `others` of `mode` let in. */
function whoMay(mode: number, group: number, others: number): string | undefined {
  const names = [mode & group ? "group" : "", mode & others ? "others" : ""].filter((n) => n);
  return names.length === 0 ? undefined : names.join(" and ");
}

/** A file's text and permission bits, both from the same open file. */
async function readWithMode(
  path: string,
  what: string,
): Promise<{ text: string; mode: number | null }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    throw new KeyFileError(`Cannot read ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  try {
    // The mode of the file actually opened, not of whatever the path names later.
    const info = await file.stat();
    if (!info.isFile) {
      throw new KeyFileError(
        `${what[0]!.toUpperCase()}${what.slice(1)} ${path} is not a regular file`,
      );
    }
    const text = new TextDecoder().decode(await new Response(file.readable).arrayBuffer());
    return { text, mode: info.mode === null ? null : info.mode & 0o777 };
  } catch (error) {
    if (error instanceof KeyFileError) throw error;
    throw new KeyFileError(`Cannot read ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  } finally {
    try {
      file.close();
    } catch {
      // Closed by reading to the end.
    }
  }
}

const octal = (mode: number) => mode.toString(8).padStart(4, "0");

/**
 * Reads a trusted-keys file: `id.pub` lines; blank lines and `#` comments are ignored. A file
 * that group or others can write is refused: whoever can write it can make the agent trust
 * their key.
 *
 * @throws {KeyFileError} if the file cannot be read, a line is malformed (naming the line), or
 * it is writable by group or others (e.g. "Trusted keys file /x/ids.pub is writable by group
 * and others (mode 0666): chmod 644 it").
 */
export async function readTrustedKeys(path: string): Promise<PublicIdentity[]> {
  const { text, mode } = await readWithMode(path, "trusted keys file");
  const keys: PublicIdentity[] = [];
  for (const [index, raw] of text.split("\n").entries()) {
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    keys.push(parsePublicKey(trimmed, `Trusted keys file ${path} line ${index + 1}`));
  }
  const writers = mode === null ? undefined : whoMay(mode, 0o020, 0o002);
  if (writers !== undefined) {
    throw new KeyFileError(
      `Trusted keys file ${path} is writable by ${writers} (mode ${octal(mode!)}): chmod 644 it`,
    );
  }
  return keys;
}

/**
 * Reads a private key file (`id`). Its format is checked first (a public key given by mistake
 * is named as such), then its mode: a file that group or others can read or write is refused.
 *
 * @throws {KeyFileError} e.g. "Private key /x/id is readable by group and others (mode 0644):
 * chmod 600 it", or for a malformed file.
 */
export async function readIdentity(path: string): Promise<Identity> {
  const { text, mode } = await readWithMode(path, "private key");
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (lines.length !== 1) {
    throw new KeyFileError(
      `Private key ${path} must hold exactly one key line, found ${lines.length}`,
    );
  }
  if (lines[0]!.trim().startsWith(`${PUBLIC_KEY_TAG} `)) {
    throw new KeyFileError(
      `Private key ${path} is a public key (an id.pub): give the private key, DIR/id, made by keygen beside it`,
    );
  }
  const parsed = parseLine(lines[0]!, PRIVATE_KEY_TAG, `Private key ${path}`);
  if (mode !== null) {
    const readers = whoMay(mode, 0o040, 0o004);
    if (readers !== undefined) {
      throw new KeyFileError(
        `Private key ${path} is readable by ${readers} (mode ${octal(mode)}): chmod 600 it`,
      );
    }
    const writers = whoMay(mode, 0o020, 0o002);
    if (writers !== undefined) {
      throw new KeyFileError(
        `Private key ${path} is writable by ${writers} (mode ${octal(mode)}): chmod 600 it`,
      );
    }
  }
  return {
    noise: { publicKey: await x25519PublicKey(parsed.x25519), privateKey: parsed.x25519 },
    signing: { publicKey: await ed25519PublicKey(parsed.ed25519), privateKey: parsed.ed25519 },
    comment: parsed.comment,
  };
}

/**
 * Writes `identity` to `dir/id` (private, created with mode 0600 and never replaced) and
 * `dir/id.pub` (public, mode 0644). Creates `dir` (mode 0700) if missing.
 *
 * @throws {KeyFileError} if `dir/id` already exists or a file cannot be written.
 */
export async function writeIdentity(
  dir: string,
  identity: Identity,
): Promise<{ privatePath: string; publicPath: string }> {
  checkComment(identity.comment);
  const privatePath = join(dir, IDENTITY_FILE);
  const publicPath = `${privatePath}.pub`;
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new KeyFileError(`Cannot create key directory ${dir}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const privateText = line(
    PRIVATE_KEY_TAG,
    identity.noise.privateKey,
    identity.signing.privateKey,
    identity.comment,
  ) + "\n";
  let file: Deno.FsFile;
  try {
    // createNew is O_CREAT|O_EXCL: never follows a planted symlink, never reuses a file that
    // may be readable by others; the mode applies at creation, so it is never world-readable.
    file = await Deno.open(privatePath, { write: true, createNew: true, mode: 0o600 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new KeyFileError(
        `Private key ${privatePath} already exists: remove it first or choose another directory`,
        { cause: error },
      );
    }
    throw new KeyFileError(
      `Cannot create private key ${privatePath}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  try {
    const bytes = new TextEncoder().encode(privateText);
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } catch (error) {
    file.close();
    await Deno.remove(privatePath).catch(() => {});
    throw new KeyFileError(`Cannot write private key ${privatePath}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  file.close();
  try {
    await Deno.writeTextFile(publicPath, formatPublicKey(publicIdentity(identity)) + "\n", {
      mode: 0o644,
    });
    await Deno.chmod(publicPath, 0o644);
  } catch (error) {
    throw new KeyFileError(`Cannot write public key ${publicPath}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { privatePath, publicPath };
}
