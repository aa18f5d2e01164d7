/**
 * Helper processes for the benchmark when the agent watches this machine's
 * own kernel: enough processes on the task list for the paper's setup.
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
  const children: Deno.ChildProcess[] = [];
  try {
    for (let i = 0; i < count; i++) {
      children.push(
        new Deno.Command("sleep", { args: ["3600"], stdin: "null", stdout: "null", stderr: "null" })
          .spawn(),
      );
    }
  } catch (error) {
    await stopAll(children);
    throw error;
  }
  // Let every child finish exec(), so the task list shows them as sleep.
  await new Promise((resolve) => setTimeout(resolve, 200));
  return { pids: children.map((child) => child.pid), stop: () => stopAll(children) };
}

async function stopAll(children: Deno.ChildProcess[]): Promise<void> {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  await Promise.all(children.map((child) => child.status));
}
