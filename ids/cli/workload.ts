/**
 * Helper processes for the benchmark when the agent watches this machine's
 * own kernel: enough processes on the task list for the paper's setup and
 * beyond. One perl process forks them all (a fork without exec is the
 * cheapest new task: thousands in seconds); each is stopped by its pid, and
 * each exits by itself after an hour should nobody stop it.
 *
 * @module
 */

/** Started helper processes. */
export interface Workload {
  /** Their pids. */
  pids: number[];
  /** Kills them (by pid) and waits until they have left the task list. */
  stop(): Promise<void>;
}

function exists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Starts `count` idle processes, each killed by `stop()`. */
export async function startSleepers(count: number): Promise<Workload> {
  const parent = new Deno.Command("perl", {
    args: [
      "-e",
      `$| = 1; for (1..${count}) { my $p = fork(); die "fork: $!" unless defined $p; ` +
      `if ($p == 0) { sleep 3600; exit 0 } print "$p\\n" } print "ready\\n"; sleep 3600;`,
    ],
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
      parent.kill("SIGKILL");
    } catch {
      // already gone
    }
    await parent.status;
    // The orphans are reaped by init: wait until they have left the task list.
    const until = Date.now() + 10_000;
    while (pids.some(exists) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  try {
    let text = "";
    for await (const chunk of parent.stdout.pipeThrough(new TextDecoderStream())) {
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
