// Keys and start-up, through the CLI as a user runs it (`deno run -A main.ts ...`): keygen,
// the agent's and the IDS's refusals, --insecure, and the IDS against a secure agent with
// right and wrong keys. The tests that start an agent need root.
import assert from "node:assert/strict";
import { AgentServer, DEFAULT_SERVER_LIMITS } from "../../agent/server.ts";
import { publicIdentity } from "../../wire/secure/keys.ts";
import { CliProcess, IS_ROOT, makeKeys, runCli, sleep, withAgent } from "../_helpers/agent.ts";
import { deadline } from "../_helpers/security.ts";

const PUBLIC_KEY_LINE = /^ebpfmonitor-id-v1 x25519:[A-Za-z0-9+/]{43}= ed25519:[A-Za-z0-9+/]{43}=/;

async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

Deno.test("keygen --out DIR writes DIR/id with mode 0600 and DIR/id.pub, and prints the public key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-keygen-" });
  try {
    const out = `${dir}/keys`;
    const run = await runCli(["keygen", "--out", out, "--comment", "test ids"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await mode(`${out}/id`), 0o600);
    assert.equal((await mode(`${out}/id.pub`)) & 0o022, 0, "id.pub is not writable by others");
    assert.equal((await mode(out)) & 0o077, 0, "the key folder is private");
    const pub = (await Deno.readTextFile(`${out}/id.pub`)).trim();
    assert.match(pub, PUBLIC_KEY_LINE);
    assert.ok(pub.endsWith(" test ids"), pub);
    assert.equal(run.stdout.trim(), pub, "keygen prints the public key line");
    // The private half is never printed, and a second keygen never overwrites it.
    const secret = (await Deno.readTextFile(`${out}/id`)).split(" ")[1]!;
    assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret));
    const before = await Deno.readTextFile(`${out}/id`);
    const again = await runCli(["keygen", "--out", out]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /already exists/);
    assert.equal(await Deno.readTextFile(`${out}/id`), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("agent with neither --key/--trust nor --insecure exits 2 naming all three options", async (t) => {
  await t.step("no option at all", async () => {
    const run = await runCli(["agent", "--listen", "tcp://127.0.0.1:0"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--key/);
    assert.match(run.stderr, /--trust/);
    assert.match(run.stderr, /--insecure/);
    assert.doesNotMatch(run.stdout, /listening on/);
  });
  const keys = await makeKeys();
  try {
    await t.step("--key without --trust", async () => {
      const run = await runCli([
        "agent",
        "--listen",
        "tcp://127.0.0.1:0",
        "--key",
        keys.files.agentKey,
      ]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /--key DIR\/id --trust IDS\.pub\), or --insecure/);
      assert.doesNotMatch(run.stdout, /listening on/);
    });
  } finally {
    await keys.remove();
  }
});

Deno.test("a private key readable by group and others (mode 0644) is refused by the agent and by the IDS", async (t) => {
  const keys = await makeKeys();
  try {
    await Deno.chmod(keys.files.agentKey, 0o644);
    await Deno.chmod(keys.files.idsKey, 0o644);
    await t.step("agent --key", async () => {
      const run = await runCli([
        "agent",
        "--listen",
        "tcp://127.0.0.1:0",
        "--key",
        keys.files.agentKey,
        "--trust",
        keys.files.idsPub,
      ]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /Private key \S+ is readable by group and others \(mode 0644\): chmod 600 it/,
      );
      assert.doesNotMatch(run.stdout, /listening on/);
    });
    await t.step("ids --key", async () => {
      const run = await runCli([
        "ids",
        "ps",
        "--connect",
        "tcp://127.0.0.1:1",
        "--key",
        keys.files.idsKey,
        "--agent-key",
        keys.files.agentPub,
      ]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /Private key \S+ is readable by group and others \(mode 0644\): chmod 600 it/,
      );
      assert.doesNotMatch(run.stderr, /Cannot connect/, "the key is checked before connecting");
      assert.equal(run.stdout, "");
    });
  } finally {
    await keys.remove();
  }
});

/** Runs `agent ARGS` and asserts exit code 2 and exactly `message` on stderr (one line). */
async function assertAgentRefuses(args: string[], message: string): Promise<void> {
  const run = await runCli(["agent", ...args]);
  assert.equal(run.stderr, `ebpfmonitor agent: ${message}\n`);
  assert.equal(run.code, 2);
  assert.equal(run.stdout, "");
}

Deno.test("agent key files: the format is named before the mode, group and others as they are (exit 2)", async (t) => {
  const keys = await makeKeys();
  const listen = ["--listen", "tcp://127.0.0.1:0"];
  const { agentKey, agentPub, idsPub } = keys.files;
  try {
    await t.step("--key id.pub (a public key, mode 0644)", async () => {
      await assertAgentRefuses(
        [...listen, "--key", agentPub, "--trust", idsPub],
        `Private key ${agentPub} is a public key (an id.pub): give the private key, DIR/id, made by keygen beside it`,
      );
    });
    await t.step("a private key readable by group (mode 0640)", async () => {
      await Deno.chmod(agentKey, 0o640);
      await assertAgentRefuses(
        [...listen, "--key", agentKey, "--trust", idsPub],
        `Private key ${agentKey} is readable by group (mode 0640): chmod 600 it`,
      );
      await Deno.chmod(agentKey, 0o600);
    });
    await t.step("a trusted keys file writable by group and others (mode 0666)", async () => {
      await Deno.chmod(idsPub, 0o666);
      await assertAgentRefuses(
        [...listen, "--key", agentKey, "--trust", idsPub],
        `Trusted keys file ${idsPub} is writable by group and others (mode 0666): chmod 644 it`,
      );
      await Deno.chmod(idsPub, 0o644);
    });
  } finally {
    await keys.remove();
  }
});

Deno.test("agent --insecure: loopback only unless --insecure-anywhere, never with keys (exit 2)", async (t) => {
  const keys = await makeKeys();
  try {
    await t.step("--insecure with --key and --trust", async () => {
      await assertAgentRefuses(
        [
          "--listen",
          "tcp://127.0.0.1:0",
          "--insecure",
          "--key",
          keys.files.agentKey,
          "--trust",
          keys.files.idsPub,
        ],
        "--insecure turns authentication off: it cannot be combined with --key or --trust",
      );
    });
    await t.step("--insecure with --trust only", async () => {
      await assertAgentRefuses(
        ["--listen", "tcp://127.0.0.1:0", "--insecure", "--trust", keys.files.idsPub],
        "--insecure turns authentication off: it cannot be combined with --key or --trust",
      );
    });
    for (const url of ["tcp://0.0.0.0:0", "tcp://[::]:0", "vsock://any:7070"]) {
      await t.step(`--insecure on ${url}`, async () => {
        await assertAgentRefuses(
          ["--listen", url, "--insecure"],
          `--insecure listens only on a loopback address (tcp://127.0.0.1:PORT), not on ${url}: anyone who reaches it could read kernel memory; add --insecure-anywhere to insist`,
        );
      });
    }
    await t.step("--insecure-anywhere without --insecure", async () => {
      await assertAgentRefuses(
        [
          "--listen",
          "tcp://0.0.0.0:0",
          "--insecure-anywhere",
          "--key",
          keys.files.agentKey,
          "--trust",
          keys.files.idsPub,
        ],
        "--insecure-anywhere only applies with --insecure",
      );
    });
  } finally {
    await keys.remove();
  }
});

Deno.test({
  name: "agent --insecure prints a WARNING line on stderr and still serves (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const agent = new CliProcess(["agent", "--listen", "tcp://127.0.0.1:0", "--insecure"]);
    try {
      const url = (await agent.waitFor(/listening on (\S+)/))[1]!;
      await deadline(
        (async () => {
          while (!agent.stderr.includes("\n")) await sleep(20);
        })(),
        5000,
        "the warning",
      );
      const warning = agent.stderr.split("\n").find((line) => /WARNING/.test(line));
      assert.ok(warning, `no WARNING line on stderr: ${agent.stderr}`);
      assert.match(warning, /--insecure/);
      assert.match(warning, /plaintext and unauthenticated/);
      assert.match(warning, /eBPF objects load unsigned/);
      assert.ok(!agent.stdout.includes("WARNING"), "the warning goes to stderr only");
      const run = await runCli(["ids", "ps", "--connect", url, "--insecure", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      const processes = JSON.parse(run.stdout) as { pid: number }[];
      assert.ok(processes.some((p) => p.pid === agent.pid), "the agent's own task is listed");
    } finally {
      await agent.stop();
    }
  },
});

Deno.test({
  name: "ids against a secure agent: works with its keys, fails clearly with wrong keys (root)",
  ignore: !IS_ROOT,
  fn: (t) =>
    withAgent(async (agent) => {
      const files = agent.keys.files;
      await t.step("ids ps with --key and --agent-key works", async () => {
        const run = await runCli([
          "ids",
          "ps",
          "--connect",
          agent.url,
          "--key",
          files.idsKey,
          "--agent-key",
          files.agentPub,
          "--json",
        ]);
        assert.equal(run.code, 0, run.stderr);
        const processes = JSON.parse(run.stdout) as { pid: number }[];
        assert.ok(processes.some((p) => p.pid === agent.pid), "the agent's own task is listed");
      });
      const strangers = await makeKeys();
      try {
        const refused =
          /Cannot open a secure channel to tcp:\/\/127\.0\.0\.1:\d+: Handshake failed: the peer closed the connection without answering: it does not hold the pinned key or does not trust this key/;
        await t.step("an IDS key the agent does not trust", async () => {
          const run = await runCli([
            "ids",
            "ps",
            "--connect",
            agent.url,
            "--key",
            strangers.files.idsKey,
            "--agent-key",
            files.agentPub,
          ]);
          assert.equal(run.code, 2, run.stderr);
          assert.match(run.stderr, refused);
          assert.equal(run.stdout, "");
        });
        await t.step("a wrong pinned agent key", async () => {
          const run = await runCli([
            "ids",
            "ps",
            "--connect",
            agent.url,
            "--key",
            files.idsKey,
            "--agent-key",
            strangers.files.agentPub,
          ]);
          assert.equal(run.code, 2, run.stderr);
          assert.match(run.stderr, refused);
          assert.equal(run.stdout, "");
        });
      } finally {
        await strangers.remove();
      }
      await t.step("ids --insecure against the secure agent", async () => {
        const run = await runCli(["ids", "ps", "--connect", agent.url, "--insecure"]);
        assert.equal(run.code, 2, run.stderr);
        assert.match(
          run.stderr,
          /it probably requires a secure channel \(use --key and --agent-key instead of --insecure\)/,
        );
        assert.equal(run.stdout, "");
      });
      // The refused peers did not hurt the agent.
      const run = await runCli([
        "ids",
        "ps",
        "--connect",
        agent.url,
        "--key",
        files.idsKey,
        "--agent-key",
        files.agentPub,
        "--limit",
        "1",
      ]);
      assert.equal(run.code, 0, run.stderr);
    }),
});

Deno.test("ids ps against an agent that answers only busy notices says so, not that a key is wrong", async () => {
  const keys = await makeKeys();
  // An agent that admits no session at all: every connection gets the busy notice.
  const server = new AgentServer(
    "tcp://127.0.0.1:0",
    { identity: keys.agent, trusted: [publicIdentity(keys.ids)], insecure: false },
    () => {},
    { ...DEFAULT_SERVER_LIMITS, connections: 0 },
  );
  const serving = server.serve();
  try {
    const run = await runCli([
      "ids",
      "ps",
      "--connect",
      server.url,
      "--key",
      keys.files.idsKey,
      "--agent-key",
      keys.files.agentPub,
    ]);
    assert.equal(
      run.stderr,
      `ebpfmonitor: Cannot open a secure channel to ${server.url}: agent busy or under attack (6 tries): Handshake refused: the agent is busy or under attack (it answered with a busy notice)\n`,
    );
    assert.equal(run.code, 2);
    assert.equal(run.stdout, "");
  } finally {
    server.close();
    await serving;
    await keys.remove();
  }
});
