/**
 * Loads and unloads the rootkit fixtures (tests/testdata/rootkits/, built per
 * kernel by tests/vm/fixtures.ts, in the image under /fixtures) in a running
 * guest through the bed's serial shell, and reads what a test needs from the
 * guest: kernel symbol addresses from /proc/kallsyms, the kernel log, the
 * victim process /init starts for hiding.
 *
 * ```ts
 * await using vm = await Vm.start(await buildImage("6.12"));
 * const pid = await victimPid(vm);
 * await hideTask(vm, pid);            // pid vanishes from the task list, stays in /proc
 * await hookSyscall(vm, "dispatch");  // syslog goes through the module (x64_sys_call patched)
 * await hideModule(vm);               // hide_module leaves /proc/modules, stays in /sys/module
 * ```
 *
 * Every fixture logs what it did (old and new addresses, patched bytes) with
 * pr_info; the load functions return those kernel log lines.
 *
 * @module
 */
import type { KernelName } from "./image.ts";
import type { RootkitName } from "./fixtures.ts";
import type { Vm } from "./qemu.ts";

export type { RootkitName } from "./fixtures.ts";

/** The system call {@linkcode hookSyscall} diverts: syslog, used in the guest only by dmesg. */
export const HOOKED_SYSCALL = { name: "syslog", nr: 103 } as const;

/**
 * Whether each guest kernel dispatches system calls through `x64_sys_call()`
 * (Linux 6.9, with stable backports to 6.6.26 and 6.1.85) rather than through
 * `sys_call_table`: Debian 12's 6.1 and Debian 13's 6.12 do, and their table
 * is dead (read by nothing); Debian 11's 5.10 has no `x64_sys_call` (its
 * backports stop short of it), so its table is live and `dispatch` mode has
 * nothing to patch. The tests assert both sides of this.
 */
export const DISPATCHER: Readonly<Record<KernelName, boolean>> = {
  "5.10": false,
  "6.1": true,
  "6.12": true,
};

/** How hook_syscall diverts the system call (see tests/testdata/rootkits/hook_syscall.c). */
export type HookMode = "table" | "dispatch";

/** Quotes `value` for the guest's sh. */
const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/** Runs `command` in the guest; throws with its output when it exits non-zero. */
async function must(vm: Vm, command: string, what: string): Promise<string> {
  const { code, output } = await vm.run(command);
  if (code !== 0) throw new Error(`Cannot ${what} in the guest (exit ${code}): ${output.trim()}`);
  return output;
}

/**
 * Addresses of kernel symbols from the guest's /proc/kallsyms (the kernel's
 * own symbols, not modules'). Throws when one is missing or named twice.
 */
export async function kallsyms(vm: Vm, names: string[]): Promise<Map<string, bigint>> {
  const pattern = names.map((n) => n.replace(/[^A-Za-z0-9_]/g, "")).join("|");
  const { output } = await vm.run(`grep -E ' (${pattern})$' /proc/kallsyms`);
  const found = new Map<string, bigint[]>();
  for (const line of output.split("\n")) {
    const [address, , name] = line.trim().split(/\s+/);
    if (!address || !name || !names.includes(name)) continue;
    found.set(name, [...found.get(name) ?? [], BigInt(`0x${address}`)]);
  }
  const result = new Map<string, bigint>();
  for (const name of names) {
    const addresses = found.get(name) ?? [];
    if (addresses.length !== 1) {
      throw new Error(
        `Cannot take ${name}'s address from the guest's /proc/kallsyms: it is there ${addresses.length} times`,
      );
    }
    if (addresses[0] === 0n) {
      throw new Error(`Cannot take ${name}'s address from the guest's /proc/kallsyms: it reads 0`);
    }
    result.set(name, addresses[0]!);
  }
  return result;
}

/** The last `lines` lines of the guest's kernel log. */
export async function dmesgTail(vm: Vm, lines = 30): Promise<string> {
  return (await vm.run(`dmesg | tail -n ${lines}`)).output.trimEnd();
}

/**
 * Writes a marker into the kernel log and returns a function that gives the
 * log lines written after it (what a load or unload printed).
 */
async function logSince(vm: Vm, label: string): Promise<() => Promise<string[]>> {
  const marker = `ebpfmonitor-bed: ${label} ${Date.now()}`;
  await must(vm, `echo ${quote(marker)} >/dev/kmsg`, "write to /dev/kmsg");
  return async () => {
    const lines = (await vm.run("dmesg")).output.split("\n");
    const at = lines.findLastIndex((line) => line.includes(marker));
    return at < 0 ? lines : lines.slice(at + 1).filter((line) => line.trim() !== "");
  };
}

/**
 * Loads fixture `name` with `params` (insmod name=value...). Returns the
 * kernel log lines of the load; throws with them (or the log's tail) when
 * insmod fails.
 */
export async function loadRootkit(
  vm: Vm,
  name: RootkitName,
  params: Record<string, string> = {},
): Promise<string[]> {
  const file = vm.image.fixtures[name];
  const args = Object.entries(params).map(([key, value]) => quote(`${key}=${value}`));
  const since = await logSince(vm, `insmod ${name}`);
  const { code, output } = await vm.run(`insmod ${file} ${args.join(" ")}`);
  const log = await since();
  if (code !== 0) {
    throw new Error(
      `Cannot load the rootkit fixture ${name} in the guest: insmod exited ${code}: ${output.trim()}\n` +
        `kernel log:\n${log.length > 0 ? log.join("\n") : await dmesgTail(vm)}`,
    );
  }
  return log;
}

/** Unloads fixture `name` (rmmod); returns the kernel log lines of the unload. */
export async function unloadRootkit(vm: Vm, name: RootkitName): Promise<string[]> {
  const since = await logSince(vm, `rmmod ${name}`);
  const { code, output } = await vm.run(`rmmod ${name}`);
  const log = await since();
  if (code !== 0) {
    throw new Error(
      `Cannot unload the rootkit fixture ${name} in the guest: rmmod exited ${code}: ${output.trim()}\n` +
        `kernel log:\n${log.join("\n")}`,
    );
  }
  return log;
}

/**
 * Loads hide_module: it unlinks itself from the kernel's module list (gone
 * from /proc/modules, still in /sys/module/hide_module). It cannot be
 * unloaded afterwards.
 */
export async function hideModule(vm: Vm): Promise<string[]> {
  const symbols = await kallsyms(vm, ["module_mutex"]);
  return await loadRootkit(vm, "hide_module", {
    module_mutex: hex(symbols.get("module_mutex")!),
  });
}

/**
 * Loads hook_syscall on {@linkcode HOOKED_SYSCALL}: `table` replaces its
 * sys_call_table entry, `dispatch` patches the call to its handler in
 * x64_sys_call. Unload with `unloadRootkit(vm, "hook_syscall")`.
 */
export async function hookSyscall(vm: Vm, mode: HookMode): Promise<string[]> {
  if (mode === "table") {
    const symbols = await kallsyms(vm, ["sys_call_table"]);
    return await loadRootkit(vm, "hook_syscall", {
      mode,
      nr: String(HOOKED_SYSCALL.nr),
      table: hex(symbols.get("sys_call_table")!),
    });
  }
  const handler = `__x64_sys_${HOOKED_SYSCALL.name}`;
  const symbols = await kallsyms(vm, ["x64_sys_call", handler]);
  return await loadRootkit(vm, "hook_syscall", {
    mode,
    dispatcher: hex(symbols.get("x64_sys_call")!),
    target: hex(symbols.get(handler)!),
  });
}

/** How many system calls went through hook_syscall's hook so far. */
export async function hookedCalls(vm: Vm): Promise<number> {
  const out = await must(
    vm,
    "cat /sys/module/hook_syscall/parameters/calls",
    "read hook_syscall's call count",
  );
  return Number(out.trim());
}

/**
 * Loads hide_task for `pid`: the process leaves the task list and stays in
 * /proc. Unloading (`unloadRootkit(vm, "hide_task")`) links it back.
 */
export async function hideTask(vm: Vm, pid: number): Promise<string[]> {
  const symbols = await kallsyms(vm, ["tasklist_lock"]);
  return await loadRootkit(vm, "hide_task", {
    pid: String(pid),
    tasklist_lock: hex(symbols.get("tasklist_lock")!),
  });
}

/**
 * Loads steal_cred for `pid`: its cred and real_cred become init_cred, the
 * kernel's own credentials. Unloading gives it its own back.
 */
export async function stealCred(vm: Vm, pid: number): Promise<string[]> {
  const symbols = await kallsyms(vm, ["init_cred"]);
  return await loadRootkit(vm, "steal_cred", {
    pid: String(pid),
    init_cred: hex(symbols.get("init_cred")!),
  });
}

/** The pid of the guest's victim process (comm `victim`, started by /init for hiding). */
export async function victimPid(vm: Vm): Promise<number> {
  const pid = Number((await must(vm, "cat /tmp/victim.pid", "read /tmp/victim.pid")).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`Bad victim pid in the guest: ${pid}`);
  return pid;
}

/**
 * Shows that the victim still runs: sends it `word` through /tmp/victim.fifo
 * and waits until it has appended it to /tmp/victim.out. Throws when it does
 * not within `timeoutMs`.
 */
export async function pokeVictim(vm: Vm, word: string, timeoutMs = 10_000): Promise<void> {
  if (!/^[A-Za-z0-9_-]+$/.test(word)) {
    throw new Error(`Cannot send ${word} to the victim: use [A-Za-z0-9_-]`);
  }
  const seconds = Math.ceil(timeoutMs / 1000);
  await must(
    vm,
    `timeout ${seconds} sh -c "echo ${word} >/tmp/victim.fifo" || exit 1; i=0; until grep -qx ${word} /tmp/victim.out 2>/dev/null; do ` +
      `i=$((i+1)); [ $i -gt ${seconds * 10} ] && exit 1; usleep 100000; done`,
    `see the victim echo ${word} within ${timeoutMs} ms`,
  );
}

const hex = (value: bigint) => `0x${value.toString(16)}`;
