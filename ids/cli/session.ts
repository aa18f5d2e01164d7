/**
 * Opens the guest a command works on: the agent at --connect, or a local agent
 * started for the command and stopped after it.
 *
 * @module
 */
import type { ClientSecurity } from "../client/channel.ts";
import { Guest } from "../guest.ts";
import { DEFAULT_GUEST_LIMITS, type GuestLimits, parseLimits } from "../limits.ts";
import { InvalidArgumentError, Option } from "commander";
import { type LocalAgent, startLocalAgent } from "../local_agent.ts";
import { readIdentity, readPublicKey } from "../../wire/secure/keys.ts";
import { type Progress, progressOn } from "./progress.ts";

/** The options every `ids` command takes to reach its agent. */
export interface ConnectOptions {
  /** Agent URL; absent: a local agent started for the command. */
  connect?: string;
  /** The IDS's private key file. */
  key?: string;
  /** The agent's public key file (pinned). */
  agentKey?: string;
  /** Plaintext, unauthenticated channel. */
  insecure?: boolean;
  /** Budgets and ceilings on what the agent may make the IDS do (default DEFAULT_GUEST_LIMITS). */
  limits?: GuestLimits;
}

/**
 * The `--limits name=value,...` option: budgets and ceilings on what the agent
 * may make the IDS do (ids/limits.ts), e.g. `deadline=30s,max_tasks=200000`.
 */
export function limitsOption(): Option {
  return new Option(
    "--limits <list>",
    "budgets: deadline=2m,max_bytes,max_records,max_tasks,max_hash_buckets,max_kallsyms_bytes,...",
  ).argParser((text) => {
    try {
      return parseLimits(text);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  });
}

/** Prints the warning every `--insecure` use gets, on stderr. */
export function warnInsecure(what: string): void {
  console.error(
    `ebpfmonitor: WARNING: --insecure: the channel to ${what} is plaintext and unauthenticated: ` +
      "anyone on the path can read it and forge the guest's answers",
  );
}

/**
 * Reads the keys the options name; with `insecure`, warns on stderr that the
 * channel to `agent` (default "the agent") is plaintext.
 */
export async function clientSecurity(
  options: ConnectOptions,
  agent = "the agent",
): Promise<ClientSecurity> {
  const identity = options.key === undefined ? undefined : await readIdentity(options.key);
  if (options.insecure) {
    warnInsecure(agent);
    return { identity, insecure: true };
  }
  if (identity === undefined || options.agentKey === undefined) {
    throw new Error(
      "The IDS needs its key and the agent's public key (--key DIR/id --agent-key AGENT.pub), or --insecure",
    );
  }
  return { identity, agentKey: await readPublicKey(options.agentKey) };
}

/**
 * Starts an agent on this machine for a command without `--connect`; with
 * `insecure`, warns on stderr first (the agent's own warning goes nowhere),
 * then calls `starting` (to show progress after the warning, not before).
 */
export function startLocal(
  insecure: boolean | undefined,
  starting: () => void = () => {},
): Promise<LocalAgent> {
  if (insecure) warnInsecure("the local agent, which loads eBPF objects unsigned,");
  starting();
  return startLocalAgent({ insecure });
}

/**
 * Runs `body` with the guest at `options.connect` (or a local agent when
 * absent, with fresh keys), then closes all. The command's deadline (the
 * limits' `deadline`) bounds connecting, the profile and `body` together,
 * unless `deadline` is false (`ids bench`, whose length is its point).
 * Progress (on stderr, when it is a terminal) shows the steps; `body` calls
 * `progress.done()` before it prints.
 */
export async function withGuest<T>(
  options: ConnectOptions,
  body: (guest: Guest, local: LocalAgent | undefined, progress: Progress) => Promise<T>,
  { deadline = true }: { deadline?: boolean } = {},
): Promise<T> {
  const security = options.connect === undefined ? undefined : await clientSecurity(options);
  const progress = progressOn("ebpfmonitor");
  try {
    const local = options.connect === undefined
      ? await startLocal(options.insecure, () => progress.step("starting an agent on this machine"))
      : undefined;
    try {
      const limits = options.limits ?? DEFAULT_GUEST_LIMITS;
      const started = performance.now();
      const guest = await Guest.open(options.connect ?? local!.url, security ?? local!.security, {
        limits,
        progress: (step) => progress.step(step),
      });
      if (deadline) guest.startBudget(limits.deadlineMs, undefined, started);
      try {
        return await body(guest, local, progress);
      } finally {
        guest.close();
      }
    } finally {
      await local?.stop();
    }
  } finally {
    progress.done();
  }
}
