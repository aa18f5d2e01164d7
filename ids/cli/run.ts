/**
 * The runner of a command line (ebpfmonitor's main.ts, the VM test bed's
 * tests/vm/cli.ts): parses the arguments, runs the action, and turns what
 * happened into the process's exit code and at most one line of error.
 *
 * Exit codes: {@linkcode EXIT_OK} success, {@linkcode EXIT_ALERTS} a check
 * found alerts, {@linkcode EXIT_ERROR} any error, usage errors included. An
 * error is one line on stderr (`NAME: why`; a usage error adds "see
 * 'COMMAND --help'"); when the arguments ask for `--json`, stdout gets
 * `{"error":{"code","message"}}` too, so a script reading stdout never gets
 * nothing.
 *
 * @module
 */
import { type Command, CommanderError } from "commander";
import { printable } from "../printable.ts";

/** Exit code of success. */
export const EXIT_OK = 0;
/** Exit code of a check that found alerts (`ids check`, `ids attest`'s failed report). */
export const EXIT_ALERTS = 1;
/** Exit code of every error: usage, connection, guest, files. */
export const EXIT_ERROR = 2;

/** A command line the parser rejected, and the (sub)command it was parsing. */
export class UsageError extends Error {
  /** The command's path, e.g. `ebpfmonitor ids ps`. */
  readonly command: string;
  /** @param command the command's path @param message why, in one line */
  constructor(command: string, message: string) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** The path of a command from the root: `ebpfmonitor ids ps`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Commander's error text as one line, without its `error: ` prefix. */
function oneLine(message: string): string {
  return message.replace(/^error: /, "").split("\n").map((line) => line.trim()).filter((line) =>
    line !== ""
  ).join(" ");
}

/**
 * Makes `root` and every subcommand throw a {@linkcode UsageError} instead of
 * printing and exiting; `--help` and `--version` still print on stdout.
 */
function throwOnUsageErrors(root: Command): void {
  const visit = (command: Command) => {
    command.configureOutput({ writeErr: () => {}, outputError: () => {} });
    command.exitOverride((error: CommanderError) => {
      if (error.exitCode === 0) throw error; // --help, --version
      const message = error.code === "commander.help" ? "missing command" : oneLine(error.message);
      throw new UsageError(commandPath(command), message);
    });
    for (const sub of command.commands) visit(sub);
  };
  visit(root);
}

/**
 * The machine-readable code of an error: `usage` for the command line, the
 * error's own snake_case `code` (a transport's `connect_failed`, an agent's
 * `timeout`...), else `error`.
 */
export function errorCode(error: unknown): string {
  if (error instanceof UsageError) return "usage";
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[a-z][a-z0-9_]*$/.test(code) ? code : "error";
}

/**
 * The one line an error is reported with (after `NAME: `), safe for a
 * terminal: an error may quote what the guest sent.
 */
export function errorLine(error: unknown): string {
  if (error instanceof UsageError) return `${error.message} (see '${error.command} --help')`;
  const text = error instanceof Error ? error.message : String(error);
  return printable(
    text.split("\n").map((line) => line.trim()).filter((line) => line !== "").join(" "),
  );
}

/** Whether the arguments ask for JSON output (`--json` before any `--`). */
export function wantsJson(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end === -1 ? args : args.slice(0, end)).includes("--json");
}

/** Where the runner writes; tests capture it. */
export interface RunOutput {
  /** One line on stdout. */
  out(line: string): void;
  /** One line on stderr. */
  err(line: string): void;
}

const CONSOLE: RunOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/**
 * Parses `args` with the command that `program(setExit)` builds, runs its
 * action and returns the exit code the action set ({@linkcode EXIT_OK} when it
 * set none); an error of the parser or the action is reported and gives
 * {@linkcode EXIT_ERROR}.
 */
export async function runCommandLine(
  name: string,
  program: (setExit: (code: number) => void) => Command,
  args: readonly string[],
  output: RunOutput = CONSOLE,
): Promise<number> {
  let exitCode = EXIT_OK;
  try {
    const root = program((code) => exitCode = code);
    throwOnUsageErrors(root);
    await root.parseAsync([...args], { from: "user" });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) return EXIT_OK;
    const line = errorLine(error);
    output.err(`${name}: ${line}`);
    if (wantsJson(args)) {
      output.out(JSON.stringify({ error: { code: errorCode(error), message: line } }));
    }
    return EXIT_ERROR;
  }
}

/** {@linkcode runCommandLine} over `Deno.args`, then exits with its code. */
export async function runProgram(
  name: string,
  program: (setExit: (code: number) => void) => Command,
): Promise<never> {
  Deno.exit(await runCommandLine(name, program, Deno.args));
}
