// Progress: on stderr when it is a terminal, nothing when it is not, never on stdout. The last
// test runs `ids ps` under a real pseudo-terminal (util-linux `script`) with stdout in a file.
import assert from "node:assert/strict";
import { progressOn, type ProgressSink, SILENT } from "../../../ids/cli/progress.ts";
import { IS_ROOT, MAIN } from "../../_helpers/agent.ts";

/** A sink that keeps what is written, writing at most `chunk` bytes per call. */
function sink(terminal: boolean, chunk = 1 << 20): ProgressSink & { text(): string } {
  const parts: Uint8Array[] = [];
  return {
    isTerminal: () => terminal,
    writeSync(bytes) {
      const n = Math.min(chunk, bytes.length);
      parts.push(bytes.slice(0, n));
      return n;
    },
    text: () => parts.map((p) => new TextDecoder().decode(p)).join(""),
  };
}

Deno.test("progressOn() rewrites one line on a terminal and clears it when done", () => {
  const out = sink(true, 3); // short writes are completed
  const progress = progressOn("ebpfmonitor", out);
  progress.step("connecting to tcp://127.0.0.1:7070");
  progress.step("walking the task list (bulk mode)");
  progress.done();
  progress.done(); // nothing shown: nothing to clear
  assert.equal(
    out.text(),
    "\r\x1b[Kebpfmonitor: connecting to tcp://127.0.0.1:7070..." +
      "\r\x1b[Kebpfmonitor: walking the task list (bulk mode)...\r\x1b[K",
  );
});

Deno.test("progressOn() is silent when its sink is not a terminal", () => {
  const out = sink(false);
  const progress = progressOn("ebpfmonitor", out);
  assert.equal(progress, SILENT);
  progress.step("connecting");
  progress.done();
  assert.equal(out.text(), "");
});

const hasScript = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/**
 * Runs `ebpfmonitor ARGS > DIR/out.json` on a new pseudo-terminal (util-linux `script`, which
 * copies what the terminal shows to its stdout); returns what the terminal showed and the JSON.
 */
async function onTerminal(args: string): Promise<{ terminal: string; json: unknown }> {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-progress-" });
  try {
    const command = `'${Deno.execPath()}' run -A '${MAIN}' ${args} > '${dir}/out.json'`;
    const run = await new Deno.Command("script", {
      args: ["--quiet", "--return", "--command", command, "/dev/null"],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const terminal = new TextDecoder().decode(run.stdout);
    assert.equal(run.code, 0, terminal + new TextDecoder().decode(run.stderr));
    return { terminal, json: JSON.parse(await Deno.readTextFile(`${dir}/out.json`)) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "ids ps shows its steps on a terminal stderr and keeps stdout to the JSON; piped, stderr stays empty (root)",
  ignore: !IS_ROOT || !hasScript,
  fn: async () => {
    const { terminal, json } = await onTerminal("ids ps --json");
    for (
      const step of [
        "starting an agent on this machine",
        "connecting to tcp://127.0.0.1:",
        "reading the kernel profile (BTF, kallsyms)",
        "loading the eBPF programs",
        "walking the task list (bulk mode)",
      ]
    ) {
      assert.ok(terminal.includes(`\r\x1b[Kebpfmonitor: ${step}`), `${step} in ${terminal}`);
    }
    assert.ok(terminal.endsWith("\r\x1b[K"), "the line is cleared at the end");
    assert.ok(Array.isArray(json) && json.length > 0);

    const piped = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "ids", "ps", "--json"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(piped.code, 0);
    assert.equal(new TextDecoder().decode(piped.stderr), "");
  },
});

Deno.test({
  name: "ids bench shows each step with its count on a terminal stderr (root)",
  ignore: !IS_ROOT || !hasScript,
  fn: async () => {
    const { terminal, json } = await onTerminal(
      "ids bench --procs 5 --repeat 1 --scales '' --json",
    );
    // Three modes, a warm-up and one repetition each: 6 acquisitions per target.
    for (
      const step of [
        "bench: 5 processes, page mode (warm-up): 0/6",
        "bench: 5 processes, bulk mode: 4/6",
        "bench: all modules, fields mode: 5/6",
        "bench: all sockets, page mode (warm-up): 0/6",
        "bench: ids check: 1/2",
      ]
    ) {
      assert.ok(terminal.includes(`\r\x1b[Kebpfmonitor: ${step}...`), `${step} in ${terminal}`);
    }
    assert.equal((json as { procs: number }).procs, 5);
  },
});
