/**
 * Command-line option parsers shared by ebpfmonitor's CLI (main.ts) and the
 * VM test bed's (tests/vm/cli.ts), and the runner that turns an action's
 * result into the process's exit code.
 *
 * @module
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { parseFetchMode } from "../guest.ts";

/** Parses a positive integer option value. */
export function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError("expected a positive integer");
  }
  return n;
}

/** Parses a comma-separated list of positive integers (empty: none). */
export function positiveIntList(text: string): number[] {
  return text.split(",").filter((part) => part.trim() !== "").map((part) =>
    positiveInt(part.trim())
  );
}

/** The `--fetch <mode>` option (default bulk). */
export function fetchOption(): Option {
  return new Option("--fetch <mode>", "how the IDS fetches guest memory: page, bulk or fields")
    .default("bulk")
    .argParser((text) => {
      try {
        return parseFetchMode(text);
      } catch (error) {
        throw new InvalidArgumentError((error as Error).message);
      }
    });
}

/**
 * Parses the arguments with the command that `program(setExit)` builds and
 * exits with the code its action set; an error is one line on stderr and
 * exit code 2.
 */
export async function runProgram(
  name: string,
  program: (setExit: (code: number) => void) => Command,
): Promise<never> {
  let exitCode = 0;
  try {
    await program((code) => exitCode = code).parseAsync(Deno.args, { from: "user" });
  } catch (error) {
    console.error(`${name}: ${error instanceof Error ? error.message : error}`);
    exitCode = 2;
  }
  Deno.exit(exitCode);
}
