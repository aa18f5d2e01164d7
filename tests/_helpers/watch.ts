/**
 * Test helpers for `ids watch`: the command as a subprocess (stopped by pid
 * on every exit path), its metrics scraped over HTTP, its alert lines read
 * back.
 *
 * @module
 */
import { MAIN } from "./agent.ts";
import { type ParsedFamily, parseExposition, sampleValue } from "./prometheus.ts";

/** A running `ids watch`. */
export interface WatchRun {
  /** Its pid. */
  pid: number;
  /** Its metrics URL (from its stderr), once it serves. */
  metricsUrl(): Promise<string>;
  /** What it printed on stdout so far. */
  stdout(): string;
  /** What it printed on stderr so far. */
  stderr(): string;
  /** Sends `signal`, waits for the exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts `deno run -A main.ts ids watch ARGS`. */
export function startWatch(args: string[]): WatchRun {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "ids", "watch", ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const pump = async (stream: ReadableStream<Uint8Array>, add: (text: string) => void) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
  };
  const pumps = Promise.all([
    pump(child.stdout, (text) => out += text),
    pump(child.stderr, (text) => err += text),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    if (!exited) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
    const { code } = await status;
    await pumps;
    return code;
  };
  return {
    pid: child.pid,
    async metricsUrl() {
      for (;;) {
        const match = /metrics at (http:\/\/\S+)/.exec(err);
        if (match) return match[1]!;
        if (exited) throw new Error(`ids watch exited before serving metrics:\n${err}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stdout: () => out,
    stderr: () => err,
    stop,
    async [Symbol.asyncDispose]() {
      if (!exited) await stop("SIGKILL");
    },
  };
}

/** The metrics at `url`, parsed (strictly). */
export async function scrape(url: string): Promise<Map<string, ParsedFamily>> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return parseExposition(await response.text());
}

/** A watch's counters of one VM. */
export interface VmCounts {
  checks: number;
  failures: number;
  /** Checks that succeeded. */
  ok: number;
  up: number | undefined;
}

/** The check counters of `vm` in scraped metrics. */
export function vmCounts(metrics: Map<string, ParsedFamily>, vm: string): VmCounts {
  const checks = sampleValue(metrics, "ebpfmonitor_checks_total", { vm }) ?? 0;
  const failures = sampleValue(metrics, "ebpfmonitor_check_failures_total", { vm }) ?? 0;
  return {
    checks,
    failures,
    ok: checks - failures,
    up: sampleValue(metrics, "ebpfmonitor_agent_up", { vm }),
  };
}

/** One alert line. */
export interface AlertLine {
  time: string;
  vm: string;
  detector: string;
  severity: string;
  summary: string;
  evidence: Record<string, unknown>;
  event: "alert" | "resolved";
}

/** Parses JSON lines (every line must be one object). */
export function parseLines(text: string): AlertLine[] {
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

/** The alert lines in `path` (none when it does not exist yet). */
export async function readLines(path: string): Promise<AlertLine[]> {
  try {
    return parseLines(await Deno.readTextFile(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

/** A TCP port on 127.0.0.1 where nothing listens (free a moment ago). */
export function deadPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
