/**
 * One guest under QEMU in TCG mode (no KVM here): user-mode networking whose
 * only way in is `hostfwd` from a free port on 127.0.0.1 to the agent's 7070
 * (`restrict=on`: the guest reaches nothing outside), the kernel console on
 * ttyS0 (QEMU's stdout, kept for error messages and the readiness line) and a
 * root shell on ttyS1 (a Unix socket) that runs the bed's commands between
 * begin/end markers.
 *
 * Every started QEMU is stopped by pid on every exit path: {@linkcode Vm.stop}
 * (also through `await using`), SIGINT/SIGTERM (all running guests are killed,
 * then the process exits), and the process's `unload` event.
 *
 * @module
 */
import type { GuestImage } from "./image.ts";

/** The agent's port inside the guest. */
export const AGENT_PORT = 7070;

/** Options of {@linkcode Vm.start}. */
export interface VmOptions {
  /** Extra idle processes the guest starts (e.g. 100 for the benchmark). */
  sleepers?: number;
  /** Guest memory, MiB. */
  memoryMiB?: number;
  /** Virtual CPUs. */
  cpus?: number;
  /**
   * How long the guest may show no progress before the agent listens, ms
   * (default 60 s): the wait ends this long after QEMU's start or after the
   * console's last line, whichever is later, and at most 4 times this long
   * after the start. A loaded machine boots slower but keeps printing.
   */
  readyTimeoutMs?: number;
  /** V8 flags for the guest's Deno (`--v8-flags=`). */
  v8Flags?: string;
  /** Extra kernel command line. */
  append?: string;
  /**
   * The longest the guest may run, ms: past it QEMU is killed (a watchdog for
   * a hung test; what then talks to the guest fails). Default: no limit.
   */
  lifetimeMs?: number;
  /** Where console lines go as they arrive (default: kept, shown on failure). */
  onConsole?: (line: string) => void;
}

/** What a command in the guest printed (stdout and stderr merged) and its exit code. */
export interface GuestRun {
  /** Exit status. */
  code: number;
  /** Output, `\n`-separated. */
  output: string;
}

const live = new Map<number, Deno.ChildProcess>();
let signalsHooked = false;

function killAll(): void {
  for (const [pid, child] of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    live.delete(pid);
  }
}

function onSignal(signal: "SIGINT" | "SIGTERM"): () => void {
  return () => {
    if (live.size > 0) console.error(`vm: ${signal}: stopping ${live.size} guest(s)`);
    killAll();
    Deno.exit(signal === "SIGINT" ? 130 : 143);
  };
}
const onSigint = onSignal("SIGINT");
const onSigterm = onSignal("SIGTERM");

function track(child: Deno.ChildProcess): void {
  live.set(child.pid, child);
  if (!signalsHooked) {
    Deno.addSignalListener("SIGINT", onSigint);
    Deno.addSignalListener("SIGTERM", onSigterm);
    globalThis.addEventListener("unload", killAll);
    signalsHooked = true;
  }
}

function untrack(child: Deno.ChildProcess): void {
  live.delete(child.pid);
  if (live.size === 0 && signalsHooked) {
    Deno.removeSignalListener("SIGINT", onSigint);
    Deno.removeSignalListener("SIGTERM", onSigterm);
    globalThis.removeEventListener("unload", killAll);
    signalsHooked = false;
  }
}

/** Whether qemu-system-x86_64 is on PATH. */
export function hasQemu(): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/qemu-system-x86_64`).isFile) return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The host ports of this process's guests, from start to stop: never handed out twice. */
const portsInUse = new Set<number>();

/**
 * A port on 127.0.0.1 that was free a moment ago and that no other guest of
 * this process holds (guests booted in parallel each get their own).
 */
function freePort(): number {
  for (;;) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    if (!portsInUse.has(port)) {
      portsInUse.add(port);
      return port;
    }
  }
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The boot time the fixed budgets of {@linkcode Vm.run} are written for (a
 * guest boots in about 6 s on an idle machine here): a guest that took longer
 * to boot, on a loaded machine, gets budgets scaled by its boot time over this.
 */
export const BUDGET_BOOT_MS = 10_000;

/** A running guest. */
export class Vm {
  /** The image it booted. */
  readonly image: GuestImage;
  /** QEMU's pid. */
  readonly pid: number;
  /** The agent's URL from the host. */
  readonly url: string;
  /** Milliseconds from QEMU's start to the agent listening. */
  bootMs = 0;
  /** When QEMU started (performance.now()). */
  #startedAt = performance.now();
  readonly #child: Deno.ChildProcess;
  readonly #port: number;
  readonly #dir: string;
  readonly #console: string[] = [];
  readonly #exited: Promise<Deno.CommandStatus>;
  #shell?: Deno.UnixConn;
  #shellText = "";
  #shellWaiters: (() => void)[] = [];
  #shellQueue: Promise<unknown> = Promise.resolve();
  #marker = 0;
  #stopped = false;
  #watchdog?: ReturnType<typeof setTimeout>;
  /** Readers of QEMU's pipes and the shell socket, awaited by stop(). */
  readonly #readers: Promise<unknown>[] = [];

  private constructor(image: GuestImage, child: Deno.ChildProcess, port: number, dir: string) {
    this.image = image;
    this.pid = child.pid;
    this.url = `tcp://127.0.0.1:${port}`;
    this.#child = child;
    this.#port = port;
    this.#dir = dir;
    this.#exited = child.status.finally(() => untrack(child));
  }

  /**
   * Boots `image` and waits until the agent listens (the agent's `listening on`
   * line on the console) and the shell on ttyS1 answers. Throws, with the
   * console's last lines, when QEMU exits or the deadline passes; QEMU is
   * stopped then.
   */
  static async start(image: GuestImage, options: VmOptions = {}): Promise<Vm> {
    for (let attempt = 1;; attempt++) {
      try {
        return await Vm.#startOnce(image, options);
      } catch (error) {
        // Another process may have taken the free port between our check and QEMU's bind.
        if (attempt < 3 && /host forwarding rule/.test(String(error))) continue;
        throw error;
      }
    }
  }

  static async #startOnce(image: GuestImage, options: VmOptions): Promise<Vm> {
    const port = freePort();
    let dir: string;
    try {
      dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-vm-" });
    } catch (error) {
      portsInUse.delete(port);
      throw error;
    }
    const append = [
      "console=ttyS0",
      "quiet",
      "panic=-1",
      `ebpfmonitor.sleepers=${options.sleepers ?? 0}`,
      ...(options.v8Flags ? [`ebpfmonitor.v8=${options.v8Flags}`] : []),
      ...(options.append ? [options.append] : []),
    ].join(" ");
    const args = [
      "-accel",
      "tcg",
      "-cpu",
      "max",
      "-smp",
      String(options.cpus ?? 1),
      "-m",
      String(options.memoryMiB ?? 1024),
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-kernel",
      image.vmlinuz,
      "-initrd",
      image.initrd,
      "-append",
      append,
      "-serial",
      "stdio",
      "-serial",
      `unix:${dir}/ttyS1,server=on,wait=off`,
      "-netdev",
      `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${port}-:${AGENT_PORT}`,
      "-device",
      "virtio-net-pci,netdev=net0",
    ];
    const t0 = performance.now();
    const child = new Deno.Command("qemu-system-x86_64", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    track(child);
    const vm = new Vm(image, child, port, dir);
    vm.#startedAt = t0;
    if (options.lifetimeMs !== undefined) {
      vm.#watchdog = setTimeout(() => {
        console.error(
          `vm: the guest ran past ${options.lifetimeMs} ms: killing QEMU (pid ${vm.pid})`,
        );
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }, options.lifetimeMs);
    }
    try {
      await vm.#waitReady(options);
      vm.bootMs = Math.round(performance.now() - t0);
      return vm;
    } catch (error) {
      await vm.stop();
      throw error;
    }
  }

  async #waitReady(options: VmOptions): Promise<void> {
    const timeoutMs = options.readyTimeoutMs ?? 60_000;
    let lastLine = performance.now();
    const { promise: listening, resolve: ready } = Promise.withResolvers<void>();
    const stderr = new Response(this.#child.stderr).text();
    this.#readers.push(stderr.catch(() => ""));
    const pump = (async () => {
      let partial = "";
      for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
        const lines = (partial + chunk).split("\n");
        partial = lines.pop()!;
        for (const raw of lines) {
          const line = raw.replace(/\r$/, "");
          lastLine = performance.now();
          this.#console.push(line);
          if (this.#console.length > 400) this.#console.shift();
          options.onConsole?.(line);
          if (/^listening on tcp:\/\//.test(line)) ready();
        }
      }
    })();
    this.#readers.push(pump.catch(() => {}));
    // Due timeoutMs after the start or after the last console line, at most 4 × timeoutMs in all.
    const due = () =>
      Math.min(
        Math.max(this.#startedAt, lastLine) + timeoutMs,
        this.#startedAt + 4 * timeoutMs,
      );
    let timer: ReturnType<typeof setInterval> | undefined;
    const deadline = new Promise<"timeout">((resolve) => {
      timer = setInterval(() => {
        if (performance.now() >= due()) resolve("timeout");
      }, 250);
    });
    const waited = () =>
      `${Math.round(performance.now() - this.#startedAt)} ms of QEMU's start (no console line for ${
        Math.round(performance.now() - lastLine)
      } ms)`;
    try {
      const first = await Promise.race([
        listening.then(() => "ready" as const),
        this.#exited.then(() => "exited" as const),
        deadline,
      ]);
      if (first === "exited") {
        const status = await this.#exited;
        throw new Error(
          `QEMU exited (code ${status.code}) before the agent listened: ${
            (await stderr).trim()
          }\n${this.consoleTail()}`,
        );
      }
      if (first === "timeout") {
        throw new Error(
          `The guest's agent did not listen within ${waited()}\n${this.consoleTail()}`,
        );
      }
      this.bootMs = Math.round(performance.now() - this.#startedAt);
      const shell = await Promise.race([this.#connectShell().then(() => "ready"), deadline]);
      if (shell === "timeout") {
        throw new Error(`The guest's shell on ttyS1 did not answer within ${waited()}`);
      }
    } finally {
      clearInterval(timer);
    }
  }

  async #connectShell(): Promise<void> {
    for (let i = 0;; i++) {
      try {
        this.#shell = await Deno.connect({ transport: "unix", path: `${this.#dir}/ttyS1` });
        break;
      } catch (error) {
        if (i > 50 || this.#stopped) throw error;
        await delay(100);
      }
    }
    const conn = this.#shell;
    const reader = (async () => {
      for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
        this.#shellText += chunk;
        const waiters = this.#shellWaiters;
        this.#shellWaiters = [];
        for (const wake of waiters) wake();
      }
    })();
    this.#readers.push(reader.catch(() => {}));
    const probe = await this.run("echo ok", 20_000);
    if (probe.output.trim() !== "ok") throw new Error(`Unexpected shell answer: ${probe.output}`);
  }

  /** The last console lines (kernel messages, /init's lines, the agent's output). */
  consoleTail(lines = 40): string {
    return this.#console.slice(-lines).map((line) => `  | ${line}`).join("\n");
  }

  /**
   * How much slower than {@linkcode BUDGET_BOOT_MS} this guest booted (at
   * least 1): the factor of every budget of {@linkcode Vm.run}.
   */
  get slowdown(): number {
    return Math.max(1, this.bootMs / BUDGET_BOOT_MS);
  }

  /**
   * Runs `command` in the guest's root shell (busybox sh) and returns its
   * output and exit status. Commands run one at a time. `timeoutMs` is the
   * budget on a guest that booted in {@linkcode BUDGET_BOOT_MS}, scaled by
   * {@linkcode Vm.slowdown}.
   */
  run(command: string, timeoutMs = 30_000): Promise<GuestRun> {
    const scaled = Math.round(timeoutMs * this.slowdown);
    const result = this.#shellQueue.then(() => this.#runNow(command, scaled));
    this.#shellQueue = result.catch(() => {});
    return result;
  }

  async #runNow(command: string, timeoutMs: number): Promise<GuestRun> {
    const shell = this.#shell;
    if (shell === undefined) throw new Error("The guest's shell is not connected");
    const n = ++this.#marker;
    const begin = `@@ebpfmonitor-begin-${n}@@`;
    const end = new RegExp(`@@ebpfmonitor-end-${n}@@ (\\d+)\\n`);
    // The markers are printed, never sent verbatim: the tty could echo what we send.
    const line = `echo "@@ebpfmonitor-begin-${n}""@@"; { ${command}\n} 2>&1; ` +
      `echo "@@ebpfmonitor-end-${n}""@@ $?"\n`;
    await shell.write(new TextEncoder().encode(line));
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const start = this.#shellText.indexOf(begin);
      const tail = start < 0 ? null : end.exec(this.#shellText.slice(start));
      if (start >= 0 && tail) {
        const body = this.#shellText.slice(start + begin.length + 1, start + tail.index);
        this.#shellText = this.#shellText.slice(start + tail.index + tail[0].length);
        return { code: Number(tail[1]), output: body.replaceAll("\r", "") };
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(`Guest command timed out after ${timeoutMs} ms: ${command}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#shellWaiters.push(resolve);
        timer = setTimeout(resolve, Math.min(left, 1000));
      });
      clearTimeout(timer);
      if (this.#stopped) throw new Error("The guest stopped");
    }
  }

  /** Stops QEMU (SIGTERM, then SIGKILL after 3 s) and removes its files. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) {
      await this.#exited;
      return;
    }
    this.#stopped = true;
    clearTimeout(this.#watchdog);
    try {
      this.#shell?.close();
    } catch {
      // already closed
    }
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const exited = await Promise.race([this.#exited.then(() => true), delay(3000)]);
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    await this.#exited;
    portsInUse.delete(this.#port);
    await Promise.allSettled(this.#readers);
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** `await using vm = await Vm.start(...)` stops it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
