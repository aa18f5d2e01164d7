/**
 * Guest-supplied text made safe for an operator's terminal: a process name,
 * a module name or an agent's error message may hold terminal escapes
 * (`\x1b[1A\x1b[2K` moves the cursor up and erases the line the IDS printed)
 * or characters that reorder what follows. Every such character is shown as
 * an escape instead, so what the terminal shows is what the guest sent.
 *
 * @example
 * ```ts
 * printable("evil\x1b[2K"); // "evil\\x1b[2K"
 * ```
 * @module
 */

/**
 * C0 controls, DEL, C1 controls (0x9b is CSI on some terminals), the line and
 * paragraph separators, and the bidirectional overrides and isolates.
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** What JSON.stringify leaves raw in strings (it escapes C0 controls itself; its own whitespace stays). */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every control, separator and bidi override shown as `\xNN` or `\uNNNN`. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/**
 * JSON text with the characters JSON.stringify leaves raw but a terminal acts
 * on (DEL, C1 controls, separators, bidi overrides) written as `\uNNNN`
 * escapes: still the same JSON value.
 */
export function terminalSafeJson(json: string): string {
  return json.replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
