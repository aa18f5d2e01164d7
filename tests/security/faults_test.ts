// Faults, against real agents (child processes, real eBPF: needs root): the agent killed in the
// middle of a walk, the IDS gone in the middle of a stream, an object the verifier rejects, a
// full ring buffer, a kernel without BTF, and an agent that is not there yet (or at all).
import assert from "node:assert/strict";
import { preflightProblems, SYSTEM_PATHS } from "../../agent/preflight.ts";
import { bpfObject } from "../../bpf/objects.ts";
import { Guest } from "../../ids/guest.ts";
import {
  encodeFrame,
  FramedConnection,
  FrameReader,
  type Message,
  parseMessage,
  PROTOCOL_VERSION,
  requestMessage,
} from "../../wire/mod.ts";
import { initiateSecure } from "../../wire/secure/secure_stream.ts";
import { signObject } from "../../wire/secure/sign.ts";
import {
  IS_ROOT,
  makeKeys,
  sleep,
  startAgent,
  startSleepers,
  type TestAgent,
  withAgent,
} from "../_helpers/agent.ts";
import {
  connectRaw,
  deadline,
  FakeAgent,
  freePort,
  heldBpf,
  isAlive,
  Relay,
  sections,
  waitUnloaded,
} from "../_helpers/security.ts";
import { processView } from "../../ids/os/process_view.ts";

const ignore = !IS_ROOT;
const ALL = 0xffff_ffff;
/** The walks below cover at least this many tasks (processes): this many are ours. */
const TASKS = 3000;

function walkParams(start: bigint, limit: number): Uint8Array {
  const params = new Uint8Array(16);
  new DataView(params.buffer).setBigUint64(0, start, true);
  new DataView(params.buffer).setUint32(8, limit, true);
  return params;
}

/** A raw protocol connection: the secure channel, framed, with its TCP socket at hand. */
interface Peer {
  raw: Deno.Conn;
  conn: FramedConnection;
  nextId: number;
  agent: TestAgent;
}

async function connect(agent: TestAgent): Promise<Peer> {
  const raw = await connectRaw(agent.url);
  const stream = await initiateSecure(raw, {
    staticKey: agent.security.identity!.noise,
    remoteStatic: agent.security.agentKey!.noise,
  });
  const peer = { raw, conn: new FramedConnection(stream), nextId: 1, agent };
  assert.equal((await ask(peer, "hello", { version: PROTOCOL_VERSION })).type, "result");
  return peer;
}

/** Sends a request and reads up to its result or error (loads are signed). */
async function ask(peer: Peer, op: string, args: Record<string, unknown> = {}): Promise<Message> {
  if (op === "load") {
    args = {
      ...args,
      signature: await signObject(peer.agent.keys.ids, args.object as Uint8Array),
    };
  }
  const id = peer.nextId++;
  await peer.conn.send(requestMessage(id, op, args));
  for (;;) {
    const message = await deadline(peer.conn.receive(), 20_000, op);
    assert.ok(message, `the agent closed the connection instead of answering ${op}`);
    if (message.type === "result" || message.type === "error") return message;
  }
}

const CUT_OFF = /connection closed|close notice|cut off|reset/i;

Deno.test({
  name:
    `with ${TASKS}+ processes: full ring buffers, and faults in the middle of long walks (root)`,
  ignore,
  fn: async (t) => {
    // 3,000 processes of our own (others come and go on a shared machine): about 600 tasks
    // fill the 4 MiB ring buffer.
    await using sleepers = await startSleepers(TASKS);

    await t.step(
      "a bulk walk fills the ring buffer, resumes, and completes with 0 misses",
      async () => {
        await withAgent(async (agent) => {
          const guest = await Guest.open(agent.url, agent.security);
          try {
            const { items, cost } = await guest.acquire(processView(), "bulk");
            assert.ok(items.length >= TASKS, `${items.length} processes`);
            assert.equal(cost.misses, 0, "every page the views read came with the walk");
            assert.equal(cost.roundTrips, 1, "one request");
            const listed = new Set(items.map((p) => p.pid));
            const missing = sleepers.pids.filter((pid) => !listed.has(pid));
            assert.deepEqual(missing, [], "every extra process is listed");
            // The same walk, raw: the ring buffer (4 MiB) filled, so the program was fired again.
            const handle = await guest.client.load("walk_tasks", bpfObject("walk_tasks"));
            const run = await guest.client.run(handle, walkParams(0n, ALL));
            assert.ok(run.body.fires > 1, `the walk took ${run.body.fires} fire(s)`);
            assert.ok(run.body.bytes > 4 * 2 ** 20, `${run.body.bytes} bytes of records`);
          } finally {
            guest.close();
          }
        });
      },
    );

    await t.step(
      "the agent killed in the middle of a bulk walk: the IDS call rejects, nothing is left in the kernel",
      async () => {
        const agent = await startAgent();
        const relay = new Relay(agent.url);
        try {
          const guest = await Guest.open(relay.url, agent.security);
          try {
            const held = heldBpf(agent.pid);
            assert.ok(
              held.programs.size >= 3 && held.links.size >= 3,
              JSON.stringify([...held.links]),
            );
            let streamed = 0;
            let killed = false;
            relay.onAgentBytes = (bytes) => {
              streamed += bytes;
              if (!killed && streamed > 2 * 2 ** 20) {
                killed = Deno.kill(agent.pid, "SIGKILL") === undefined;
              }
            };
            const outcome = await deadline(
              guest.acquire(processView(), "bulk").then(() => undefined, (error: unknown) => error),
              20_000,
              "the bulk walk after the agent was killed",
            );
            assert.ok(killed, "the walk finished before 2 MiB had streamed");
            assert.ok(outcome instanceof Error, "the walk resolved although the agent was killed");
            assert.match(outcome.message, CUT_OFF);
            assert.equal((await agent.process.status).signal, "SIGKILL");
            assert.deepEqual(await waitUnloaded(held), { programs: [], links: [] });
          } finally {
            guest.close();
          }
        } finally {
          await relay.close();
          await agent.stop();
        }
      },
    );

    await t.step("the agent killed in the middle of a page-mode walk: same", async () => {
      const agent = await startAgent();
      try {
        const guest = await Guest.open(agent.url, agent.security);
        try {
          const held = heldBpf(agent.pid);
          let settled = false;
          const walk = guest.acquire(processView(), "page").then(
            () => undefined,
            (error: unknown) => error,
          ).finally(() => settled = true);
          await sleep(400);
          assert.ok(!settled, "the page-mode walk was over before the kill");
          Deno.kill(agent.pid, "SIGKILL");
          const outcome = await deadline(walk, 20_000, "the page walk after the agent was killed");
          assert.ok(outcome instanceof Error, "the walk resolved although the agent was killed");
          assert.match(outcome.message, CUT_OFF);
          assert.deepEqual(await waitUnloaded(held), { programs: [], links: [] });
        } finally {
          guest.close();
        }
      } finally {
        await agent.stop();
      }
    });

    await t.step(
      "the IDS gone in the middle of a streamed run: the agent releases that connection's programs and serves another",
      async () => {
        await withAgent(async (agent) => {
          const peer = await connect(agent);
          let held: ReturnType<typeof heldBpf>;
          try {
            for (const name of ["walk_tasks", "read_page"] as const) {
              const loaded = await ask(peer, "load", { name, object: bpfObject(name) });
              assert.equal(loaded.type, "result", JSON.stringify(loaded));
            }
            held = heldBpf(agent.pid);
            assert.equal(held.programs.size, 2);
            const id = peer.nextId++;
            await peer.conn.send(
              requestMessage(id, "run", { handle: 1, params: walkParams(0n, ALL) }),
            );
            const first = await deadline(peer.conn.receive(), 20_000, "the first chunk");
            assert.equal(first?.type, "chunk", "the run streams chunks");
          } finally {
            // Gone without a word: the TCP socket closes under the secure channel.
            peer.raw.close();
          }
          assert.deepEqual(await waitUnloaded(held), { programs: [], links: [] });
          assert.ok(isAlive(agent.pid), "the agent died");
          await deadline(
            (async () => {
              while (!/connection from \S+ (failed|closed)/.test(agent.process.stderr)) {
                await sleep(50);
              }
            })(),
            10_000,
            "the agent's log line",
          );
          const guest = await Guest.open(agent.url, agent.security);
          try {
            const listed = new Set(
              (await guest.acquire(processView(), "bulk")).items.map((p) => p.pid),
            );
            assert.ok(sleepers.pids.every((pid) => listed.has(pid)), "the walk lists all sleepers");
          } finally {
            guest.close();
          }
        }, { verbose: true });
      },
    );
  },
});

const SHF_EXECINSTR = 4n;

Deno.test({
  name:
    "an eBPF object the verifier or libbpf rejects fails with a clear error naming the call; the connection stays usable (root)",
  ignore,
  fn: (t) =>
    withAgent(async (agent) => {
      const peer = await connect(agent);
      try {
        await t.step(
          "walk_tasks with its first instruction replaced by exit (the verifier refuses)",
          async () => {
            const object = bpfObject("walk_tasks").slice();
            const program = sections(object).find((s) => s.name === "uprobe");
            assert.ok(program, "walk_tasks has a uprobe section");
            object.set([0x95, 0, 0, 0, 0, 0, 0, 0], program.offset); // BPF_JMP | BPF_EXIT
            const answer = await ask(peer, "load", { name: "walk_tasks", object });
            assert.equal(answer.type, "error", JSON.stringify(answer));
            if (answer.type !== "error") return;
            assert.equal(answer.code, "failed");
            assert.match(answer.message, /bpf_object__load\(walk_tasks\) failed: Invalid argument/);
            assert.match(
              answer.message,
              /PROG LOAD LOG/,
              "the verifier's log comes with the error",
            );
          },
        );
        await t.step("an object with no program (no executable section)", async () => {
          const object = bpfObject("read_page").slice();
          const view = new DataView(object.buffer);
          for (const section of sections(object)) {
            if (section.flags & SHF_EXECINSTR) {
              view.setBigUint64(section.at + 8, section.flags & ~SHF_EXECINSTR, true);
            }
          }
          const answer = await ask(peer, "load", { name: "empty", object });
          assert.equal(answer.type, "error", JSON.stringify(answer));
          if (answer.type !== "error") return;
          assert.equal(answer.code, "failed");
          assert.match(
            answer.message,
            /eBPF object empty must hold exactly one program|bpf_object__(open_mem|load)\(empty\) failed/,
          );
        });
        assert.equal(heldBpf(agent.pid).programs.size, 0, "a failed load leaves nothing loaded");
        assert.equal((await ask(peer, "ping")).type, "result");
        const loaded = await ask(peer, "load", {
          name: "walk_tasks",
          object: bpfObject("walk_tasks"),
        });
        assert.equal(loaded.type, "result", "the honest object still loads on the same connection");
      } finally {
        peer.conn.close();
      }
    }),
});

Deno.test("the agent's preflight names a kernel without BTF", () => {
  const problems = preflightProblems({ ...SYSTEM_PATHS, btf: "/nonexistent/btf/vmlinux" });
  assert.ok(
    problems.includes(
      "This kernel has no BTF (/nonexistent/btf/vmlinux is missing): the agent needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
    ),
    JSON.stringify(problems),
  );
});

Deno.test("Guest.open says so when the agent reports a kernel without BTF (btf_bytes 0)", async () => {
  const keys = await makeKeys();
  const asked: string[] = [];
  const fake = new FakeAgent(keys, async (stream) => {
    const reader = new FrameReader(stream.readable);
    for (let value = await reader.next(); value !== null; value = await reader.next()) {
      const request = parseMessage(value);
      if (request.type !== "request") return;
      asked.push(request.op);
      const body = request.op === "hello"
        ? { version: PROTOCOL_VERSION, agent: "fake", pid: 1, release: "6.1.0-nobtf" }
        : request.op === "kernel_info"
        ? { release: "6.1.0-nobtf", arch: "x86_64", page_size: 4096, btf_bytes: 0, hostname: "g" }
        : undefined;
      await stream.write(
        encodeFrame(
          body === undefined
            ? { type: "error", id: request.id, code: "unknown_op", message: "No" }
            : { type: "result", id: request.id, body },
        ),
      );
    }
  });
  try {
    await assert.rejects(
      deadline(Guest.open(fake.url, keys.security), 10_000, "Guest.open"),
      /Guest kernel 6\.1\.0-nobtf has no BTF \(\/sys\/kernel\/btf\/vmlinux\): ebpfmonitor needs CONFIG_DEBUG_INFO_BTF=y/,
    );
    assert.deepEqual(asked, ["hello", "kernel_info"], "nothing more was asked of the guest");
  } finally {
    await fake.close();
    await keys.remove();
  }
});

Deno.test({
  name:
    "Guest.open retries with backoff: it reaches an agent that starts listening a second later (root)",
  ignore,
  fn: async () => {
    const keys = await makeKeys();
    const port = freePort();
    let agent: TestAgent | undefined;
    try {
      const opening = Guest.open(`tcp://127.0.0.1:${port}`, keys.security, {
        backoff: { attempts: 12, firstDelayMs: 100, maxDelayMs: 500, retryRefused: true },
      });
      opening.catch(() => {}); // awaited below
      await sleep(1000);
      agent = await startAgent({ keys, port });
      const guest = await deadline(opening, 20_000, "Guest.open");
      try {
        // Nothing listened when it first dialed: only a retry can have reached the agent.
        assert.ok(
          (await guest.acquire(processView(), "bulk")).items.some((p) => p.pid === agent!.pid),
        );
      } finally {
        guest.close();
      }
    } finally {
      await agent?.stop();
      await keys.remove();
    }
  },
});

Deno.test("Guest.open against nothing fails with the connect error, retrying or not", async () => {
  const keys = await makeKeys();
  try {
    const port = freePort();
    // How many tries and waits: tests/ids/client/backoff_test.ts counts them.
    for (const retryRefused of [false, true]) {
      await assert.rejects(
        Guest.open(`tcp://127.0.0.1:${port}`, keys.security, {
          backoff: { attempts: 4, firstDelayMs: 100, maxDelayMs: 200, retryRefused },
        }),
        new RegExp(`Cannot connect to tcp://127\\.0\\.0\\.1:${port}: Connection refused`),
      );
    }
  } finally {
    await keys.remove();
  }
});

Deno.test({
  name:
    "known issue: a signed object with a malformed .BTF section kills the agent (libbpf 1.1.2 segfaults in bpf_object__open_mem) (root)",
  // Run with KNOWN_ISSUES=1. The object is read_page.bpf.o with two bytes of its .BTF changed
  // (found by fuzz_test.ts with FUZZ_SEED=4242); only a trusted IDS key can sign such an object.
  ignore: ignore || !Deno.env.get("KNOWN_ISSUES"),
  fn: () =>
    withAgent(async (agent) => {
      const object = await Deno.readFile(
        new URL("./testdata/read_page.btf_segfault.bpf.o", import.meta.url),
      );
      const peer = await connect(agent);
      try {
        const answer = await ask(peer, "load", { name: "read_page", object }).catch((e) => e);
        assert.ok(isAlive(agent.pid), `the agent died: ${String(answer)}`);
        assert.equal(answer.type, "error", JSON.stringify(answer));
      } finally {
        peer.conn.close();
      }
    }),
});
