/**
 * The one error class with a machine-readable reason. Every layer's errors
 * extend it (a frame that is too large, a handshake refused, an agent's error
 * answer), so a caller tells them apart by `code`, not by parsing messages.
 * It lives at the bottom of the layers (wire) so that both sides import it.
 *
 * @example
 * ```ts
 * class FrameError extends CodedError<"oversized" | "truncated"> {
 *   override readonly name = "FrameError";
 * }
 * ```
 *
 * @module
 */

/** An error with a machine-readable reason (`code`) and a sentence-case message. */
export class CodedError<Code extends string = string> extends Error {
  /** Machine-readable reason. */
  readonly code: Code;

  /** Creates an error with a reason code and a sentence-case message. */
  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CodedError";
    this.code = code;
  }
}
