/**
 * Progress for people: one line on stderr, rewritten in place, while a
 * command connects, reads the guest's profile, walks its lists, or runs a
 * benchmark step. Only when stderr is a terminal; otherwise (a pipe, a file,
 * a test) nothing at all, and never anything on stdout. The lines hold only
 * the IDS's own words and numbers, never text from the guest.
 *
 * @module
 */

/** Reports what a command is doing. */
export interface Progress {
  /** Shows `text` as the current step (replacing the last one). */
  step(text: string): void;
  /** Clears the line, before the command prints its result or a note. */
  done(): void;
}

/** Where progress goes: stderr, or a test's stand-in. */
export interface ProgressSink {
  /** Whether a person watches it. */
  isTerminal(): boolean;
  /** Writes bytes. */
  writeSync(bytes: Uint8Array): number;
}

/** Progress that reports nothing. */
export const SILENT: Progress = { step() {}, done() {} };

/** Erase the line and return to its start (ANSI: carriage return, erase in line). */
const CLEAR = "\r\x1b[K";

/**
 * Progress on `sink` (default stderr) under `name`, or {@linkcode SILENT} when
 * `sink` is not a terminal.
 */
export function progressOn(name: string, sink: ProgressSink = Deno.stderr): Progress {
  if (!sink.isTerminal()) return SILENT;
  const encoder = new TextEncoder();
  let shown = false;
  const write = (text: string) => {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.length;) at += sink.writeSync(bytes.subarray(at));
  };
  return {
    step(text) {
      write(`${CLEAR}${name}: ${text}...`);
      shown = true;
    },
    done() {
      if (shown) write(CLEAR);
      shown = false;
    },
  };
}
