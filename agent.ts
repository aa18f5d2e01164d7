/**
 * The agent: runs as root inside the guest, loads the eBPF programs the IDS
 * sends, fires them and streams their output back. It never interprets OS
 * data.
 *
 * @module
 */
import { preflightProblems, preflightWarnings } from "./agent/preflight.ts";
import { type AgentSecurity, AgentServer } from "./agent/server.ts";
import { readIdentity, readTrustedKeys } from "./wire/secure/keys.ts";
import { parseEndpoint } from "./wire/transport.ts";

/** The exit code of every error, as the IDS's (README: exit codes). */
const EXIT_ERROR = 2;

/** How to run the agent. */
export interface AgentOptions {
  /** Where to listen: tcp://host:port or vsock://cid:port. */
  listen: string;
  /** The agent's private key file (DIR/id). */
  key?: string;
  /** Files of trusted IDS public keys. */
  trust?: string[];
  /** Plaintext and unauthenticated (test set-ups only); on a loopback address only. */
  insecure?: boolean;
  /** Allows `insecure` on an address other hosts (or containers) can reach. */
  insecureAnywhere?: boolean;
  /** Write a line per connection to stderr. */
  verbose?: boolean;
}

/** Whether `url` is a TCP endpoint on a loopback address (127.0.0.0/8, ::1, localhost). */
function isLoopback(url: string): boolean {
  const endpoint = parseEndpoint(url);
  if (endpoint.transport !== "tcp") return false;
  const host = endpoint.hostname;
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Reads the keys the options name; explains what is missing or contradictory. */
export async function agentSecurity(options: AgentOptions): Promise<AgentSecurity> {
  if (options.insecure) {
    if (options.key !== undefined || (options.trust ?? []).length > 0) {
      throw new Error(
        "--insecure turns authentication off: it cannot be combined with --key or --trust",
      );
    }
    if (!options.insecureAnywhere && !isLoopback(options.listen)) {
      throw new Error(
        `--insecure listens only on a loopback address (tcp://127.0.0.1:PORT), not on ${options.listen}: anyone who reaches it could read kernel memory; add --insecure-anywhere to insist`,
      );
    }
    return { trusted: [], insecure: true };
  }
  if (options.insecureAnywhere) {
    throw new Error("--insecure-anywhere only applies with --insecure");
  }
  const trusted = [];
  for (const path of options.trust ?? []) trusted.push(...await readTrustedKeys(path));
  if (options.key === undefined || trusted.length === 0) {
    throw new Error(
      "The agent needs its key and the IDS's public key (--key DIR/id --trust IDS.pub), or --insecure for a plaintext test set-up",
    );
  }
  return { identity: await readIdentity(options.key), trusted, insecure: false };
}

/**
 * Checks the system, listens, prints `listening on URL` on stdout, and serves
 * until the process ends. Returns the exit code (2 when the system cannot run
 * the agent or the keys are missing).
 */
export async function runAgent(options: AgentOptions): Promise<number> {
  let security: AgentSecurity;
  try {
    security = await agentSecurity(options);
  } catch (error) {
    console.error(`ebpfmonitor agent: ${(error as Error).message}`);
    return EXIT_ERROR;
  }
  const problems = preflightProblems();
  if (problems.length > 0) {
    for (const problem of problems) console.error(`ebpfmonitor agent: ${problem}`);
    return EXIT_ERROR;
  }
  for (const warning of preflightWarnings()) {
    console.error(`ebpfmonitor agent: warning: ${warning}`);
  }
  const log = options.verbose
    ? (line: string) => console.error(`ebpfmonitor agent: ${line}`)
    : () => {};
  const server = new AgentServer(options.listen, security, log);
  if (security.insecure) {
    console.error(
      `ebpfmonitor agent: WARNING: --insecure: the channel on ${server.url} is plaintext and unauthenticated, and eBPF objects load unsigned: anyone who reaches it can read kernel memory`,
    );
  }
  console.log(`listening on ${server.url}`);
  const stop = () => server.close();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.serve();
  } finally {
    Deno.removeSignalListener("SIGTERM", stop);
    Deno.removeSignalListener("SIGINT", stop);
  }
  return 0;
}
