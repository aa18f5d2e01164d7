/**
 * Starts an agent on this machine as a child process, for commands run
 * without --connect (demo, and ps/lsmod/bench against the host's own kernel).
 * The agent stays a separate process, as it would be in a guest.
 *
 * @module
 */

import type { ClientSecurity } from "./client/channel.ts";
import { generateIdentity, publicIdentity, writeIdentity } from "../wire/secure/keys.ts";

/** A running local agent. */
export interface LocalAgent {
  /** Where it listens. */
  url: string;
  /** What the IDS needs to talk to it: fresh keys made for this agent and its IDS. */
  security: ClientSecurity;
  /** The same as files, for an `ids` command's --key and --agent-key (absent when insecure). */
  keyFiles?: { key: string; agentKey: string };
  /** The child's pid. */
  pid: number;
  /** Stops it (SIGTERM, then waits). */
  stop(): Promise<void>;
}

/**
 * The entry module of ebpfmonitor: main.ts beside this folder when running
 * from source (whoever the main module is, e.g. a test), else the main module
 * itself (the bundle, where every module shares one URL).
 */
function entryModule(): string {
  const here = import.meta.url;
  return here.endsWith("/ids/local_agent.ts") ? new URL("../main.ts", here).href : Deno.mainModule;
}

/** The command that runs ebpfmonitor again with other arguments. */
export function selfCommand(args: string[]): { command: string; args: string[] } {
  const exec = Deno.execPath();
  if (/(^|\/)deno$/.test(exec)) {
    return { command: exec, args: ["run", "-A", "--unstable-vsock", entryModule(), ...args] };
  }
  return { command: exec, args }; // a compiled ebpfmonitor binary
}

/** Options of {@linkcode startLocalAgent}. */
export interface LocalAgentOptions {
  /** Run the agent with --insecure (plaintext, unsigned objects). */
  insecure?: boolean;
  /** How long to wait for it to listen. */
  timeoutMs?: number;
}

/**
 * Starts `ebpfmonitor agent --listen tcp://127.0.0.1:0` and waits until it
 * listens. Unless insecure, it makes a fresh key pair for the agent and one
 * for the IDS (in a private temporary folder removed by `stop()`), so even a
 * local agent accepts only this IDS and only objects it signed.
 */
export async function startLocalAgent(options: LocalAgentOptions = {}): Promise<LocalAgent> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const keyDir = await Deno.makeTempDir({ prefix: "ebpfmonitor-keys-" });
  const removeKeys = () => Deno.remove(keyDir, { recursive: true }).catch(() => {});
  let security: ClientSecurity;
  let keyFiles: LocalAgent["keyFiles"];
  const agentArgs = ["agent", "--listen", "tcp://127.0.0.1:0"];
  try {
    if (options.insecure) {
      security = { insecure: true };
      agentArgs.push("--insecure");
    } else {
      const ids = await generateIdentity("ids (local)");
      const agent = await generateIdentity("agent (local)");
      const idsFiles = await writeIdentity(`${keyDir}/ids`, ids);
      const agentFiles = await writeIdentity(`${keyDir}/agent`, agent);
      security = { identity: ids, agentKey: publicIdentity(agent) };
      keyFiles = { key: idsFiles.privatePath, agentKey: agentFiles.publicPath };
      agentArgs.push("--key", agentFiles.privatePath, "--trust", idsFiles.publicPath);
    }
  } catch (error) {
    await removeKeys();
    throw error;
  }
  const { command, args } = selfCommand(agentArgs);
  const child = new Deno.Command(command, { args, stdout: "piped", stderr: "piped", stdin: "null" })
    .spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Local agent did not start listening within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    for (;;) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) {
        const status = await child.status;
        const why = (await stderr).trim() || `exit code ${status.code}`;
        throw new Error(`Local agent failed to start: ${why}`);
      }
      buffered += value;
      const match = /listening on (\S+)/.exec(buffered);
      if (match?.[1]) {
        const url = match[1];
        reader.releaseLock();
        child.stdout.cancel().catch(() => {});
        return {
          url,
          security,
          keyFiles,
          pid: child.pid,
          async stop() {
            try {
              child.kill("SIGTERM");
            } catch {
              // already gone
            }
            await child.status;
            await stderr.catch(() => "");
            await removeKeys();
          },
        };
      }
    }
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await removeKeys();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
