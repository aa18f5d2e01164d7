/**
 * `ebpfmonitor ids watch`: checks guests continuously and reports alerts as
 * JSON lines (stdout, or appended to --out), with Prometheus metrics at
 * --metrics. One guest from the connect options (or a local agent), or many
 * from --config (ids/watch/config.ts). Runs until SIGINT or SIGTERM, then
 * closes the connections and the output and exits 0.
 *
 * @module
 */
import { loadBaseline } from "../detect/baseline.ts";
import { DEFAULT_POLICY, loadPolicy } from "../detect/policy.ts";
import type { FetchMode } from "../guest.ts";
import type { LocalAgent } from "../local_agent.ts";
import { AlertLog } from "../watch/alert_log.ts";
import { loadWatchConfig, type VmConfig } from "../watch/config.ts";
import { InvalidArgumentError, Option } from "commander";
import { formatDuration, parseDuration } from "../duration.ts";
import { WatchMetrics } from "../watch/metrics.ts";
import { type MetricsServer, serveMetrics } from "../watch/metrics_server.ts";
import type { WatchTarget } from "../watch/vm_loop.ts";
import { runWatch } from "../watch/watch.ts";
import { clientSecurity, type ConnectOptions, startLocal } from "./session.ts";
import { DEFAULT_GUEST_LIMITS, parseLimits } from "../limits.ts";

/** Options of `ids watch`. */
export interface WatchCommandOptions extends ConnectOptions {
  /** Many VMs from this config file. */
  config?: string;
  /** The single VM's name (default: its URL). */
  name?: string;
  /** Policy file (single VM). */
  policy?: string;
  /** Baseline file (single VM). */
  baseline?: string;
  /** Interval between checks, ms (the config's VMs' default). */
  interval: number;
  /** Deadline of one check, ms (default: the interval, at least 30 s). */
  timeout?: number;
  /** Append the alert lines to this file instead of stdout. */
  out?: string;
  /** Serve metrics at this host:port. */
  metrics?: string;
  /** Fetch mode (the config's VMs' default). */
  fetch: FetchMode;
}

/** The shortest default deadline of a check. */
const MIN_DEFAULT_TIMEOUT_MS = 30_000;

/** The deadline of a check when none is given: the interval, at least 30 s. */
export function defaultTimeout(intervalMs: number): number {
  return Math.max(intervalMs, MIN_DEFAULT_TIMEOUT_MS);
}

/** Loads one VM's keys, policy and baseline; errors name the VM. */
async function loadTarget(vm: VmConfig, options: WatchCommandOptions): Promise<WatchTarget> {
  try {
    const security = await clientSecurity({
      key: vm.key,
      agentKey: vm.agentKey,
      insecure: vm.insecure,
    }, `VM "${vm.name}"`);
    const policy = vm.policy === undefined ? DEFAULT_POLICY : await loadPolicy(vm.policy);
    const baseline = vm.baseline === undefined ? undefined : await loadBaseline(vm.baseline);
    const intervalMs = vm.intervalMs ?? options.interval;
    const base = options.limits ?? DEFAULT_GUEST_LIMITS;
    return {
      limits: vm.limits === undefined ? base : parseLimits(vm.limits, base),
      name: vm.name,
      url: vm.url,
      security,
      config: baseline === undefined ? { policy } : { policy, baseline },
      intervalMs,
      timeoutMs: vm.timeoutMs ?? options.timeout ?? defaultTimeout(intervalMs),
      mode: vm.fetch ?? options.fetch,
    };
  } catch (error) {
    throw new Error(`VM "${vm.name}": ${(error as Error).message}`, { cause: error });
  }
}

const SINGLE_ONLY = [
  "connect",
  "key",
  "agentKey",
  "insecure",
  "name",
  "policy",
  "baseline",
] as const;
const FLAG: Record<typeof SINGLE_ONLY[number], string> = {
  connect: "--connect",
  key: "--key",
  agentKey: "--agent-key",
  insecure: "--insecure",
  name: "--name",
  policy: "--policy",
  baseline: "--baseline",
};

/** Runs `ids watch` until SIGINT or SIGTERM; returns the exit code. */
export async function watch(options: WatchCommandOptions): Promise<number> {
  let local: LocalAgent | undefined;
  let server: MetricsServer | undefined;
  let log: AlertLog | undefined;
  const stop = new AbortController();
  const onSignal = (signal: Deno.Signal) => () => {
    if (!stop.signal.aborted) console.error(`ids watch: ${signal}: stopping`);
    stop.abort();
  };
  const signals = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
  ] as const;
  for (const [signal, handler] of signals) Deno.addSignalListener(signal, handler);
  try {
    let vms: VmConfig[];
    if (options.config !== undefined) {
      const given = SINGLE_ONLY.filter((key) =>
        options[key] !== undefined && options[key] !== false
      );
      if (given.length > 0) {
        throw new Error(
          `--config cannot be combined with ${given.map((key) => FLAG[key]).join(", ")}: ` +
            "give those per VM in the config file",
        );
      }
      vms = (await loadWatchConfig(options.config)).vms;
    } else {
      const url = options.connect ??
        (local = await startLocal(options.insecure)).url;
      const vm: VmConfig = { name: options.name ?? url, url, insecure: options.insecure ?? false };
      if (options.policy !== undefined) vm.policy = options.policy;
      if (options.baseline !== undefined) vm.baseline = options.baseline;
      if (local?.keyFiles !== undefined) {
        vm.key = local.keyFiles.key;
        vm.agentKey = local.keyFiles.agentKey;
      } else {
        if (options.key !== undefined) vm.key = options.key;
        if (options.agentKey !== undefined) vm.agentKey = options.agentKey;
      }
      vms = [vm];
    }
    const targets = await Promise.all(vms.map((vm) => loadTarget(vm, options)));
    const metrics = new WatchMetrics(targets.map((t) => t.name));
    log = await AlertLog.open(options.out);
    if (options.metrics !== undefined) {
      server = serveMetrics(options.metrics, () => metrics.render());
      console.error(`ids watch: metrics at ${server.url}`);
    }
    console.error(
      `ids watch: watching ${
        targets.map((t) => `${t.name} (${t.url}, every ${formatDuration(t.intervalMs)})`).join(", ")
      }; alerts to ${options.out ?? "stdout"}`,
    );
    await runWatch(targets, { log, metrics, signal: stop.signal });
    return 0;
  } finally {
    for (const [signal, handler] of signals) Deno.removeSignalListener(signal, handler);
    await log?.close();
    await server?.shutdown();
    await local?.stop();
  }
}

/** A commander option whose value is a duration (`500ms`, `5s`, `1m`), parsed to ms. */
export function durationOption(flags: string, description: string, fallback?: string): Option {
  const option = new Option(flags, description).argParser((text) => {
    try {
      return parseDuration(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  });
  return fallback === undefined ? option : option.default(parseDuration(fallback), fallback);
}
