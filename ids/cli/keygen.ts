/**
 * `ebpfmonitor keygen --out DIR`: a key pair for an agent or an IDS.
 *
 * @module
 */
import {
  formatPublicKey,
  generateIdentity,
  publicIdentity,
  writeIdentity,
} from "../../wire/secure/keys.ts";

/** Options of `keygen`. */
export interface KeygenOptions {
  /** The folder for id and id.pub. */
  out: string;
  /** Comment stored with the public key. */
  comment: string;
}

/** Writes DIR/id (mode 0600) and DIR/id.pub and prints the public key; returns the exit code. */
export async function keygen(options: KeygenOptions): Promise<number> {
  const identity = await generateIdentity(options.comment);
  const { privatePath, publicPath } = await writeIdentity(options.out, identity);
  console.error(`wrote ${privatePath} (private, mode 0600) and ${publicPath}`);
  console.log(formatPublicKey(publicIdentity(identity)));
  return 0;
}
