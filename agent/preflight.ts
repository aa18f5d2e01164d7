/**
 * What the agent checks before it listens: privileges (and the unprivileged
 * BPF setting when they are missing), kernel lockdown, BTF, uprobes, libbpf.
 * Each missing piece is one clear sentence saying what to do; the agent exits
 * instead of failing later in the middle of a request.
 *
 * @module
 */
import { openLibbpf } from "./libbpf.ts";

/** Paths the checks read; tests point them elsewhere. */
export interface PreflightPaths {
  /** The process status file with CapEff. */
  status: string;
  /** The kernel's BTF. */
  btf: string;
  /** The uprobe PMU (perf event source). */
  uprobe: string;
  /** The kernel's lockdown mode (`none integrity [confidentiality]`), absent without LSM lockdown. */
  lockdown: string;
  /** `kernel.unprivileged_bpf_disabled`. */
  unprivilegedBpf: string;
}

/** The paths of the running system. */
export const SYSTEM_PATHS: PreflightPaths = {
  status: "/proc/self/status",
  btf: "/sys/kernel/btf/vmlinux",
  uprobe: "/sys/bus/event_source/devices/uprobe/type",
  lockdown: "/sys/kernel/security/lockdown",
  unprivilegedBpf: "/proc/sys/kernel/unprivileged_bpf_disabled",
};

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Effective capabilities from a /proc/PID/status text, as a bit set. */
export function effectiveCapabilities(status: string): bigint {
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  if (!match?.[1]) throw new Error("Cannot read CapEff from /proc/self/status");
  return BigInt(`0x${match[1]}`);
}

function readOptional(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** The active lockdown mode, the bracketed word of `none integrity [confidentiality]`. */
export function lockdownMode(text: string): string | undefined {
  return /\[([a-z]+)\]/.exec(text)?.[1];
}

/** What `kernel.unprivileged_bpf_disabled` means for a process without CAP_BPF. */
function unprivilegedBpfNote(text: string | undefined): string {
  switch (text?.trim()) {
    case "0":
      return "kernel.unprivileged_bpf_disabled is 0, but the agent's programs read kernel memory, which only CAP_BPF and CAP_PERFMON allow";
    case "1":
      return "kernel.unprivileged_bpf_disabled is 1: without CAP_BPF no program loads, until the next boot";
    case "2":
      return "kernel.unprivileged_bpf_disabled is 2: without CAP_BPF no program loads";
    default:
      return "without CAP_BPF no program that reads kernel memory loads";
  }
}

/**
 * The problems that keep the agent from working here, as sentences; empty when
 * all is well.
 */
export function preflightProblems(paths: PreflightPaths = SYSTEM_PATHS): string[] {
  const problems: string[] = [];
  const caps = effectiveCapabilities(Deno.readTextFileSync(paths.status));
  const has = (bit: bigint) => (caps >> bit & 1n) === 1n;
  if (!has(CAP_SYS_ADMIN) && !(has(CAP_BPF) && has(CAP_PERFMON))) {
    const missing = [[CAP_BPF, "CAP_BPF"], [CAP_PERFMON, "CAP_PERFMON"]] as const;
    const lacks = missing.filter(([bit]) => !has(bit)).map(([, name]) => name).join(" and ");
    problems.push(
      `The agent needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load eBPF programs: it lacks ${lacks} (${
        unprivilegedBpfNote(readOptional(paths.unprivilegedBpf))
      }); run it as root, or give it both capabilities (e.g. setpriv --inh-caps +bpf,+perfmon --ambient-caps +bpf,+perfmon)`,
    );
  }
  const lockdown = readOptional(paths.lockdown);
  if (lockdown !== undefined && lockdownMode(lockdown) === "confidentiality") {
    problems.push(
      "The kernel is locked down for confidentiality (lockdown=confidentiality): it refuses bpf_probe_read_kernel, which every walker needs; boot with lockdown=integrity or none (kernel command line, or the LSM's default)",
    );
  }
  if (!exists(paths.btf)) {
    problems.push(
      `This kernel has no BTF (${paths.btf} is missing): the agent needs a kernel built with CONFIG_DEBUG_INFO_BTF=y`,
    );
  }
  if (!exists(paths.uprobe)) {
    problems.push(
      `This kernel has no uprobe support (${paths.uprobe} is missing): the agent needs CONFIG_UPROBE_EVENTS=y`,
    );
  }
  try {
    openLibbpf();
  } catch (error) {
    problems.push(error instanceof Error ? error.message : String(error));
  }
  return problems;
}

/**
 * What works but weakens the guest, as sentences with what to do; empty when
 * nothing does. Today: unprivileged eBPF allowed (`kernel.unprivileged_bpf_disabled`
 * 0), which lets any user of the guest load socket filters and probe the
 * kernel's eBPF surface beside the agent.
 */
export function preflightWarnings(paths: PreflightPaths = SYSTEM_PATHS): string[] {
  const warnings: string[] = [];
  if (readOptional(paths.unprivilegedBpf)?.trim() === "0") {
    warnings.push(
      "kernel.unprivileged_bpf_disabled is 0: any user of this guest may load eBPF programs; set it to 2 (sysctl -w kernel.unprivileged_bpf_disabled=2) unless something needs it",
    );
  }
  return warnings;
}
