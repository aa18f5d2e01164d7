/**
 * The process's limit on open files (the soft `RLIMIT_NOFILE`), which bounds how many
 * connections the agent can hold while it waits for their first handshake message.
 *
 * @module
 */

/** What is assumed when `/proc/self/limits` cannot be read: the usual soft limit. */
export const ASSUMED_OPEN_FILES = 1024;

/**
 * The soft limit on open files, from `/proc/self/limits` ("Max open files"); `unlimited`
 * counts as 2^20; {@linkcode ASSUMED_OPEN_FILES} when it cannot be read.
 */
export function openFilesLimit(limitsText?: string): number {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = Deno.readTextFileSync("/proc/self/limits");
    } catch {
      return ASSUMED_OPEN_FILES;
    }
  }
  const match = /^Max open files\s+(\S+)/m.exec(text);
  if (!match) return ASSUMED_OPEN_FILES;
  if (match[1] === "unlimited") return 1 << 20;
  const value = Number(match[1]);
  return Number.isSafeInteger(value) && value > 0 ? value : ASSUMED_OPEN_FILES;
}

/**
 * Connections that may wait for handshake message 1 at once: half the open-file limit, at
 * least 64 and at most 4096. The other half stays for sessions, programs and the files the
 * agent reads.
 */
export function waitingBound(openFiles: number = openFilesLimit()): number {
  return Math.max(64, Math.min(4096, Math.floor(openFiles / 2)));
}
