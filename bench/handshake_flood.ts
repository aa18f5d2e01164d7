/**
 * Handshake admission under an unauthenticated flood: how often, and how fast, a trusted IDS's
 * `ids ps` gets through while strangers flood the agent. Not a test: run it by hand (root: the
 * agent loads real eBPF programs) and report what it prints.
 *
 * ```sh
 * deno run -A bench/handshake_flood.ts [--tries 20] [--attackers 500] [--replays 1000] \
 *   [--junk 0] [--seconds 300]
 * ```
 *
 * It starts a real agent (a child process, fresh keys), runs `ids ps` `--tries` times unloaded,
 * then starts the flood (another child process) and runs `ids ps` `--tries` times again:
 * - `--attackers` sockets that connect, send nothing, and reconnect as soon as the agent drops
 *   them (as fast as they can);
 * - `--replays` replayed handshake messages 1 per second: genuine messages 1 of the trusted IDS
 *   key, each sent once first (as a recording of real traffic would have been accepted), then
 *   replayed round-robin, each on a new connection;
 * - `--junk` connections per second that send 124 random bytes as message 1 (a wrong MAC: the
 *   agent finds out with one hash, before any Diffie-Hellman).
 * The flood stops by itself after `--seconds` (and when the measurement ends); it targets the
 * agent on 127.0.0.1 only.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { selfCommand, startLocalAgent } from "../ids/local_agent.ts";
import { readIdentity, readPublicKey } from "../wire/secure/keys.ts";
import { prepareInitiator } from "../wire/secure/secure_stream.ts";
import { prefixed } from "../wire/secure/_messages.ts";

/** Distinct recorded messages 1 the replayer cycles through. */
const RECORDED = 64;
/** Replays or junk connections in flight at once, at most (the flood stays bounded). */
const MAX_IN_FLIGHT = 1024;
/** The longest a flood connection waits for the agent to close it, ms. */
const CONNECTION_WAIT_MS = 15_000;

interface FloodOptions {
  url: string;
  keyFile: string;
  agentKeyFile: string;
  attackers: number;
  replays: number;
  junk: number;
  seconds: number;
}

interface FloodStats {
  attackerConnects: number;
  attackerBusyNotices: number;
  connectFailures: number;
  replaysSent: number;
  replaysAnswered: number;
  /** Replays and junk not sent because MAX_IN_FLIGHT were in flight (the rate fell short). */
  skipped: number;
  junkSent: number;
  junkAnswered: number;
  seconds: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads until the agent closes the connection (or the wait ends); returns the bytes read. */
async function readToEnd(conn: Deno.Conn, deadline: number): Promise<number> {
  const buffer = new Uint8Array(256);
  let total = 0;
  const timer = setTimeout(() => conn.close(), Math.max(0, deadline - performance.now()));
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) return total;
      total += n;
    }
  } catch {
    return total;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer or the agent
    }
  }
}

/** The flood (runs in its own process); prints its statistics as JSON on stdout. */
async function flood(options: FloodOptions): Promise<void> {
  const [hostname, port] = options.url.replace("tcp://", "").split(":");
  if (hostname !== "127.0.0.1") {
    throw new Error(`The flood targets 127.0.0.1 only, not ${hostname}`);
  }
  const target = { hostname, port: Number(port) };
  let stopping = false;
  Deno.addSignalListener("SIGTERM", () => void (stopping = true));
  const running = () => !stopping && performance.now() < end;
  const stats: FloodStats = {
    attackerConnects: 0,
    attackerBusyNotices: 0,
    connectFailures: 0,
    replaysSent: 0,
    replaysAnswered: 0,
    skipped: 0,
    junkSent: 0,
    junkAnswered: 0,
    seconds: 0,
  };

  // Recorded messages 1: made with the trusted IDS key, each sent once (accepted, as the
  // original handshake was), then only ever replayed.
  const ids = await readIdentity(options.keyFile);
  const agentKey = await readPublicKey(options.agentKeyFile);
  const recorded: Uint8Array[] = [];
  for (let i = 0; i < (options.replays > 0 ? RECORDED : 0); i++) {
    const { message1 } = await prepareInitiator({
      staticKey: ids.noise,
      remoteStatic: agentKey.noise,
    });
    const message = prefixed(message1);
    const conn = await Deno.connect(target);
    await conn.write(message);
    await conn.read(new Uint8Array(256)); // message 2: the original handshake was answered
    conn.close();
    recorded.push(message);
  }
  const start = performance.now();
  const end = start + options.seconds * 1000;

  const attacker = async () => {
    while (running()) {
      let conn: Deno.Conn;
      try {
        conn = await Deno.connect(target);
      } catch {
        stats.connectFailures++;
        await sleep(10);
        continue;
      }
      stats.attackerConnects++;
      const bytes = await readToEnd(conn, Math.min(end, performance.now() + CONNECTION_WAIT_MS));
      if (bytes === 2) stats.attackerBusyNotices++;
    }
  };

  let inFlight = 0;
  const oneShot = async (bytes: Uint8Array, answered: () => void) => {
    inFlight++;
    try {
      const conn = await Deno.connect(target);
      await conn.write(bytes).catch(() => 0);
      if (await readToEnd(conn, performance.now() + CONNECTION_WAIT_MS) > 0) answered();
    } catch {
      stats.connectFailures++;
    } finally {
      inFlight--;
    }
  };
  /** Starts `perSecond` one-shot connections a second, in 10 ms ticks, while running. */
  const paced = async (perSecond: number, send: (i: number) => void) => {
    if (perSecond <= 0) return;
    const t0 = performance.now();
    let sent = 0;
    while (running()) {
      const due = Math.floor((performance.now() - t0) * perSecond / 1000);
      while (sent < due && inFlight < MAX_IN_FLIGHT) send(sent++);
      if (sent < due) {
        // Over the in-flight bound: those are skipped, not queued.
        stats.skipped += due - sent;
        sent = due;
      }
      await sleep(10);
    }
  };

  const tasks: Promise<void>[] = [];
  for (let i = 0; i < options.attackers; i++) tasks.push(attacker());
  tasks.push(paced(options.replays, (i) => {
    stats.replaysSent++;
    oneShot(recorded[i % recorded.length]!, () => stats.replaysAnswered++);
  }));
  tasks.push(paced(options.junk, () => {
    stats.junkSent++;
    oneShot(prefixed(crypto.getRandomValues(new Uint8Array(124))), () => stats.junkAnswered++);
  }));
  console.log("flooding");
  await Promise.all(tasks);
  while (inFlight > 0 && performance.now() < end + CONNECTION_WAIT_MS) await sleep(10);
  stats.seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify(stats));
  Deno.exit(0);
}

/** User + system CPU time of process `pid` so far, in milliseconds (Linux, 10 ms steps). */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface Run {
  ok: boolean;
  ms: number;
  error: string;
}

/** One `ids ps` against the agent, as a user runs it. */
async function idsPs(url: string, key: string, agentKey: string): Promise<Run> {
  const { command, args } = selfCommand([
    "ids",
    "ps",
    "--connect",
    url,
    "--key",
    key,
    "--agent-key",
    agentKey,
  ]);
  const t0 = performance.now();
  const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  const ms = performance.now() - t0;
  const error = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "";
  return { ok: out.code === 0, ms, error };
}

function summary(runs: Run[]): string {
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)]!;
  const ok = runs.filter((r) => r.ok).length;
  return `${ok}/${runs.length} ok; median ${median.toFixed(0)} ms, min ${ms[0]!.toFixed(0)}, max ${
    ms.at(-1)!.toFixed(0)
  }`;
}

async function measure(args: Record<string, string | boolean | undefined>): Promise<void> {
  const tries = Number(args.tries ?? 20);
  const attackers = Number(args.attackers ?? 500);
  const replays = Number(args.replays ?? 1000);
  const junk = Number(args.junk ?? 0);
  const seconds = Number(args.seconds ?? 300);
  const agent = await startLocalAgent();
  const { key, agentKey } = agent.keyFiles!;
  try {
    console.log(`machine: ${navigator.hardwareConcurrency} CPUs, load ${Deno.loadavg().join(" ")}`);
    const unloaded: Run[] = [];
    for (let i = 0; i < tries; i++) unloaded.push(await idsPs(agent.url, key, agentKey));
    console.log(`unloaded ids ps: ${summary(unloaded)}`);

    // selfCommand's arguments end with the entry module: run this file instead.
    const { command, args: floodArgs } = selfCommand([]);
    const child = new Deno.Command(command, {
      args: [
        ...floodArgs.slice(0, -1),
        import.meta.filename!,
        "--flood",
        `--url=${agent.url}`,
        `--key=${key}`,
        `--agent-key=${agentKey}`,
        `--attackers=${attackers}`,
        `--replays=${replays}`,
        `--junk=${junk}`,
        `--seconds=${seconds}`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let output = "";
    while (!output.includes("flooding")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("The flood process ended before flooding");
      output += value;
    }
    await sleep(2000); // let the flood reach its rate
    const cpu0 = cpuMs(agent.pid);
    const t0 = performance.now();
    const loaded: Run[] = [];
    for (let i = 0; i < tries; i++) {
      const run = await idsPs(agent.url, key, agentKey);
      loaded.push(run);
      if (args.verbose) console.log(`  loaded try ${i + 1}: ${run.ms.toFixed(0)} ms ${run.error}`);
    }
    const wall = performance.now() - t0;
    const agentCpu = (cpuMs(agent.pid) - cpu0) / wall * 100;
    const load = Deno.loadavg().join(" ");
    try {
      child.kill("SIGTERM");
    } catch {
      // it already stopped at its deadline
    }
    for (;;) {
      const { value, done } = await lines.read();
      if (done) break;
      output += value;
    }
    await child.status;
    console.log(
      `flood: ${attackers} reconnecting sockets, ${replays} replays/s, ${junk} junk/s; ` +
        `agent CPU ${agentCpu.toFixed(0)} % of one core over ${
          (wall / 1000).toFixed(1)
        } s; load ${load}`,
    );
    console.log(`flood stats: ${output.split("\n").find((l) => l.startsWith("{")) ?? "none"}`);
    console.log(`loaded ids ps:   ${summary(loaded)}`);
    for (const [i, run] of loaded.entries()) {
      if (!run.ok) console.log(`  try ${i + 1} failed: ${run.error}`);
    }
  } finally {
    await agent.stop();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      flood: { type: "boolean" },
      url: { type: "string" },
      key: { type: "string" },
      "agent-key": { type: "string" },
      attackers: { type: "string" },
      replays: { type: "string" },
      junk: { type: "string" },
      seconds: { type: "string" },
      tries: { type: "string" },
      verbose: { type: "boolean" },
    },
  });
  if (values.flood) {
    await flood({
      url: values.url!,
      keyFile: values.key!,
      agentKeyFile: values["agent-key"]!,
      attackers: Number(values.attackers),
      replays: Number(values.replays),
      junk: Number(values.junk),
      seconds: Number(values.seconds),
    });
  } else {
    await measure(values);
  }
}
