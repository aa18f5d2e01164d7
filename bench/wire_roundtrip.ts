/**
 * Micro-benchmark of the wire layer alone: the round trip of an empty request and the time of
 * 1 MiB transfers between this process and a server subprocess, over plaintext TCP and over the
 * Noise secure channel. Not a test: run it by hand, on a quiet machine, and compare medians.
 *
 * ```sh
 * deno run -A bench/wire_roundtrip.ts [--pings 3000] [--transfers 100] [--rounds 3]
 * ```
 *
 * @module
 */

import {
  accept,
  chunkMessage,
  dial,
  formatEndpoint,
  FramedConnection,
  listen,
  type Message,
  requestMessage,
  resultMessage,
} from "../wire/mod.ts";
import { generateKeyPair, type KeyPair } from "../wire/secure/noise.ts";
import { acceptSecure, initiateSecure } from "../wire/secure/secure_stream.ts";
import { fromBase64, toBase64 } from "../wire/secure/_crypto.ts";

const TRANSFER_BYTES = 1 << 20;

interface Keys {
  ids: KeyPair;
  agent: KeyPair;
}

function encodeKeys(keys: Keys): string {
  const pair = (k: KeyPair) => [toBase64(k.publicKey), toBase64(k.privateKey)];
  return JSON.stringify({ ids: pair(keys.ids), agent: pair(keys.agent) });
}

function decodeKeys(text: string): Keys {
  const json = JSON.parse(text) as { ids: string[]; agent: string[] };
  const pair = ([pub, priv]: string[]) => ({
    publicKey: fromBase64(pub!)!,
    privateKey: fromBase64(priv!)!,
  });
  return { ids: pair(json.ids), agent: pair(json.agent) };
}

/** Server side: answers `ping` with an empty result and `bulk` with one 1 MiB chunk. */
async function serve(secure: boolean, keys: Keys): Promise<void> {
  const listener = listen("tcp://127.0.0.1:0");
  console.log(formatEndpoint(listener.addr));
  const conn = await accept(listener);
  if (conn === null) return;
  const stream = secure
    ? await acceptSecure(conn, { staticKey: keys.agent, isTrusted: () => true })
    : conn;
  const framed = new FramedConnection(stream);
  const data = new Uint8Array(TRANSFER_BYTES).fill(7);
  for (;;) {
    const message = await framed.receive();
    if (message === null || message.type !== "request") break;
    if (message.op === "bulk") await framed.send(chunkMessage(message.id, 0, data));
    await framed.send(resultMessage(message.id, {}));
  }
  framed.close();
  listener.close();
}

/** User + system CPU time of process `pid` so far, in milliseconds (Linux only, 10 ms steps). */
function cpuMs(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function exchange(framed: FramedConnection, id: number, op: string): Promise<void> {
  await framed.send(requestMessage(id, op));
  for (;;) {
    const answer: Message | null = await framed.receive();
    if (answer === null) throw new Error("The server closed the connection");
    if (answer.type === "result") return;
  }
}

/** Client side: spawns the server, then times pings and transfers. */
async function measure(secure: boolean, pings: number, transfers: number): Promise<string> {
  const keys = { ids: await generateKeyPair(), agent: await generateKeyPair() };
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--serve", secure ? "secure" : "plain"],
    env: { BENCH_KEYS: encodeKeys(keys) },
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const url = (await lines.read()).value!.trim();
  lines.releaseLock();
  const conn = await dial(url);
  const stream = secure
    ? await initiateSecure(conn, { staticKey: keys.ids, remoteStatic: keys.agent.publicKey })
    : conn;
  const framed = new FramedConnection(stream);
  let id = 1;
  for (let i = 0; i < 200; i++) await exchange(framed, id++, "ping");
  const times: number[] = [];
  const cpu0 = cpuMs("self") + cpuMs(child.pid);
  for (let i = 0; i < pings; i++) {
    const t0 = performance.now();
    await exchange(framed, id++, "ping");
    times.push(performance.now() - t0);
  }
  const cpuPerPing = (cpuMs("self") + cpuMs(child.pid) - cpu0) / pings * 1000;
  await exchange(framed, id++, "bulk");
  const bulk: number[] = [];
  for (let i = 0; i < transfers; i++) {
    const t0 = performance.now();
    await exchange(framed, id++, "bulk");
    bulk.push(performance.now() - t0);
  }
  framed.close();
  await child.status;
  times.sort((a, b) => a - b);
  bulk.sort((a, b) => a - b);
  const mibps = 1000 / quantile(bulk, 0.5);
  return `${secure ? "secure" : "plain "} ping median ${quantile(times, 0.5).toFixed(4)} ms p95 ${
    quantile(times, 0.95).toFixed(4)
  } ms cpu ${cpuPerPing.toFixed(0)} us | 1 MiB median ${quantile(bulk, 0.5).toFixed(3)} ms (${
    mibps.toFixed(0)
  } MiB/s) p95 ${quantile(bulk, 0.95).toFixed(3)} ms`;
}

function flag(name: string, fallback: number): number {
  const index = Deno.args.indexOf(name);
  return index < 0 ? fallback : Number(Deno.args[index + 1]);
}

if (import.meta.main) {
  const serveIndex = Deno.args.indexOf("--serve");
  if (serveIndex >= 0) {
    await serve(Deno.args[serveIndex + 1] === "secure", decodeKeys(Deno.env.get("BENCH_KEYS")!));
  } else {
    const pings = flag("--pings", 3000);
    const transfers = flag("--transfers", 100);
    const rounds = flag("--rounds", 3);
    for (let round = 0; round < rounds; round++) {
      console.log(await measure(false, pings, transfers));
      console.log(await measure(true, pings, transfers));
    }
  }
}
