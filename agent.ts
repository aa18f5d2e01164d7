/**
 * The agent: runs as root inside the guest, loads the eBPF programs the IDS
 * sends, fires them and streams their output back. It never interprets OS
 * data.
 *
 * @module
 */
import { preflightProblems } from "./agent/preflight.ts";
import { AgentServer } from "./agent/server.ts";

/** How to run the agent. */
export interface AgentOptions {
  /** Where to listen: tcp://host:port or vsock://cid:port. */
  listen: string;
  /** Write a line per connection to stderr. */
  verbose?: boolean;
}

/**
 * Checks the system, listens, prints `listening on URL` on stdout, and serves
 * until the process ends. Returns the exit code (non-zero when the system
 * cannot run the agent).
 */
export async function runAgent(options: AgentOptions): Promise<number> {
  const problems = preflightProblems();
  if (problems.length > 0) {
    for (const problem of problems) console.error(`ebpfmonitor agent: ${problem}`);
    return 1;
  }
  const log = options.verbose
    ? (line: string) => console.error(`ebpfmonitor agent: ${line}`)
    : () => {};
  const server = new AgentServer(options.listen, log);
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
