import assert from "node:assert/strict";
import { AlertLog, eventLine, LINE_KEYS } from "../../../ids/watch/alert_log.ts";
import type { WatchEvent } from "../../../ids/watch/tracker.ts";

const event = (summary: string, kind: "alert" | "resolved" = "alert"): WatchEvent => ({
  event: kind,
  vm: "web1",
  alert: { detector: "policy", severity: "high", summary, evidence: { addr: 0xffffn, n: 1 } },
});

Deno.test("eventLine() is one JSON object on one line with the documented keys in order", () => {
  const line = eventLine(event("a\nb"), new Date("2026-01-02T03:04:05.678Z"));
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  const parsed = JSON.parse(line);
  assert.deepEqual(Object.keys(parsed), [...LINE_KEYS]);
  assert.deepEqual(parsed, {
    time: "2026-01-02T03:04:05.678Z",
    vm: "web1",
    detector: "policy",
    severity: "high",
    summary: "a\nb",
    evidence: { addr: "0xffff", n: 1 },
    event: "alert",
  });
});

Deno.test("AlertLog appends to its file across reopenings and never truncates it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-alert-log-" });
  const path = `${dir}/alerts.jsonl`;
  try {
    const first = await AlertLog.open(path);
    await first.write([event("one"), event("two")]);
    await first.close();
    const second = await AlertLog.open(path);
    await Promise.all([second.write([event("three")]), second.write([event("one", "resolved")])]);
    await second.write([]);
    await second.close();
    await assert.rejects(second.write([event("late")]), /^Error: Alert output .* is closed$/);
    const lines = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => `${l.event} ${l.summary}`), [
      "alert one",
      "alert two",
      "alert three",
      "resolved one",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AlertLog.open() names a file it cannot open", async () => {
  await assert.rejects(
    AlertLog.open("/nonexistent-dir/alerts.jsonl"),
    /^Error: Cannot open \/nonexistent-dir\/alerts\.jsonl for appending: /,
  );
});
