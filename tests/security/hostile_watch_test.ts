// `ids watch` with one hostile guest and one honest guest (issue 15): the hostile guest's lie
// ends each of its checks with a `hostile_agent` alert line, while the honest guest keeps being
// checked, the metrics endpoint keeps answering, SIGTERM stops the watch, and the IDS's peak
// memory stays under a ceiling. Needs root (the real agent behind both guests loads eBPF).
import assert from "node:assert/strict";
import { IS_ROOT, makeKeys, sleep, startAgent, type TestAgent } from "../_helpers/agent.ts";
import { type AlertLine, parseLines, scrape, startWatch, vmCounts } from "../_helpers/watch.ts";
import {
  drip,
  floodRecords,
  hashMasks,
  hugeKallsyms,
  type Lie,
  LyingAgent,
  patchU32,
  RssSampler,
} from "../_helpers/hostile_agent.ts";
import { deadline } from "../_helpers/security.ts";

/** The IDS's peak RSS must stay under this (measured peaks: docs/security.md). */
const RSS_CEILING = 1536 << 20;
/** Successful checks of the honest guest the test waits for. */
const HONEST_CHECKS = 8;

/**
 * Watches a guest behind a lying agent and an honest one, until the honest one had
 * HONEST_CHECKS good checks and the hostile one its first alert of `detector`.
 */
async function watchWithLiar(
  lie: (agent: TestAgent) => Promise<Lie>,
  hostileTimeout: string,
  detector: string,
): Promise<AlertLine[]> {
  const keys = await makeKeys();
  const agent = await startAgent({ keys });
  const liar = new LyingAgent(keys, agent.url, await lie(agent));
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-hostile-watch-" });
  const vm = (name: string, url: string, timeout: string) => ({
    name,
    url,
    key: keys.files.idsKey,
    agent_key: keys.files.agentPub,
    interval: "1s",
    timeout,
  });
  await Deno.writeTextFile(
    `${dir}/watch.json`,
    JSON.stringify({
      vms: [vm("hostile", liar.url, hostileTimeout), vm("honest", agent.url, "20s")],
    }),
  );
  await using run = startWatch(["--config", `${dir}/watch.json`, "--metrics", "127.0.0.1:0"]);
  const rss = new RssSampler(run.pid, RSS_CEILING);
  try {
    const url = await deadline(run.metricsUrl(), 30_000, "the metrics endpoint");
    let slowestScrapeMs = 0;
    let counts = { honest: vmCounts(new Map(), "honest"), hostile: vmCounts(new Map(), "hostile") };
    const alerted = () =>
      parseLines(run.stdout()).some((l) => l.vm === "hostile" && l.detector === detector);
    const until = Date.now() + 120_000;
    while ((counts.honest.ok < HONEST_CHECKS || !alerted()) && Date.now() < until) {
      assert.ok(!rss.killed, `the IDS went past ${RSS_CEILING} bytes`);
      const started = performance.now();
      // Every scrape must be answered (a frozen event loop would leave it hanging).
      const metrics = await deadline(scrape(url), 30_000, "a metrics scrape");
      slowestScrapeMs = Math.max(slowestScrapeMs, performance.now() - started);
      counts = { honest: vmCounts(metrics, "honest"), hostile: vmCounts(metrics, "hostile") };
      await sleep(200);
    }
    const code = await deadline(run.stop("SIGTERM"), 30_000, "the watch stopping on SIGTERM");
    const peak = rss.stop();
    console.log(
      `honest ${JSON.stringify(counts.honest)}, hostile ${JSON.stringify(counts.hostile)}, ` +
        `slowest scrape ${slowestScrapeMs.toFixed(0)} ms, peak RSS ${
          (peak / 2 ** 20).toFixed(0)
        } MiB`,
    );
    assert.ok(!rss.killed, `the IDS stayed under ${RSS_CEILING} bytes (peak ${peak})`);
    assert.equal(code, 0, run.stderr());
    const hostile = parseLines(run.stdout()).filter((l) => l.vm === "hostile");
    assert.deepEqual(
      hostile.filter((l) => l.detector === detector).map((l) => [l.severity, l.event]),
      [[detector === "hostile_agent" ? "critical" : "high", "alert"]],
      run.stdout(),
    );
    assert.equal(counts.honest.failures, 0, "no check of the honest guest failed");
    assert.ok(counts.honest.ok >= HONEST_CHECKS, `honest guest checked ${counts.honest.ok} times`);
    assert.ok(counts.hostile.checks >= 1);
    return hostile;
  } finally {
    rss.stop();
    await liar.close();
    await agent.stop();
    await keys.remove();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A hostile guest for the watch, and what its line must say. */
interface WatchCase {
  name: string;
  lie: (agent: TestAgent) => Promise<Lie>;
  /** The hostile VM's `timeout`. */
  timeout: string;
  /** The detector of its first line. */
  detector: string;
  /** What that line's evidence holds: the limit (`hostile_agent`) or the error. */
  evidence: { limit: string } | { error: RegExp };
}

const CASES: WatchCase[] = [
  {
    name: "a guest flooding its task walk with 3 million tiny records",
    lie: () => Promise.resolve(floodRecords("walk_tasks", 3_000_000)),
    timeout: "5s",
    detector: "hostile_agent",
    evidence: { limit: "max_records" },
  },
  {
    name: "a guest with a patched listening hash mask",
    lie: async (agent) => patchU32((await hashMasks(agent)).lhash2, 0x00ff_ffff),
    timeout: "5s",
    detector: "hostile_agent",
    evidence: { limit: "kernel_hash_size" },
  },
  {
    name: "a guest answering a huge kallsyms when connected to",
    lie: () => Promise.resolve(hugeKallsyms(80 << 20)),
    timeout: "5s",
    detector: "hostile_agent",
    evidence: { limit: "max_kallsyms_bytes" },
  },
  {
    // Each answer 700 ms late: connecting alone takes longer than the 3 s deadline.
    name: "a guest dripping its answers past its deadline",
    lie: () => Promise.resolve(drip(700)),
    timeout: "3s",
    detector: "agent_unreachable",
    evidence: { error: /did not finish within 3000 ms/ },
  },
];

for (const c of CASES) {
  Deno.test({
    name: `ids watch: ${c.name} is reported (${c.detector}); the honest guest keeps its schedule`,
    ignore: !IS_ROOT,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const [line] = await watchWithLiar(c.lie, c.timeout, c.detector);
      if ("limit" in c.evidence) assert.equal(line!.evidence.limit, c.evidence.limit);
      else assert.match(String(line!.evidence.error), c.evidence.error);
    },
  });
}
