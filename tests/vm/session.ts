/**
 * How the bed's IDS reaches the bed's agent: over the secure channel, with the
 * bed's keys (tests/vm/keys.ts).
 *
 * @module
 */
import { Guest } from "../../ids/guest.ts";
import { clientSecurity, type ConnectOptions } from "../../ids/cli/session.ts";
import { bedKeys } from "./keys.ts";

/** The `ids` command options that reach a bed guest's agent (keys, no URL). */
export async function bedConnectOptions(): Promise<ConnectOptions> {
  const files = await bedKeys();
  return { key: files.idsKey, agentKey: files.agentPublic };
}

/** Opens the IDS's {@linkcode Guest} on the bed agent at `url`. */
export async function openGuest(url: string): Promise<Guest> {
  return Guest.open(url, await clientSecurity(await bedConnectOptions()));
}

/** The CLI flags for the bed's keys. */
export async function cliSecurityArgs(): Promise<string[]> {
  const files = await bedKeys();
  return ["--key", files.idsKey, "--agent-key", files.agentPublic];
}
