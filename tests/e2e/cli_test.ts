// End to end (needs root: each command starts or reaches a real agent): the CLI as a user runs
// it, `deno run -A main.ts ...`, with the exact JSON shapes scripts depend on.
import assert from "node:assert/strict";
import { SOCKET_JSON_KEYS } from "../_helpers/proc_net.ts";
import { IS_ROOT, runCli, withAgent } from "../_helpers/agent.ts";

const PS_KEYS = ["pid", "tgid", "ppid", "comm", "uid", "euid", "gid", "state", "kthread", "addr"];
const LSMOD_KEYS = ["name", "base", "size", "state"];
const MODE_KEYS = ["median_ms", "p95_ms", "round_trips", "bytes"];

/** The pids of the thread group leaders /proc lists, sorted. */
async function procPids(): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (/^[0-9]+$/.test(entry.name)) pids.push(Number(entry.name));
  }
  return pids.sort((a, b) => a - b);
}

function parseJson(stdout: string, what: string): unknown {
  try {
    return JSON.parse(stdout);
  } catch {
    throw new Error(`${what} did not print JSON:\n${stdout}`);
  }
}

function assertProcessArray(value: unknown, what: string): Record<string, unknown>[] {
  assert.ok(Array.isArray(value), `${what}: not an array`);
  assert.ok(value.length > 0, `${what}: no process`);
  for (const p of value as Record<string, unknown>[]) {
    assert.deepEqual(Object.keys(p), PS_KEYS, `${what}: keys of ${JSON.stringify(p)}`);
    for (const key of ["pid", "tgid", "ppid", "uid", "euid", "gid"]) {
      assert.ok(Number.isSafeInteger(p[key]), `${what}: ${key} of ${JSON.stringify(p)}`);
    }
    assert.equal(typeof p.comm, "string");
    assert.match(p.state as string, /^[RSDTtXZPI]$/);
    assert.equal(typeof p.kthread, "boolean");
    assert.match(p.addr as string, /^0xffff[0-9a-f]{12}$/);
  }
  return value as Record<string, unknown>[];
}

Deno.test({
  name: "ids ps --json prints an array of processes with exactly the documented keys (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const run = await runCli(["ids", "ps", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const processes = assertProcessArray(parseJson(run.stdout, "ps --json"), "ps --json");
    assert.ok(processes.some((p) => p.pid === 1), "pid 1 is listed");
    const pids = processes.map((p) => p.pid as number);
    assert.deepEqual(pids, [...pids].sort((a, b) => a - b), "sorted by pid");
    assert.ok(processes.every((p) => p.pid !== 0), "pid 0 is not listed");
  },
});

Deno.test({
  name: "ids ps --fetch page --json against a running agent prints the same shape (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withAgent(async (agent) => {
      const run = await runCli([
        "ids",
        "ps",
        "--connect",
        agent.url,
        "--key",
        agent.keys.files.idsKey,
        "--agent-key",
        agent.keys.files.agentPub,
        "--fetch",
        "page",
        "--limit",
        "4",
        "--json",
      ]);
      assert.equal(run.code, 0, run.stderr);
      const processes = assertProcessArray(parseJson(run.stdout, "ps --fetch page"), "page");
      // The 4 lowest pids, whichever task the walk started at (on this kernel, without init_task
      // in kallsyms, the agent's own): the oldest tasks, which stay.
      assert.deepEqual(processes.map((p) => p.pid), (await procPids()).slice(0, 4));
    }),
});

Deno.test({
  name: "ids lsmod --json prints an array of modules with exactly the documented keys (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const run = await runCli(["ids", "lsmod", "--json"]);
    assert.equal(run.code, 0, run.stderr);
    const modules = parseJson(run.stdout, "lsmod --json");
    assert.ok(Array.isArray(modules));
    for (const m of modules as Record<string, unknown>[]) {
      assert.deepEqual(Object.keys(m), LSMOD_KEYS, JSON.stringify(m));
      assert.equal(typeof m.name, "string");
      assert.match(m.base as string, /^0x[0-9a-f]+$/);
      assert.ok(Number.isSafeInteger(m.size));
      assert.equal(typeof m.state, "string");
    }
    let hasProcModules = true;
    try {
      Deno.statSync("/proc/modules");
    } catch {
      hasProcModules = false;
    }
    if (!hasProcModules) {
      assert.deepEqual(modules, []);
      assert.match(run.stderr, /note: Kernel has no module list/);
    }
  },
});

Deno.test({
  name:
    "ids bench --json reports every mode, the ping, the ratios, a larger scale, sockets and a whole check, and plots (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const plot = await Deno.makeTempFile({ suffix: ".svg" });
    try {
      const run = await runCli([
        "ids",
        "bench",
        "--procs",
        "20",
        "--repeat",
        "2",
        "--scales",
        "40",
        "--plot",
        plot,
        "--json",
      ]);
      assert.equal(run.code, 0, run.stderr);
      const result = parseJson(run.stdout, "bench --json") as Record<string, unknown>;
      assert.equal(result.procs, 20);
      const modes = result.modes as Record<string, Record<string, unknown>>;
      assert.deepEqual(Object.keys(modes).sort(), ["bulk", "fields", "page"]);
      for (const mode of ["page", "bulk", "fields"]) {
        const figures = modes[mode]!;
        for (const key of MODE_KEYS) {
          assert.equal(typeof figures[key], "number", `modes.${mode}.${key}`);
          assert.ok((figures[key] as number) >= 0, `modes.${mode}.${key}`);
        }
      }
      assert.equal(modes.bulk!.round_trips, 1);
      assert.equal(modes.fields!.round_trips, 1);
      assert.ok((modes.page!.round_trips as number) > 20, "page mode: at least a page per process");
      assert.ok((result.ping_ms as number) > 0);
      for (
        const key of ["ratio_page_over_bulk", "ratio_page_over_fields", "ratio_fields_over_ping"]
      ) {
        const ratio = result[key];
        assert.ok(ratio === null || (typeof ratio === "number" && ratio > 0), `${key} ${ratio}`);
      }
      const scales = result.scales as { count: number; modes: Record<string, unknown> }[];
      assert.equal(scales.length, 1);
      assert.equal(scales[0]!.count, 40);
      const sockets = result.sockets as { count: number; modes: Record<string, unknown> };
      assert.ok(sockets.count > 0, "the agent's own listener at least");
      assert.deepEqual(Object.keys(sockets.modes).sort(), ["bulk", "fields", "page"]);
      const check = result.check as Record<string, number>;
      for (const key of [...MODE_KEYS, "alerts"]) {
        assert.equal(typeof check[key], "number", `check.${key}`);
      }
      assert.equal(check.alerts, 0, "this machine is clean");
      assert.match(await Deno.readTextFile(plot), /^<svg [^>]*>[\s\S]*<\/svg>\n$/);
    } finally {
      await Deno.remove(plot);
    }
  },
});

Deno.test("ids ps --fetch nope exits 2 with one line saying which modes exist", async () => {
  const run = await runCli(["ids", "ps", "--fetch", "nope"]);
  assert.equal(run.code, 2);
  assert.equal(
    run.stderr,
    "ebpfmonitor: option '--fetch <mode>' argument 'nope' is invalid. Unknown fetch mode nope: use page, bulk, fields (see 'ebpfmonitor ids ps --help')\n",
  );
  assert.equal(run.stdout, "");
});

Deno.test("ids ps --connect to a port where nothing listens exits 2 at once, in one line and in JSON", async () => {
  const run = await runCli(["ids", "ps", "--connect", "tcp://127.0.0.1:1", "--insecure", "--json"]);
  assert.equal(run.code, 2);
  const message = "Cannot connect to tcp://127.0.0.1:1: Connection refused (os error 111)";
  assert.equal(
    run.stderr,
    "ebpfmonitor: WARNING: --insecure: the channel to the agent is plaintext and unauthenticated: anyone on the path can read it and forge the guest's answers\n" +
      `ebpfmonitor: ${message}\n`,
  );
  assert.deepEqual(JSON.parse(run.stdout), { error: { code: "connect_failed", message } });
});

Deno.test({
  name: "ids sockets --json prints an array of sockets with exactly the documented keys (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const listener = Deno.listen({ hostname: "::1", port: 0 });
    try {
      for (const fetch of ["page", "bulk", "fields"]) {
        const run = await runCli(["ids", "sockets", "--fetch", fetch, "--json"]);
        assert.equal(run.code, 0, run.stderr);
        const sockets = parseJson(run.stdout, "sockets --json");
        assert.ok(Array.isArray(sockets), `${fetch}: not an array`);
        for (const s of sockets as Record<string, unknown>[]) {
          assert.deepEqual(
            Object.keys(s),
            SOCKET_JSON_KEYS,
            `${fetch}: keys of ${JSON.stringify(s)}`,
          );
          assert.match(s.proto as string, /^(tcp|udp)$/);
          assert.match(s.family as string, /^(inet|inet6)$/);
          for (const key of ["local_port", "remote_port", "uid", "inode"]) {
            assert.ok(Number.isSafeInteger(s[key]), `${fetch}: ${key} of ${JSON.stringify(s)}`);
          }
        }
        assert.ok(
          (sockets as Record<string, unknown>[]).some((s) =>
            s.proto === "tcp" && s.family === "inet6" && s.local_addr === "::1" &&
            s.local_port === listener.addr.port && s.state === "LISTEN"
          ),
          `${fetch}: the test's listener on [::1]:${listener.addr.port}`,
        );
      }
    } finally {
      listener.close();
    }
  },
});
