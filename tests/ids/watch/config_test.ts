import assert from "node:assert/strict";
import { loadWatchConfig, parseWatchConfig } from "../../../ids/watch/config.ts";

const parse = (value: unknown) =>
  parseWatchConfig(JSON.stringify(value), "watch config /etc/w.json", "/etc/ebpfmonitor");

Deno.test("parseWatchConfig() reads every key and resolves relative paths against the config's folder", () => {
  const config = parse({
    vms: [
      {
        name: "web1",
        url: "tcp://10.0.0.5:7070",
        key: "/etc/ebpfmonitor/ids/id",
        agent_key: "keys/web1.pub",
        policy: "../policies/web.json",
        baseline: "web1.baseline.json",
        interval: "5s",
        timeout: "1m",
        fetch: "fields",
      },
      { name: "db1", url: "vsock://3:7070", insecure: true },
    ],
  });
  assert.deepEqual(config.vms, [
    {
      name: "web1",
      url: "tcp://10.0.0.5:7070",
      insecure: false,
      key: "/etc/ebpfmonitor/ids/id",
      agentKey: "/etc/ebpfmonitor/keys/web1.pub",
      policy: "/etc/policies/web.json",
      baseline: "/etc/ebpfmonitor/web1.baseline.json",
      intervalMs: 5000,
      timeoutMs: 60_000,
      fetch: "fields",
    },
    { name: "db1", url: "vsock://3:7070", insecure: true },
  ]);
});

Deno.test("parseWatchConfig() names the VM and the key in its errors", async (t) => {
  const good = { name: "web1", url: "tcp://h:1", insecure: true };
  const cases: [string, unknown, RegExp][] = [
    ["not JSON", "{", /^Error: Cannot parse watch config \/etc\/w\.json: /],
    ["not an object", [], /expected a JSON object with a "vms" array$/],
    ["no vms", {}, /"vms" must be a non-empty array of VMs$/],
    ["empty vms", { vms: [] }, /"vms" must be a non-empty array of VMs$/],
    ["unknown top key", { vms: [good], vm: [] }, /unknown key "vm" \(known: vms\)$/],
    ["VM not an object", { vms: [good, 3] }, /: VM #2: expected an object$/],
    ["no name", { vms: [{ url: "tcp://h:1", insecure: true }] }, /: VM #1: "name" is required$/],
    [
      "duplicate name",
      { vms: [good, { ...good, url: "tcp://h:2" }] },
      /: VM "web1": the name is used by another VM$/,
    ],
    ["no url", { vms: [{ name: "a", insecure: true }] }, /: VM "a": "url" is required$/],
    [
      "bad limits",
      { vms: [{ ...good, limits: "max_tasks=lots" }] },
      /: VM "web1": "limits": Invalid limit max_tasks="lots": expected a positive integer$/,
    ],
    [
      "bad url",
      { vms: [{ ...good, url: "http://h:1" }] },
      /: VM "web1": "url" http:\/\/h:1 is not tcp:\/\/host:port or vsock:\/\/cid:port$/,
    ],
    [
      "no keys",
      { vms: [{ name: "web2", url: "tcp://h:1", key: "id" }] },
      /: VM "web2": "key" and "agent_key" are required unless "insecure" is true$/,
    ],
    [
      "insecure not boolean",
      { vms: [{ ...good, insecure: "yes" }] },
      /"insecure" must be true or false$/,
    ],
    [
      "bad interval",
      { vms: [{ ...good, interval: "5" }] },
      /: VM "web1": "interval": Invalid duration "5": use a number and a unit/,
    ],
    [
      "bad timeout",
      { vms: [{ ...good, timeout: "0s" }] },
      /: VM "web1": "timeout": Invalid duration/,
    ],
    [
      "bad fetch",
      { vms: [{ ...good, fetch: "all" }] },
      /"fetch" must be one of page, bulk, fields$/,
    ],
    [
      "empty policy",
      { vms: [{ ...good, policy: "" }] },
      /: VM "web1": "policy" must be a non-empty string$/,
    ],
    [
      "number key",
      { vms: [{ ...good, key: 5 }] },
      /: VM "web1": "key" must be a non-empty string$/,
    ],
    [
      "unknown VM key",
      { vms: [{ ...good, agentKey: "x" }] },
      /: VM "web1": unknown key "agentKey" \(known: name, url, key, agent_key, /,
    ],
  ];
  for (const [name, value, error] of cases) {
    await t.step(name, () => {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      assert.throws(() => parseWatchConfig(text, "watch config /etc/w.json", "/etc"), error);
    });
  }
});

Deno.test("loadWatchConfig() resolves paths against the file's own folder and names a missing file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-watch-config-" });
  try {
    await Deno.mkdir(`${dir}/conf`);
    await Deno.writeTextFile(
      `${dir}/conf/watch.json`,
      JSON.stringify({ vms: [{ name: "a", url: "tcp://h:1", key: "k/id", agent_key: "/a.pub" }] }),
    );
    const config = await loadWatchConfig(`${dir}/conf/watch.json`);
    assert.equal(config.vms[0]?.key, `${dir}/conf/k/id`);
    assert.equal(config.vms[0]?.agentKey, "/a.pub");
    await assert.rejects(
      loadWatchConfig(`${dir}/missing.json`),
      new RegExp(`^Error: Cannot read watch config ${dir}/missing\\.json: `),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
