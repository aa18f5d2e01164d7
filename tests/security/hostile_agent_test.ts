// The IDS against a hostile agent (issue 15): a lying agent holding the agent's key proxies
// to a real agent here and rewrites its answers (tests/_helpers/hostile_agent.ts). Each lie ends
// in a clear error naming the limit (`ids ps`, `ids sockets`: exit 2) or the `hostile_agent`
// alert (`ids check`: exit 1), with the IDS's peak memory under a ceiling. Needs root (the
// real agent loads eBPF programs into this machine's kernel).
import assert from "node:assert/strict";
import {
  CliProcess,
  IS_ROOT,
  makeKeys,
  sleep,
  startAgent,
  type TestAgent,
} from "../_helpers/agent.ts";
import { Guest } from "../../ids/guest.ts";
import { DEFAULT_GUEST_LIMITS } from "../../ids/limits.ts";
import { DeadlinePassed } from "../../ids/client/budget.ts";
import {
  drip,
  endlessTasks,
  floodRecords,
  hashMasks,
  hugeKallsyms,
  type Lie,
  LyingAgent,
  patchU32,
  RssSampler,
  taskMembers,
  TRUTH,
} from "../_helpers/hostile_agent.ts";
import { processView } from "../../ids/os/process_view.ts";

/** The IDS's peak RSS must stay under this in every case (measured peaks: docs/security.md). */
const RSS_CEILING = 1536 << 20;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  peakRss: number;
  requests: number;
}

/** Runs `ids ARGS` against a lying agent in front of `agent`; samples the IDS's RSS. */
async function idsAgainst(agent: TestAgent, lie: Lie, args: string[]): Promise<Ran> {
  const liar = new LyingAgent(agent.keys, agent.url, lie);
  const keys = agent.keys.files;
  const ids = new CliProcess([
    "ids",
    ...args,
    "--connect",
    liar.url,
    "--key",
    keys.idsKey,
    "--agent-key",
    keys.agentPub,
  ]);
  const rss = new RssSampler(ids.pid, RSS_CEILING);
  try {
    const status = await ids.finished();
    const peakRss = rss.stop();
    assert.ok(!rss.killed, `the IDS stayed under ${RSS_CEILING} bytes (peak ${peakRss})`);
    return {
      code: status.code,
      stdout: ids.stdout,
      stderr: ids.stderr,
      peakRss,
      requests: liar.requests,
    };
  } finally {
    rss.stop();
    await ids.stop();
    await liar.close();
  }
}

/** Runs `body` with a real agent started here for it (and fresh keys). */
async function withRealAgent(body: (agent: TestAgent) => Promise<void>): Promise<void> {
  const keys = await makeKeys();
  const agent = await startAgent({ keys });
  try {
    await body(agent);
  } finally {
    await agent.stop();
    await keys.remove();
  }
}

/** Logs what a case cost, for docs/security.md. */
function note(name: string, ran: Ran): void {
  console.log(`${name}: exit ${ran.code}, peak RSS ${(ran.peakRss / 2 ** 20).toFixed(0)} MiB`);
}

const root = { ignore: !IS_ROOT, sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "the lying agent tells the truth when told to: ids ps through it exits 0",
  ...root,
  fn: () =>
    withRealAgent(async (agent) => {
      const ran = await idsAgainst(agent, TRUTH, ["ps"]);
      note("truth", ran);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^\s*PID\s+PPID/);
    }),
});

/** `Hostile agent answer (hostile_agent): DETAIL (limit LIMIT)` as `ids` prints it. */
function hostileLine(detail: string, limit: string): string {
  return `ebpfmonitor: Hostile agent answer (hostile_agent): ${detail} (limit ${limit})\n`;
}

/** A lie that ends an `ids` command with exit 2 and exactly `stderr`. */
interface RefusedCase {
  name: string;
  lie: (agent: TestAgent) => Promise<Lie>;
  args: string[];
  stderr: string;
  /** At most this many requests reach the agent (bounded work), when set. */
  maxRequests?: number;
}

const REFUSED: RefusedCase[] = [
  {
    name: "a listening hash mask patched to 0xffffff (ids sockets)",
    lie: async (agent) => patchU32((await hashMasks(agent)).lhash2, 0x00ff_ffff),
    args: ["sockets"],
    stderr: hostileLine(
      "the tcp listening hash's mask 0xffffff makes 16777216 buckets, more than 65536",
      "kernel_hash_size",
    ),
  },
  {
    name: "an established hash mask patched to 0xfffffff (ids sockets)",
    lie: async (agent) => patchU32((await hashMasks(agent)).ehash, 0x0fff_ffff),
    args: ["sockets"],
    stderr: hostileLine(
      "the tcp established hash's mask 0xfffffff makes 268435456 buckets, more than 4194304",
      "max_hash_buckets",
    ),
  },
  {
    name: "an established hash mask that is no power of two minus one (ids sockets --fetch page)",
    lie: async (agent) => patchU32((await hashMasks(agent)).ehash, 0x1234),
    args: ["sockets", "--fetch", "page"],
    stderr: hostileLine(
      "the tcp established hash's mask 0x1234 is not a power of two minus one",
      "hash_mask",
    ),
  },
  {
    name: "a task walk with 3 million tiny records added (72 MB, ids ps)",
    lie: () => Promise.resolve(floodRecords("walk_tasks", 3_000_000)),
    args: ["ps"],
    stderr: hostileLine("the agent sent more than 500000 records for one view", "max_records"),
  },
  {
    name: "a task walk with 600 MiB of tiny records added (ids ps)",
    lie: () => Promise.resolve(floodRecords("walk_tasks", Math.ceil((600 << 20) / 24))),
    args: ["ps"],
    stderr: hostileLine("the agent sent more than 500000 records for one view", "max_records"),
  },
  {
    name: "a task walk with 600 MiB of 64 KiB records added (ids ps)",
    lie: () => Promise.resolve(floodRecords("walk_tasks", 9600, 64 << 10)),
    args: ["ps"],
    stderr: hostileLine("the agent streamed more than 536870912 bytes for one view", "max_bytes"),
  },
  {
    name: "a kallsyms of 80 MiB (ids ps)",
    lie: () => Promise.resolve(hugeKallsyms(80 << 20)),
    args: ["ps"],
    stderr: hostileLine("the guest's kallsyms is larger than 67108864 bytes", "max_kallsyms_bytes"),
  },
  {
    name: "a kallsyms of 2 million tiny lines (ids ps)",
    lie: () => Promise.resolve(hugeKallsyms(2_000_000 * 21)),
    args: ["ps"],
    stderr: hostileLine("the guest's kallsyms has more than 1000000 lines", "max_kallsyms_lines"),
  },
  {
    name: "an endless task list of distinct fabricated tasks (ids ps --fetch page)",
    lie: async (agent) => endlessTasks(await taskMembers(agent)),
    args: ["ps", "--fetch", "page", "--limits", "max_tasks=1000"],
    stderr: hostileLine("the task list holds more than 1000 tasks", "max_tasks"),
  },
  {
    name: "an endless task list of distinct fabricated tasks (ids ps, bulk)",
    lie: async (agent) => endlessTasks(await taskMembers(agent)),
    args: ["ps", "--limits", "max_tasks=1000"],
    stderr: hostileLine("the task list holds more than 1000 tasks", "max_tasks"),
  },
  {
    name: "an endless task list against the default max_tasks, with a deadline of 5 s (ids ps)",
    lie: async (agent) => endlessTasks(await taskMembers(agent)),
    args: ["ps", "--limits", "deadline=5s"],
    stderr: "ebpfmonitor: The deadline of 5000 ms passed before the agent's answers were done " +
      "(limit deadline)\n",
  },
  {
    // Each answer 1.5 s late (within the client's 2-minute timeout per request): without an
    // overall deadline ps would wait for all of them (over a dozen requests).
    name: "every answer dripped 1.5 s late, with a deadline of 4 s (ids ps)",
    lie: () => Promise.resolve(drip(1500)),
    args: ["ps", "--limits", "deadline=4s"],
    stderr: "ebpfmonitor: The deadline of 4000 ms passed before the agent's answers were done " +
      "(limit deadline)\n",
    maxRequests: 5,
  },
];

for (const refused of REFUSED) {
  Deno.test({
    name: `a lying agent is refused with exit 2 naming the limit: ${refused.name}`,
    ...root,
    fn: () =>
      withRealAgent(async (agent) => {
        const ran = await idsAgainst(agent, await refused.lie(agent), refused.args);
        note(refused.name, ran);
        assert.equal(ran.code, 2, ran.stderr);
        assert.equal(ran.stderr, refused.stderr);
        if (refused.maxRequests !== undefined) {
          assert.ok(ran.requests <= refused.maxRequests, `${ran.requests} requests`);
        }
      }),
  });
}

Deno.test({
  name: "ids check --json reports a patched mask as a critical hostile_agent alert and exits 1",
  ...root,
  fn: () =>
    withRealAgent(async (agent) => {
      const masks = await hashMasks(agent);
      const ran = await idsAgainst(agent, patchU32(masks.ehash, 0x0fff_ffff), ["check", "--json"]);
      note("check, ehash mask", ran);
      assert.equal(ran.code, 1, ran.stderr);
      const report = JSON.parse(ran.stdout);
      assert.deepEqual(report.alerts, [{
        detector: "hostile_agent",
        severity: "critical",
        summary: "the guest's agent gave an answer no honest guest gives (limit max_hash_buckets)",
        evidence: {
          limit: "max_hash_buckets",
          error: "Hostile agent answer (hostile_agent): the tcp established hash's mask " +
            "0xfffffff makes 268435456 buckets, more than 4194304 (limit max_hash_buckets)",
        },
      }]);
    }),
});

Deno.test({
  name: "a task list longer than max_tasks ends ids ps with exit 2 naming the limit",
  ...root,
  fn: () =>
    withRealAgent(async (agent) => {
      for (const mode of ["bulk", "fields", "page"]) {
        const ran = await idsAgainst(agent, TRUTH, [
          "ps",
          "--fetch",
          mode,
          "--limits",
          "max_tasks=20",
        ]);
        assert.equal(ran.code, 2, mode);
        assert.equal(
          ran.stderr,
          "ebpfmonitor: Hostile agent answer (hostile_agent): the task list holds more than " +
            "20 tasks (limit max_tasks)\n",
          mode,
        );
      }
    }),
});

Deno.test({
  name: "ids check --json reports a huge kallsyms as a hostile_agent alert and exits 1",
  ...root,
  fn: () =>
    withRealAgent(async (agent) => {
      const ran = await idsAgainst(agent, hugeKallsyms(80 << 20), ["check", "--json"]);
      assert.equal(ran.code, 1, ran.stderr);
      const report = JSON.parse(ran.stdout);
      assert.deepEqual(report.alerts.map((a: { detector: string }) => a.detector), [
        "hostile_agent",
      ]);
      assert.equal(report.alerts[0].evidence.limit, "max_kallsyms_bytes");
      assert.deepEqual(report.ran, []);
    }),
});

Deno.test({
  name: "Guest.open's deadline bounds opening only; a budget started after it bounds what follows",
  ...root,
  fn: () =>
    withRealAgent(async (agent) => {
      const limits = { ...DEFAULT_GUEST_LIMITS, deadlineMs: 3000 };
      const guest = await Guest.open(agent.url, agent.security, { limits });
      try {
        await sleep(3500);
        // A long-lived session (the VM test bed, a library user) keeps working past it.
        assert.ok((await guest.acquire(processView(), "bulk")).items.length > 0);
        guest.startBudget(1);
        await sleep(10);
        await assert.rejects(guest.acquire(processView(), "bulk"), DeadlinePassed);
      } finally {
        guest.close();
      }
    }),
});
