// End to end (needs root: real agents with real eBPF on this host): `ids watch` as a subprocess
// against two live local agents, a URL where nothing listens and an agent stopped with SIGSTOP.
// Counts of checks come from its /metrics, scraped over HTTP; alerts from its --out file.
import assert from "node:assert/strict";
import { type LocalAgent, startLocalAgent } from "../../ids/local_agent.ts";
import { eventually, IS_ROOT, runCli } from "../_helpers/agent.ts";
import { sampleValue } from "../_helpers/prometheus.ts";
import {
  type AlertLine,
  deadPort,
  parseLines,
  readLines,
  scrape,
  startWatch,
  vmCounts,
} from "../_helpers/watch.ts";

/** The comm of the process the policy forbids (15 bytes: task_struct.comm holds it whole). */
const FORBIDDEN = "Qwatchforbidden";

/** A policy allowing every process name but those starting with Q. */
const POLICY = {
  processes: Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i))
    .filter((c) => c !== "Q").map((c) => `${c}*`),
};

/** Starts `sleep` under the name FORBIDDEN; waits until its comm is that. */
async function startForbidden(dir: string): Promise<Deno.ChildProcess> {
  const sleep = new Deno.Command("sh", { args: ["-c", "command -v sleep"] }).outputSync();
  const path = `${dir}/${FORBIDDEN}`;
  await Deno.copyFile(new TextDecoder().decode(sleep.stdout).trim(), path);
  await Deno.chmod(path, 0o755);
  const child = new Deno.Command(path, { args: ["600"], stdin: "null", stdout: "null" }).spawn();
  const named = await eventually(async () => {
    const comm = await Deno.readTextFile(`/proc/${child.pid}/comm`).catch(() => "");
    return comm.trim() === FORBIDDEN;
  });
  if (!named) {
    child.kill("SIGKILL");
    await child.status;
    throw new Error(`${FORBIDDEN} did not start`);
  }
  return child;
}

const isForbiddenAlert = (line: AlertLine, pid: number) =>
  line.detector === "policy" && line.summary.includes(`${FORBIDDEN} (pid ${pid})`);

Deno.test({
  name:
    "ids watch --config checks live agents on schedule while a dead and a stopped agent are reported unreachable once, and appends across runs (root)",
  // No assertion races a clock: the stopped agent's check in run 1 has a deadline (10 min) no
  // wait of this test reaches, so "the live VMs were checked twice while it hung" is an ordering
  // of work; the deadline firing is run 2's, with a short deadline and nothing racing it.
  ignore: !IS_ROOT,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-watch-" });
    const agents: LocalAgent[] = [];
    let stoppedPid: number | undefined;
    let forbidden: Deno.ChildProcess | undefined;
    try {
      for (let i = 0; i < 3; i++) agents.push(await startLocalAgent());
      const [live1, live2, slow] = agents as [LocalAgent, LocalAgent, LocalAgent];
      forbidden = await startForbidden(dir);
      await Deno.writeTextFile(`${dir}/policy.json`, JSON.stringify(POLICY));
      const vm = (name: string, agent: LocalAgent, extra: Record<string, string> = {}) => ({
        name,
        url: agent.url,
        key: agent.keyFiles!.key,
        agent_key: agent.keyFiles!.agentKey,
        interval: "1s",
        ...extra,
      });
      const dead = { name: "dead", url: `tcp://127.0.0.1:${deadPort()}`, insecure: true };
      const config = (stoppedTimeout: string) =>
        JSON.stringify({
          vms: [
            vm("live1", live1, { policy: "policy.json" }),
            vm("live2", live2),
            dead,
            vm("stopped", slow, { timeout: stoppedTimeout }),
          ],
        });
      await Deno.writeTextFile(`${dir}/watch.json`, config("10m"));
      const out = `${dir}/alerts.jsonl`;
      const args = ["--config", `${dir}/watch.json`, "--out", out, "--metrics", "127.0.0.1:0"];

      // Run 1.
      await using run = startWatch(args);
      const url = await run.metricsUrl();
      let metrics = await scrape(url);
      const counts = (vm: string) => vmCounts(metrics, vm);
      const settled = await eventually(async () => {
        metrics = await scrape(url);
        return counts("live1").ok >= 1 && counts("live2").ok >= 1 && counts("stopped").ok >= 1 &&
          counts("dead").failures >= 2;
      }, 120_000);
      assert.ok(settled, `checks did not happen:\n${run.stderr()}`);
      assert.equal(counts("dead").up, 0);
      assert.equal(counts("dead").ok, 0);

      // Stop one agent: its check hangs (its deadline, 10 min, is never reached here); the others
      // go on meanwhile.
      Deno.kill(slow.pid, "SIGSTOP");
      stoppedPid = slow.pid;
      const stoppedAt = counts("stopped");
      const liveAt = new Map(["live1", "live2"].map((vm) => [vm, counts(vm).ok]));
      assert.ok(
        await eventually(async () => {
          metrics = await scrape(url);
          return [...liveAt].every(([vm, ok]) => counts(vm).ok >= ok + 2);
        }, 120_000),
        `the live VMs were not checked again:\n${run.stderr()}`,
      );
      // (A check the agent answered just before it stopped may still complete.)
      assert.equal(counts("stopped").failures, 0, "the stopped agent's check is still hanging");
      assert.ok(counts("stopped").checks <= stoppedAt.checks + 1);
      for (const live of ["live1", "live2"]) {
        assert.equal(counts(live).failures, 0, `${live} failed a check:\n${run.stderr()}`);
        assert.equal(counts(live).up, 1);
        assert.ok(sampleValue(metrics, "ebpfmonitor_round_trips_total", { vm: live })! > 0);
        assert.ok(sampleValue(metrics, "ebpfmonitor_bytes_total", { vm: live })! > 0);
        assert.ok(
          sampleValue(metrics, "ebpfmonitor_check_duration_seconds", { vm: live })! > 0,
        );
      }

      // The forbidden process: one alert line, however many checks see it.
      const pid = forbidden.pid;
      assert.ok(
        await eventually(async () => (await readLines(out)).some((l) => isForbiddenAlert(l, pid))),
        "no policy alert for the forbidden process",
      );
      const seenAt = counts("live1").ok;
      assert.ok(
        await eventually(async () => {
          metrics = await scrape(url);
          return counts("live1").ok >= seenAt + 2;
        }, 60_000),
      );
      let lines = await readLines(out);
      const forbiddenLines = lines.filter((l) => isForbiddenAlert(l, pid));
      assert.equal(forbiddenLines.length, 1, JSON.stringify(forbiddenLines));
      assert.deepEqual(
        { ...forbiddenLines[0], time: "" },
        {
          time: "",
          vm: "live1",
          detector: "policy",
          severity: "medium",
          summary: `process ${FORBIDDEN} (pid ${pid}) is not allowed by the policy`,
          evidence: forbiddenLines[0]!.evidence,
          event: "alert",
        },
      );
      assert.equal(forbiddenLines[0]!.evidence.pid, pid);
      assert.ok(!Number.isNaN(Date.parse(forbiddenLines[0]!.time)));
      const unreachable = (vm: string) =>
        lines.filter((l) => l.vm === vm && l.detector === "agent_unreachable");
      assert.equal(unreachable("dead").length, 1, "one agent_unreachable per outage");
      assert.equal(unreachable("stopped").length, 0, "its check is still within its deadline");
      assert.equal(unreachable("live1").length + unreachable("live2").length, 0);
      assert.equal(unreachable("dead")[0]!.severity, "high");
      assert.match(String(unreachable("dead")[0]!.evidence.error), /127\.0\.0\.1/);
      assert.equal(
        lines.filter((l) => l.vm === "live2" && l.summary.includes(FORBIDDEN)).length,
        0,
      );

      metrics = await scrape(url);
      assert.equal(
        sampleValue(metrics, "ebpfmonitor_alerts_total", {
          vm: "dead",
          detector: "agent_unreachable",
        }),
        1,
      );
      assert.equal(
        sampleValue(metrics, "ebpfmonitor_alerts_active", {
          vm: "dead",
          detector: "agent_unreachable",
          severity: "high",
        }),
        1,
      );
      assert.ok(
        sampleValue(metrics, "ebpfmonitor_alerts_total", { vm: "live1", detector: "policy" })! >= 1,
      );
      assert.ok(
        sampleValue(metrics, "ebpfmonitor_alerts_active", {
          vm: "live1",
          detector: "policy",
          severity: "medium",
        })! >= 1,
      );

      // The stopped agent comes back (its hanging check completes); the forbidden process ends.
      Deno.kill(slow.pid, "SIGCONT");
      stoppedPid = undefined;
      forbidden.kill("SIGKILL");
      await forbidden.status;
      forbidden = undefined;
      assert.ok(
        await eventually(async () => {
          lines = await readLines(out);
          metrics = await scrape(url);
          return counts("stopped").ok > stoppedAt.ok &&
            lines.some((l) => isForbiddenAlert(l, pid) && l.event === "resolved");
        }, 60_000),
        `the resumed agent was not checked, or no resolved line:\n${run.stderr()}`,
      );

      assert.equal(await run.stop("SIGTERM"), 0, run.stderr());
      const first = await Deno.readTextFile(out);

      // Run 2 appends to the same file, with a deadline of 3 s for the agent stopped again: it is
      // reported unreachable once, at its deadline, and reachable once it resumes.
      await Deno.writeTextFile(`${dir}/watch.json`, config("3s"));
      Deno.kill(slow.pid, "SIGSTOP");
      stoppedPid = slow.pid;
      await using again = startWatch(args);
      const appended = async () => parseLines((await Deno.readTextFile(out)).slice(first.length));
      let added: AlertLine[] = [];
      assert.ok(
        await eventually(async () => {
          added = await appended();
          return ["dead", "stopped"].every((vm) =>
            added.some((l) => l.vm === vm && l.detector === "agent_unreachable")
          );
        }, 60_000),
        `run 2 did not report the dead and the stopped agent:\n${again.stderr()}`,
      );
      const stoppedDown = added.filter((l) =>
        l.vm === "stopped" && l.detector === "agent_unreachable"
      );
      assert.equal(stoppedDown.length, 1, "one agent_unreachable per outage");
      assert.match(String(stoppedDown[0]!.evidence.error), /did not finish within 3000 ms/);
      Deno.kill(slow.pid, "SIGCONT");
      stoppedPid = undefined;
      assert.ok(
        await eventually(async () => {
          added = await appended();
          return added.some((l) => l.vm === "stopped" && l.detector === "agent_reachable");
        }, 60_000),
        `no agent_reachable for the resumed agent:\n${again.stderr()}`,
      );
      const back = added.find((l) => l.vm === "stopped" && l.detector === "agent_reachable")!;
      assert.equal(back.severity, "low");
      assert.equal(back.event, "alert");
      assert.equal(await again.stop("SIGINT"), 0, again.stderr());
      const both = await Deno.readTextFile(out);
      assert.ok(both.startsWith(first), "run 2 kept run 1's lines");
      assert.ok(both.length > first.length);
      for (const line of parseLines(both)) {
        assert.deepEqual(Object.keys(line), [
          "time",
          "vm",
          "detector",
          "severity",
          "summary",
          "evidence",
          "event",
        ]);
      }
    } finally {
      if (stoppedPid !== undefined) Deno.kill(stoppedPid, "SIGCONT");
      if (forbidden !== undefined) {
        forbidden.kill("SIGKILL");
        await forbidden.status;
      }
      await Promise.all(agents.map((agent) => agent.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "ids watch --connect prints one alert line on stdout for a forbidden process and exits 0 on SIGINT (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-watch-" });
    const agent = await startLocalAgent();
    const forbidden = await startForbidden(dir);
    try {
      await Deno.writeTextFile(`${dir}/policy.json`, JSON.stringify(POLICY));
      await using run = startWatch([
        "--connect",
        agent.url,
        "--key",
        agent.keyFiles!.key,
        "--agent-key",
        agent.keyFiles!.agentKey,
        "--policy",
        `${dir}/policy.json`,
        "--name",
        "solo",
        "--interval",
        "1s",
        "--metrics",
        "127.0.0.1:0",
      ]);
      const url = await run.metricsUrl();
      assert.ok(
        await eventually(async () => vmCounts(await scrape(url), "solo").ok >= 2, 60_000),
        run.stderr(),
      );
      assert.equal(await run.stop("SIGINT"), 0, run.stderr());
      const mine = parseLines(run.stdout()).filter((l) => isForbiddenAlert(l, forbidden.pid));
      assert.equal(mine.length, 1, run.stdout());
      assert.equal(mine[0]!.vm, "solo");
    } finally {
      forbidden.kill("SIGKILL");
      await forbidden.status;
      await agent.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("ids watch refuses --config with single-guest flags, and a bad config names the VM (exit 2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-watch-" });
  try {
    await Deno.writeTextFile(
      `${dir}/watch.json`,
      JSON.stringify({ vms: [{ name: "web1", url: "tcp://127.0.0.1:1", key: "missing/id" }] }),
    );
    const combined = await runCli(["ids", "watch", "--config", `${dir}/watch.json`, "--insecure"]);
    assert.equal(combined.code, 2);
    assert.match(combined.stderr, /--config cannot be combined with --insecure/);
    const bad = await runCli(["ids", "watch", "--config", `${dir}/watch.json`]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /VM "web1": "key" and "agent_key" are required unless "insecure" is true/,
    );
    await Deno.writeTextFile(
      `${dir}/watch.json`,
      JSON.stringify({
        vms: [{ name: "web1", url: "tcp://127.0.0.1:1", key: "missing/id", agent_key: "a.pub" }],
      }),
    );
    const unreadable = await runCli(["ids", "watch", "--config", `${dir}/watch.json`]);
    assert.equal(unreadable.code, 2);
    assert.match(unreadable.stderr, new RegExp(`VM "web1": .*${dir}/missing/id`));
    const interval = await runCli(["ids", "watch", "--interval", "5"]);
    assert.equal(interval.code, 2, "a usage error");
    assert.match(interval.stderr, /Invalid duration "5"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
