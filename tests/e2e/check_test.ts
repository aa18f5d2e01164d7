// `ids check` and the detectors on this machine's kernel, with a real agent (as root). This
// kernel has no modules, so hidden_module is skipped here; the VM tests load real rootkit
// fixtures. Here: zero alerts on this clean machine, a real set-user-ID escalation seen by the
// credentials detector, policy and baseline alerts, and the pid IDR view against /proc.
import assert from "node:assert/strict";
import { runChecks } from "../../ids/check/check.ts";
import { DEFAULT_POLICY } from "../../ids/detect/policy.ts";
import { initPidNamespace, listPids } from "../../ids/os/pids.ts";
import { eventually, hasSetpriv, IS_ROOT, runCli, withGuest } from "../_helpers/agent.ts";
import { processView } from "../../ids/os/process_view.ts";
import { socketView } from "../../ids/os/socket_view.ts";

const ignore = !IS_ROOT;

interface CheckJson {
  alerts: {
    detector: string;
    severity: string;
    summary: string;
    evidence: Record<string, unknown>;
  }[];
  skipped: { detector: string; reason: string }[];
  ran: string[];
}

async function checkJson(args: string[]): Promise<{ code: number; report: CheckJson }> {
  const run = await runCli(["ids", "check", "--json", ...args]);
  assert.ok(run.code === 0 || run.code === 1, `exit ${run.code}: ${run.stderr}`);
  return { code: run.code, report: JSON.parse(run.stdout) as CheckJson };
}

Deno.test({
  name: "ids check finds nothing on this clean machine and exits 0",
  ignore,
  async fn() {
    const { code, report } = await checkJson([]);
    assert.deepEqual(report.alerts, []);
    assert.equal(code, 0);
    for (const detector of ["syscall_hook", "hidden_process", "credentials", "policy"]) {
      assert.ok(
        report.ran.includes(detector),
        `${detector} did not run: ${JSON.stringify(report)}`,
      );
    }
    // No CONFIG_MODULES here: said, not silently clean.
    assert.match(
      report.skipped.find((s) => s.detector === "hidden_module")?.reason ?? "",
      /module/,
    );
  },
});

Deno.test({
  name: "the pid IDR view holds every thread /proc lists",
  ignore,
  async fn() {
    await withGuest(async (guest) => {
      // Threads listed before the IDR is read and still there after must be in it.
      const tids: number[] = [];
      for (const p of Deno.readDirSync("/proc")) {
        if (!/^\d+$/.test(p.name)) continue;
        try {
          for (const t of Deno.readDirSync(`/proc/${p.name}/task`)) tids.push(Number(t.name));
        } catch { /* exited */ }
      }
      const { items, memory } = await guest.acquire(processView(), "bulk");
      const ns = await initPidNamespace(memory, guest.profile, items[0]!.addr);
      const pids = await listPids(memory, guest.profile, ns);
      const byNr = new Map(pids.map((p) => [p.nr, p]));
      const alive = (tid: number) => {
        try {
          Deno.statSync(`/proc/${tid}`);
          return true;
        } catch {
          return false;
        }
      };
      // Threads that ended since are gone from both.
      assert.deepEqual(tids.filter((tid) => !byNr.has(tid) && alive(tid)), []);
      // Each listed process is the task of its own pid.
      const before = new Set(tids);
      for (const p of items.filter((p) => before.has(p.pid) && alive(p.pid))) {
        assert.equal(byNr.get(p.pid)?.task, p.addr, `pid ${p.pid}`);
      }
    });
  },
});

Deno.test({
  name: "the credentials detector reports a root process started by a non-root parent",
  ignore: ignore || !hasSetpriv(),
  async fn() {
    // A set-user-ID root copy of sleep, run by a shell as nobody.
    const dir = await Deno.makeTempDir({ dir: "/var/tmp" });
    const binary = `${dir}/suidsleep`;
    await Deno.copyFile("/bin/sleep", binary);
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(binary, 0o4755);
    const shell = new Deno.Command("setpriv", {
      args: ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", `${binary} 60; :`],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const escalated = () => {
        for (const e of Deno.readDirSync("/proc")) {
          try {
            const status = Deno.readTextFileSync(`/proc/${e.name}/status`);
            if (/^Name:\s*suidsleep$/m.test(status) && /^Uid:\s*65534\s+0\b/m.test(status)) {
              return Number(e.name);
            }
          } catch { /* not a process, or gone */ }
        }
        return undefined;
      };
      assert.ok(await eventually(() => Promise.resolve(escalated() !== undefined)));
      const pid = escalated()!;
      const { code, report } = await checkJson([]);
      assert.equal(code, 1);
      const alert = report.alerts.find((a) =>
        a.detector === "credentials" && a.evidence.pid === pid
      );
      assert.ok(alert, `no credentials alert for pid ${pid}: ${JSON.stringify(report.alerts)}`);
      assert.equal(alert.severity, "high");
      assert.equal(alert.evidence.comm, "suidsleep");
      assert.equal(alert.evidence.euid, 0);
      assert.deepEqual(alert.evidence.parent, {
        pid: shell.pid,
        comm: "sh",
        uid: 65534,
        euid: 65534,
      });
      // The policy may allow it by name.
      const policy = `${dir}/policy.json`;
      await Deno.writeTextFile(policy, JSON.stringify({ root_from_user: ["suidsleep"] }));
      const allowed = await checkJson(["--policy", policy]);
      assert.deepEqual(allowed.report.alerts, []);
      assert.equal(allowed.code, 0);
    } finally {
      shell.kill("SIGKILL");
      await shell.status;
      for (const e of Deno.readDirSync("/proc")) {
        try {
          if (Deno.readTextFileSync(`/proc/${e.name}/comm`).trim() === "suidsleep") {
            Deno.kill(Number(e.name), "SIGKILL");
          }
        } catch { /* gone */ }
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "ids check reports processes the policy does not allow and root processes new since the baseline",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const baseline = `${dir}/baseline.json`;
      const saved = await runCli(["ids", "check", "--save-baseline", baseline]);
      assert.equal(saved.code, 0, saved.stderr);
      // A new root process with a name the baseline cannot have seen.
      const name = `newroot${Deno.pid % 10000}`;
      const binary = `${dir}/${name}`;
      await Deno.copyFile("/bin/sleep", binary);
      await Deno.chmod(binary, 0o755);
      const child = new Deno.Command(binary, { args: ["60"], stdin: "null" }).spawn();
      try {
        await eventually(() =>
          Promise.resolve(Deno.readTextFileSync(`/proc/${child.pid}/comm`).trim() === name)
        );
        const drift = await checkJson(["--baseline", baseline]);
        assert.equal(drift.code, 1);
        // Other new processes may be reported too (this machine is not idle): ours must be.
        const alert = drift.report.alerts.find((a) =>
          a.detector === "baseline" && a.evidence.pid === child.pid
        );
        assert.ok(alert, JSON.stringify(drift.report));
        assert.match(alert.summary, new RegExp(`root process ${name} .* new since the baseline`));

        const policy = `${dir}/policy.json`;
        await Deno.writeTextFile(policy, JSON.stringify({ processes: ["*"] }));
        assert.equal((await checkJson(["--policy", policy])).code, 0);
        await Deno.writeTextFile(policy, JSON.stringify({ processes: ["deno", "sleep"] }));
        const violations = (await checkJson(["--policy", policy])).report.alerts;
        assert.ok(violations.some((a) => a.detector === "policy" && a.evidence.pid === child.pid));
        assert.ok(!violations.some((a) => a.evidence.comm === "deno"), "deno is allowed");
      } finally {
        child.kill("SIGKILL");
        await child.status;
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "ids check reports a listening port the policy does not allow",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (listener.addr as Deno.NetAddr).port;
      const policy = `${dir}/policy.json`;
      await Deno.writeTextFile(policy, JSON.stringify({ listening: ["udp/*"] }));
      const { code, report } = await checkJson(["--policy", policy]);
      assert.equal(code, 1);
      const alert = report.alerts.find((a) => a.evidence.listening === `tcp/${port}`);
      assert.ok(alert, `no alert for tcp/${port}: ${JSON.stringify(report.alerts)}`);
      assert.equal(alert.detector, "policy");
      await Deno.writeTextFile(policy, JSON.stringify({ listening: ["tcp/*", "udp/*"] }));
      assert.equal((await checkJson(["--policy", policy])).code, 0);
    } finally {
      listener.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "runChecks() reports what it cost and which detectors it ran",
  ignore,
  async fn() {
    await withGuest(async (guest) => {
      const report = await runChecks(guest, { policy: DEFAULT_POLICY });
      assert.ok(report.cost.roundTrips >= 1);
      assert.ok(report.cost.bytes > 0);
      assert.deepEqual(report.alerts, []);
      assert.equal(report.ran.length + report.skipped.length, 6);
    });
  },
});

Deno.test({
  name: "runChecks() in page mode counts the misses of every view, the sockets' too (root)",
  ignore,
  async fn() {
    await withGuest(async (guest) => {
      // The socket tables' bucket pages are read whatever sockets there are: a stable count.
      const sockets = await guest.acquire(socketView, "page");
      assert.ok(sockets.cost.misses > 0);
      const report = await runChecks(guest, { policy: DEFAULT_POLICY }, { mode: "page" });
      assert.ok(
        report.cost.misses >= sockets.cost.misses,
        `the check missed ${report.cost.misses} pages, the sockets alone ${sockets.cost.misses}`,
      );
    });
  },
});

Deno.test({
  name: "ids check exits 2 with a clear error on a bad policy file",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/p.json`, `{"listening": ["tcp/99999"]}`);
      const run = await runCli(["ids", "check", "--policy", `${dir}/p.json`]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /listening entry "tcp\/99999" is not proto\/port/);
      const missing = await runCli(["ids", "check", "--baseline", `${dir}/none.json`]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /Cannot read baseline .*none\.json/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
