// The command-line runner: exit codes and error lines exactly as README says, through main.ts's
// real command tree (usage errors are found before any action runs, so nothing connects).
import assert from "node:assert/strict";
import { Command } from "commander";
import { program } from "../../../main.ts";
import { TransportError } from "../../../wire/mod.ts";
import {
  errorCode,
  errorLine,
  EXIT_ALERTS,
  EXIT_ERROR,
  EXIT_OK,
  runCommandLine,
  UsageError,
  wantsJson,
} from "../../../ids/cli/run.ts";

/** Runs main.ts's command line on `args`, capturing its lines. */
async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommandLine("ebpfmonitor", program, args, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
  });
  return { code, out, err };
}

Deno.test("runCommandLine() reports each usage error in one line with exit code 2", async (t) => {
  const cases: [string[], string][] = [
    [["nope"], "ebpfmonitor: unknown command 'nope' (see 'ebpfmonitor --help')"],
    [[], "ebpfmonitor: missing command (see 'ebpfmonitor --help')"],
    [["ids"], "ebpfmonitor: missing command (see 'ebpfmonitor ids --help')"],
    [
      ["ids", "ps", "--bogus"],
      "ebpfmonitor: unknown option '--bogus' (see 'ebpfmonitor ids ps --help')",
    ],
    [
      ["ids", "ps", "--fetch", "bogus"],
      "ebpfmonitor: option '--fetch <mode>' argument 'bogus' is invalid. Unknown fetch mode bogus: use page, bulk, fields (see 'ebpfmonitor ids ps --help')",
    ],
    [
      ["ids", "ps", "--limit", "0"],
      "ebpfmonitor: option '--limit <n>' argument '0' is invalid. Expected a positive integer (see 'ebpfmonitor ids ps --help')",
    ],
    [
      ["ids", "watch", "--interval", "bogus"],
      `ebpfmonitor: option '--interval <duration>' argument 'bogus' is invalid. Invalid duration "bogus": use a number and a unit, e.g. 500ms, 5s or 1m (see 'ebpfmonitor ids watch --help')`,
    ],
    [
      ["ids", "attest"],
      "ebpfmonitor: required option '--vcek <file>' not specified (see 'ebpfmonitor ids attest --help')",
    ],
    [
      ["agent", "--listen"],
      "ebpfmonitor: option '--listen <url>' argument missing (see 'ebpfmonitor agent --help')",
    ],
  ];
  for (const [args, line] of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      const result = await run(args);
      assert.equal(result.code, EXIT_ERROR);
      assert.deepEqual(result.err, [line]);
      assert.deepEqual(result.out, []);
    });
  }
});

Deno.test("runCommandLine() prints a usage error as JSON on stdout too when --json is given", async () => {
  const result = await run(["ids", "ps", "--json", "--limit", "-3"]);
  assert.equal(result.code, EXIT_ERROR);
  const message =
    "option '--limit <n>' argument '-3' is invalid. Expected a positive integer (see 'ebpfmonitor ids ps --help')";
  assert.deepEqual(result.err, [`ebpfmonitor: ${message}`]);
  assert.deepEqual(result.out.map((line) => JSON.parse(line)), [
    { error: { code: "usage", message } },
  ]);
});

Deno.test("runCommandLine() exits 0 for --help and --version", async () => {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../../main.ts", import.meta.url).pathname, "ids", "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(help.code, EXIT_OK);
  assert.match(new TextDecoder().decode(help.stdout), /^Usage: ebpfmonitor ids \[options\]/);
  assert.equal(new TextDecoder().decode(help.stderr), "");
  assert.equal((await run(["--version"])).code, EXIT_OK);
});

Deno.test("runCommandLine() returns the action's code, and 2 with one line for its error", async () => {
  const tool = (setExit: (code: number) => void) => {
    const root = new Command("tool");
    root.command("alerts").option("--json").action(() => setExit(EXIT_ALERTS));
    root.command("fails").option("--json").action(() => {
      throw new TransportError(
        "connect_failed",
        "Cannot connect to tcp://127.0.0.1:1: Connection refused (os error 111)",
      );
    });
    root.command("quiet").action(() => {});
    return root;
  };
  const lines: string[] = [];
  const output = {
    out: (l: string) => lines.push(`out ${l}`),
    err: (l: string) => lines.push(`err ${l}`),
  };
  assert.equal(await runCommandLine("tool", tool, ["alerts"], output), EXIT_ALERTS);
  assert.equal(await runCommandLine("tool", tool, ["quiet"], output), EXIT_OK);
  assert.deepEqual(lines, []);
  assert.equal(await runCommandLine("tool", tool, ["fails", "--json"], output), EXIT_ERROR);
  const message = "Cannot connect to tcp://127.0.0.1:1: Connection refused (os error 111)";
  assert.deepEqual(lines, [
    `err tool: ${message}`,
    `out ${JSON.stringify({ error: { code: "connect_failed", message } })}`,
  ]);
});

Deno.test("errorCode() is usage, the error's snake_case code, or error", () => {
  assert.equal(errorCode(new UsageError("x", "y")), "usage");
  assert.equal(errorCode(new TransportError("bad_endpoint", "x")), "bad_endpoint");
  assert.equal(errorCode(new Deno.errors.NotFound("x")), "error");
  assert.equal(errorCode(Object.assign(new Error("x"), { code: "ENOENT" })), "error");
  assert.equal(errorCode("a string"), "error");
  assert.equal(errorCode(null), "error");
});

Deno.test("errorLine() shows what the guest sent as escapes, never as terminal controls", () => {
  const error = new Error("Agent could not walk: task \x1b[1A\x1b[2Kgone\u202e\nsecond line");
  assert.equal(
    errorLine(error),
    "Agent could not walk: task \\x1b[1A\\x1b[2Kgone\\u202e second line",
  );
});

Deno.test("wantsJson() looks for --json before --", () => {
  assert.equal(wantsJson(["ids", "ps", "--json"]), true);
  assert.equal(wantsJson(["ids", "ps"]), false);
  assert.equal(wantsJson(["ids", "ps", "--", "--json"]), false);
});
