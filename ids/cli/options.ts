/**
 * Command-line option parsers shared by ebpfmonitor's CLI (main.ts) and the
 * VM test bed's (tests/vm/cli.ts).
 *
 * @module
 */
import { InvalidArgumentError, Option } from "commander";
import { parseFetchMode } from "../guest.ts";

/** Parses a positive integer option value. */
export function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError("Expected a positive integer");
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
