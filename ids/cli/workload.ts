/**
 * Helper processes for the benchmark when the agent watches this machine's
 * own kernel: enough processes on the task list for the paper's setup and
 * beyond. One shell forks them all (thousands in seconds); each is stopped by
 * its pid.
 *
 * @module
 */

/** Started helper processes. */
export interface Workload {
  /** Their pids. */
  pids: number[];
  /** Kills them (by pid) and waits for them. */
  stop(): Promise<void>;
}

/** Starts `count` idle processes (`sleep`), each killed by `stop()`. */
export async function startSleepers(count: number): Promise<Workload> {
  const script =
    `i=0; while [ "$i" -lt ${count} ]; do sleep 3600 & echo "$!"; i=$((i + 1)); done;` +
    ` echo ready; wait`;
  const shell = new Deno.Command("sh", {
    args: ["-c", script],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const pids: number[] = [];
  const stop = async () => {
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    try {
      shell.kill("SIGKILL");
    } catch {
      // already gone
    }
    await shell.status;
  };
  try {
    let text = "";
    for await (const chunk of shell.stdout.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const lines = text.split("\n");
      text = lines.pop()!;
      for (const line of lines) {
        if (line === "ready") return { pids, stop };
        pids.push(Number(line));
      }
    }
    throw new Error(`Could start only ${pids.length} of ${count} helper processes`);
  } catch (error) {
    await stop();
    throw error;
  }
}
