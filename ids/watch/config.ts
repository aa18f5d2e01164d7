/**
 * The configuration of `ids watch --config FILE`: the guests to watch, each
 * with its agent, keys, policy, baseline and schedule. JSON:
 *
 * ```json
 * {
 *   "vms": [
 *     {
 *       "name": "web1",
 *       "url": "tcp://10.0.0.5:7070",
 *       "key": "/etc/ebpfmonitor/ids/id",
 *       "agent_key": "/etc/ebpfmonitor/web1.pub",
 *       "policy": "policies/web.json",
 *       "baseline": "baselines/web1.json",
 *       "interval": "5s",
 *       "timeout": "30s",
 *       "fetch": "bulk"
 *     },
 *     { "name": "test1", "url": "tcp://127.0.0.1:7071", "insecure": true }
 *   ]
 * }
 * ```
 *
 * Per VM: `name` (unique; the `vm` of its alert lines and metrics) and `url`
 * (`tcp://host:port` or `vsock://cid:port`) are required; `key` (the IDS's
 * private key) and `agent_key` (the agent's public key, pinned) are required
 * unless `insecure` is true. `policy`, `baseline`, `interval` (default: the
 * command's `--interval`), `timeout` (the deadline of one check; default: the
 * command's `--timeout`) and `fetch` (`page`, `bulk`, `fields`; default the
 * command's `--fetch`) and `limits` (budgets and ceilings as `--limits` takes
 * them, `"max_tasks=200000,max_bytes=536870912"`, over the command's) are
 * optional. Durations are written `500ms`, `5s`,
 * `1m`. Relative paths are resolved against the config file's folder. Unknown
 * keys are errors.
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { FETCH_MODES, type FetchMode } from "../guest.ts";
import { parseDuration } from "../duration.ts";
import { parseLimits } from "../limits.ts";

/** One guest of the configuration, paths resolved. */
export interface VmConfig {
  /** Unique name: the `vm` of its alerts and metrics. */
  name: string;
  /** The agent's URL. */
  url: string;
  /** The IDS's private key file. */
  key?: string;
  /** The agent's public key file. */
  agentKey?: string;
  /** Plaintext, unauthenticated channel. */
  insecure: boolean;
  /** Policy file. */
  policy?: string;
  /** Baseline file. */
  baseline?: string;
  /** Interval between checks, ms (undefined: the command's). */
  intervalMs?: number;
  /** Deadline of one check, ms (undefined: the command's). */
  timeoutMs?: number;
  /** Fetch mode (undefined: the command's). */
  fetch?: FetchMode;
  /** Budgets and ceilings, `name=value,...` (ids/limits.ts), over the command's. */
  limits?: string;
}

/** A parsed configuration. */
export interface WatchConfig {
  /** The guests, in file order. */
  vms: VmConfig[];
}

const VM_KEYS = [
  "name",
  "url",
  "key",
  "agent_key",
  "insecure",
  "policy",
  "baseline",
  "interval",
  "timeout",
  "fetch",
  "limits",
] as const;

/**
 * Parses a configuration; relative paths are resolved against `baseDir`.
 * Throws an error naming the source, the VM and the bad key.
 */
export function parseWatchConfig(text: string, source: string, baseDir: string): WatchConfig {
  const fail = (what: string): never => {
    throw new Error(`Cannot parse ${source}: ${what}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (!isObject(raw)) return fail('expected a JSON object with a "vms" array');
  for (const key of Object.keys(raw)) {
    if (key !== "vms") fail(`unknown key "${key}" (known: vms)`);
  }
  const list = raw.vms;
  if (!Array.isArray(list) || list.length === 0) {
    return fail('"vms" must be a non-empty array of VMs');
  }
  const names = new Set<string>();
  const vms = list.map((entry: unknown, index): VmConfig => {
    const named = isObject(entry) && typeof entry.name === "string" && entry.name !== "";
    const which = named ? `VM "${(entry as Record<string, unknown>).name}"` : `VM #${index + 1}`;
    const bad = (what: string): never => fail(`${which}: ${what}`);
    if (!isObject(entry)) return bad("expected an object");
    for (const key of Object.keys(entry)) {
      if (!(VM_KEYS as readonly string[]).includes(key)) {
        bad(`unknown key "${key}" (known: ${VM_KEYS.join(", ")})`);
      }
    }
    const string = (key: typeof VM_KEYS[number]): string | undefined => {
      const value = entry[key];
      if (value === undefined) return undefined;
      if (typeof value !== "string" || value === "") bad(`"${key}" must be a non-empty string`);
      return value as string;
    };
    const path = (key: typeof VM_KEYS[number]): string | undefined => {
      const value = string(key);
      return value === undefined || isAbsolute(value) ? value : resolve(baseDir, value);
    };
    const duration = (key: typeof VM_KEYS[number]): number | undefined => {
      const value = string(key);
      if (value === undefined) return undefined;
      try {
        return parseDuration(value);
      } catch (error) {
        return bad(`"${key}": ${(error as Error).message}`);
      }
    };
    const name = string("name") ?? bad('"name" is required');
    if (names.has(name)) bad("the name is used by another VM");
    names.add(name);
    const url = string("url") ?? bad('"url" is required');
    if (!/^(tcp|vsock):\/\/.+:\d+$/.test(url)) {
      bad(`"url" ${url} is not tcp://host:port or vsock://cid:port`);
    }
    const insecure = entry.insecure ?? false;
    if (typeof insecure !== "boolean") bad('"insecure" must be true or false');
    const vm: VmConfig = { name, url, insecure: insecure as boolean };
    const key = path("key");
    const agentKey = path("agent_key");
    if (!insecure && (key === undefined || agentKey === undefined)) {
      bad('"key" and "agent_key" are required unless "insecure" is true');
    }
    if (key !== undefined) vm.key = key;
    if (agentKey !== undefined) vm.agentKey = agentKey;
    const policy = path("policy");
    const baseline = path("baseline");
    if (policy !== undefined) vm.policy = policy;
    if (baseline !== undefined) vm.baseline = baseline;
    const intervalMs = duration("interval");
    const timeoutMs = duration("timeout");
    if (intervalMs !== undefined) vm.intervalMs = intervalMs;
    if (timeoutMs !== undefined) vm.timeoutMs = timeoutMs;
    const fetch = string("fetch");
    if (fetch !== undefined) {
      if (!(FETCH_MODES as readonly string[]).includes(fetch)) {
        bad(`"fetch" must be one of ${FETCH_MODES.join(", ")}`);
      }
      vm.fetch = fetch as FetchMode;
    }
    const limits = string("limits");
    if (limits !== undefined) {
      try {
        parseLimits(limits);
      } catch (error) {
        bad(`"limits": ${(error as Error).message}`);
      }
      vm.limits = limits;
    }
    return vm;
  });
  return { vms };
}

/** Reads and parses a configuration file (relative paths against its folder). */
export async function loadWatchConfig(path: string): Promise<WatchConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`Cannot read watch config ${path}: ${(error as Error).message}`);
  }
  return parseWatchConfig(text, `watch config ${path}`, dirname(resolve(path)));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
