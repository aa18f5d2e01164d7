// Three guests at once (Debian 11's, 12's and 13's kernels: 5.10, 6.1, 6.12) booted in parallel under QEMU
// (TCG), watched by one `ids watch --config`: each is checked on its own schedule; when one
// guest's QEMU is killed, that guest alone is reported unreachable while the others keep being
// checked. Counts of checks come from the watch's /metrics, scraped over HTTP.
//
// Needs qemu-system-x86_64 (scripts/setup.sh). Skipped only when QEMU is absent and
// EBPFMONITOR_SKIP_VM=1.
import assert from "node:assert/strict";
import { eventually } from "../_helpers/agent.ts";
import { sampleValue } from "../_helpers/prometheus.ts";
import { readLines, scrape, startWatch, vmCounts } from "../_helpers/watch.ts";
import { buildImage, type KernelName } from "./image.ts";
import { bedKeys } from "./keys.ts";
import { hasQemu, Vm } from "./qemu.ts";

const QEMU = hasQemu();
const SKIP = !QEMU && Deno.env.get("EBPFMONITOR_SKIP_VM") === "1";

/** The guests: name and kernel. */
const GUESTS: [string, KernelName][] = [["g1-6.1", "6.1"], ["g2-6.12", "6.12"], [
  "g3-5.10",
  "5.10",
]];

/** Boots every guest in parallel; stops those that started when one fails. */
async function bootAll(kernels: KernelName[]): Promise<Vm[]> {
  const images = new Map<KernelName, Awaited<ReturnType<typeof buildImage>>>();
  for (const kernel of new Set(kernels)) {
    images.set(kernel, await buildImage(kernel, { log: (line) => console.error(`vm: ${line}`) }));
  }
  const started = await Promise.allSettled(
    kernels.map((kernel) =>
      Vm.start(images.get(kernel)!, { readyTimeoutMs: 240_000, lifetimeMs: 15 * 60_000 })
    ),
  );
  const vms = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const failed = started.find((r) => r.status === "rejected");
  if (failed !== undefined) {
    await Promise.all(vms.map((vm) => vm.stop()));
    throw (failed as PromiseRejectedResult).reason;
  }
  return vms;
}

/** The alert lines written so far, for a failure message. */
async function alertText(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "(no alert lines)");
}

Deno.test({
  name:
    "three guests at once: ids watch --config checks each on its schedule, and a killed guest alone is reported unreachable",
  ignore: SKIP,
  fn: async () => {
    if (!QEMU) {
      throw new Error(
        "qemu-system-x86_64 is not installed: run scripts/setup.sh (or set EBPFMONITOR_SKIP_VM=1 to skip the VM tests)",
      );
    }
    const keys = await bedKeys();
    const vms = await bootAll(GUESTS.map(([, kernel]) => kernel));
    const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-vm-watch-" });
    try {
      console.error(
        `vm: booted ${vms.map((vm) => `${vm.image.release} in ${vm.bootMs} ms`).join(", ")}`,
      );
      assert.equal(new Set(vms.map((vm) => vm.url)).size, 3, "each guest has its own host port");
      await Deno.writeTextFile(
        `${dir}/watch.json`,
        JSON.stringify({
          vms: GUESTS.map(([name], i) => ({
            name,
            url: vms[i]!.url,
            key: keys.idsKey,
            agent_key: keys.agentPublic,
            interval: "2s",
            timeout: "90s",
          })),
        }),
      );
      const out = `${dir}/alerts.jsonl`;
      await using run = startWatch([
        "--config",
        `${dir}/watch.json`,
        "--out",
        out,
        "--metrics",
        "127.0.0.1:0",
      ]);
      const url = await run.metricsUrl();
      let metrics = await scrape(url);
      const counts = (vm: string) => vmCounts(metrics, vm);
      const names = GUESTS.map(([name]) => name);
      assert.ok(
        await eventually(async () => {
          metrics = await scrape(url);
          return names.every((name) => counts(name).ok >= 2);
        }, 300_000),
        `not every guest was checked twice:\n${run.stderr()}\n${await alertText(out)}`,
      );
      let lines = await readLines(out);
      assert.deepEqual(lines.filter((l) => l.detector === "agent_unreachable"), []);
      for (const name of names) {
        assert.deepEqual(
          { failures: counts(name).failures, up: counts(name).up },
          { failures: 0, up: 1 },
          name,
        );
        assert.ok(sampleValue(metrics, "ebpfmonitor_round_trips_total", { vm: name })! > 0);
        assert.ok(sampleValue(metrics, "ebpfmonitor_bytes_total", { vm: name })! > 0);
      }

      // Kill the second guest's QEMU: that guest alone is lost, the others go on.
      const [killed, ...others] = [names[1]!, names[0]!, names[2]!];
      Deno.kill(vms[1]!.pid, "SIGKILL");
      const before = new Map(others.map((name) => [name, counts(name).ok]));
      assert.ok(
        await eventually(async () => {
          metrics = await scrape(url);
          lines = await readLines(out);
          return lines.some((l) => l.vm === killed && l.detector === "agent_unreachable") &&
            others.every((name) => counts(name).ok >= before.get(name)! + 2);
        }, 300_000),
        `no agent_unreachable for ${killed}, or the others stopped being checked:\n${run.stderr()}\n${await alertText(
          out,
        )}`,
      );
      const unreachable = lines.filter((l) => l.detector === "agent_unreachable");
      assert.deepEqual(unreachable.map((l) => l.vm), [killed]);
      assert.equal(unreachable[0]!.severity, "high");
      assert.equal(counts(killed).up, 0);
      for (const name of others) {
        assert.deepEqual({ failures: counts(name).failures, up: counts(name).up }, {
          failures: 0,
          up: 1,
        }, name);
      }
      assert.equal(
        sampleValue(metrics, "ebpfmonitor_alerts_active", {
          vm: killed,
          detector: "agent_unreachable",
          severity: "high",
        }),
        1,
      );
      assert.equal(await run.stop("SIGTERM"), 0, run.stderr());
    } finally {
      await Promise.all(vms.map((vm) => vm.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
