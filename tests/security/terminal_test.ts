// Guest-supplied strings never reach the operator's terminal raw: a guest process named with
// terminal escapes (here a real process on this machine, which renames itself through
// /proc/PID/comm) is shown escaped in the `ids ps` table and in `ids ps --json`. Needs root.
import assert from "node:assert/strict";
import { IS_ROOT, runCli } from "../_helpers/agent.ts";

/** Cursor up one line, erase the line: what would rewrite the IDS's previous line. */
const NAME = "\x1b[1A\x1b[2Kevil";

Deno.test({
  name: "a process named with terminal escapes is shown escaped by ids ps, table and JSON",
  ignore: !IS_ROOT,
  fn: async () => {
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `printf '${
          NAME.replaceAll("\x1b", "\\033")
        }' > /proc/$$/comm; echo ready; sleep 120 & wait`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.getReader();
    try {
      await reader.read(); // "ready": the name is set
      assert.equal(Deno.readTextFileSync(`/proc/${child.pid}/comm`), `${NAME}\n`);
      const table = await runCli(["ids", "ps"]);
      assert.equal(table.code, 0, table.stderr);
      assert.ok(!table.stdout.includes("\x1b"), "no raw escape in the table");
      const row = table.stdout.split("\n").find((line) =>
        line.startsWith(` ${child.pid} `) || line.trimStart().startsWith(`${child.pid} `)
      );
      assert.ok(row !== undefined, `a row for pid ${child.pid}`);
      assert.match(row, /\\x1b\[1A\\x1b\[2Kevil/);
      const json = await runCli(["ids", "ps", "--json"]);
      assert.equal(json.code, 0, json.stderr);
      assert.ok(!json.stdout.includes("\x1b"), "no raw escape in the JSON");
      const me = JSON.parse(json.stdout).find((p: { pid: number }) => p.pid === child.pid);
      assert.equal(me.comm, NAME);
    } finally {
      reader.releaseLock();
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel().catch(() => {});
    }
  },
});
