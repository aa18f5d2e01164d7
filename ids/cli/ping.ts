/**
 * `ebpfmonitor ids ping`: the round trip of an empty request, the floor under
 * every fetch mode.
 *
 * @module
 */
import { AgentClient } from "../client/agent_client.ts";
import type { LocalAgent } from "../local_agent.ts";
import { progressOn } from "./progress.ts";
import { clientSecurity, type ConnectOptions, startLocal } from "./session.ts";
import { median, quantile } from "./stats.ts";

/** Options of `ids ping`. */
export interface PingOptions extends ConnectOptions {
  /** Pings to send. */
  count: number;
  /** Print JSON. */
  json: boolean;
}

/** Median and p95 of `count` empty round trips on `client`, after a warm-up of as many. */
export async function pingTimes(
  client: AgentClient,
  count: number,
): Promise<{ median_ms: number; p95_ms: number }> {
  for (let i = 0; i < count; i++) await client.ping(); // JIT, buffers, the agent's side too
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await client.ping();
    times.push(performance.now() - t0);
  }
  return {
    median_ms: Number(median(times).toFixed(3)),
    p95_ms: Number(quantile(times, 0.95).toFixed(3)),
  };
}

/** Runs `ids ping`; returns the exit code. */
export async function ping(options: PingOptions): Promise<number> {
  const security = options.connect === undefined ? undefined : await clientSecurity(options);
  const progress = progressOn("ebpfmonitor");
  let local: LocalAgent | undefined;
  if (options.connect === undefined) {
    local = await startLocal(
      options.insecure,
      () => progress.step("starting an agent on this machine"),
    );
  }
  try {
    const url = options.connect ?? local!.url;
    progress.step(`connecting to ${url}`);
    const client = await AgentClient.connect(url, security ?? local!.security);
    try {
      progress.step(`pinging: ${options.count} warm-up, then ${options.count} timed`);
      const result = { count: options.count, ...await pingTimes(client, options.count) };
      progress.done();
      console.log(
        options.json
          ? JSON.stringify(result)
          : `${url}: ${result.count} pings, median ${result.median_ms} ms, p95 ${result.p95_ms} ms`,
      );
      return 0;
    } finally {
      client.close();
    }
  } finally {
    progress.done();
    await local?.stop();
  }
}
