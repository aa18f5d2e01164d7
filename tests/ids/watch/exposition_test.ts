import assert from "node:assert/strict";
import { escapeHelp, escapeLabelValue, renderExposition } from "../../../ids/watch/exposition.ts";
import { parseExposition } from "../../_helpers/prometheus.ts";

Deno.test("renderExposition() writes HELP, TYPE and one line per series, and reads back", () => {
  const text = renderExposition([
    {
      name: "x_total",
      help: "Things",
      type: "counter",
      samples: [{ labels: { vm: "a", detector: "policy" }, value: 3 }, {
        labels: {},
        value: 0.25,
      }],
    },
    { name: "y", help: "Empty", type: "gauge", samples: [] },
  ]);
  assert.equal(
    text,
    [
      "# HELP x_total Things",
      "# TYPE x_total counter",
      'x_total{vm="a",detector="policy"} 3',
      "x_total 0.25",
      "# HELP y Empty",
      "# TYPE y gauge",
      "",
    ].join("\n"),
  );
  const families = parseExposition(text);
  assert.deepEqual(families.get("x_total"), {
    help: "Things",
    type: "counter",
    samples: [{ labels: { vm: "a", detector: "policy" }, value: 3 }, { labels: {}, value: 0.25 }],
  });
  assert.deepEqual(families.get("y"), { help: "Empty", type: "gauge", samples: [] });
});

Deno.test("renderExposition() escapes label values and help texts so that they read back unchanged", () => {
  const nasty = 'web "1"\\prod\nline2 {x="y"},';
  assert.equal(escapeLabelValue(nasty), 'web \\"1\\"\\\\prod\\nline2 {x=\\"y\\"},');
  assert.equal(escapeHelp('a\\b\nc "d"'), 'a\\\\b\\nc "d"');
  const text = renderExposition([{
    name: "z",
    help: 'Help with \\ and\nnewline and "quotes"',
    type: "gauge",
    samples: [{ labels: { vm: nasty, other: "" }, value: -1 }],
  }]);
  assert.equal(text.split("\n").length, 4, "three lines: no raw newline inside one");
  const family = parseExposition(text).get("z")!;
  assert.equal(family.help, 'Help with \\ and\nnewline and "quotes"');
  assert.deepEqual(family.samples, [{ labels: { vm: nasty, other: "" }, value: -1 }]);
});

Deno.test("renderExposition() writes special values and refuses invalid names", () => {
  const text = renderExposition([{
    name: "v",
    help: "h",
    type: "gauge",
    samples: [{ labels: { a: "1" }, value: Infinity }, { labels: { a: "2" }, value: -Infinity }, {
      labels: { a: "3" },
      value: NaN,
    }],
  }]);
  assert.match(text, /^v\{a="1"\} \+Inf$/m);
  assert.match(text, /^v\{a="2"\} -Inf$/m);
  assert.match(text, /^v\{a="3"\} NaN$/m);
  const family = (name: string, label: string) => [{
    name,
    help: "h",
    type: "gauge" as const,
    samples: [{ labels: { [label]: "v" }, value: 1 }],
  }];
  assert.throws(() => renderExposition(family("1bad", "vm")), /^Error: Invalid metric name 1bad$/);
  assert.throws(() => renderExposition(family("ok", "a-b")), /^Error: Invalid label name a-b/);
  assert.throws(() => renderExposition(family("ok", "__name")), /^Error: Invalid label name/);
});
