/**
 * Opens the guest a command works on: the agent at --connect, or a local agent
 * started for the command and stopped after it.
 *
 * @module
 */
import { Guest } from "../guest.ts";
import { type LocalAgent, startLocalAgent } from "../local_agent.ts";

/** Runs `body` with the guest at `connect` (or a local agent when absent), then closes all. */
export async function withGuest<T>(
  connect: string | undefined,
  body: (guest: Guest, local: LocalAgent | undefined) => Promise<T>,
): Promise<T> {
  const local = connect === undefined ? await startLocalAgent() : undefined;
  try {
    const guest = await Guest.open(connect ?? local!.url);
    try {
      return await body(guest, local);
    } finally {
      guest.close();
    }
  } finally {
    await local?.stop();
  }
}
