/**
 * The bed's keys: a key pair for the agent and one for the IDS, kept in the
 * bed's cache. The agent's private key and the IDS's public key go into every
 * guest image; the IDS side uses the other halves.
 *
 * @module
 */
import { generateIdentity, writeIdentity } from "../../wire/secure/keys.ts";

/** Where the bed keeps its keys. */
export const KEY_DIR = new URL("../../.cache/vm/keys", import.meta.url).pathname;

/** The key files of the bed. */
export interface BedKeys {
  /** The agent's private key (goes into the image). */
  agentKey: string;
  /** The agent's public key (the IDS pins it). */
  agentPublic: string;
  /** The IDS's private key. */
  idsKey: string;
  /** The IDS's public key (goes into the image: the agent trusts it). */
  idsPublic: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

let keys: Promise<BedKeys> | undefined;

/** The bed's keys, made on first use. */
export function bedKeys(): Promise<BedKeys> {
  keys ??= (async () => {
    const files: BedKeys = {
      agentKey: `${KEY_DIR}/agent/id`,
      agentPublic: `${KEY_DIR}/agent/id.pub`,
      idsKey: `${KEY_DIR}/ids/id`,
      idsPublic: `${KEY_DIR}/ids/id.pub`,
    };
    for (const who of ["agent", "ids"] as const) {
      if (!await exists(`${KEY_DIR}/${who}/id`)) {
        await Deno.remove(`${KEY_DIR}/${who}`, { recursive: true }).catch(() => {});
        await writeIdentity(`${KEY_DIR}/${who}`, await generateIdentity(`vm bed ${who}`));
      }
    }
    return files;
  })();
  return keys;
}
