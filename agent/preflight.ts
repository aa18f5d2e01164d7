/**
 * What the agent checks before it listens: privileges, BTF, uprobes, libbpf.
 * Each missing piece is one clear sentence; the agent exits instead of failing
 * later in the middle of a request.
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
}

/** The paths of the running system. */
export const SYSTEM_PATHS: PreflightPaths = {
  status: "/proc/self/status",
  btf: "/sys/kernel/btf/vmlinux",
  uprobe: "/sys/bus/event_source/devices/uprobe/type",
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

/**
 * The problems that keep the agent from working here, as sentences; empty when
 * all is well.
 */
export function preflightProblems(paths: PreflightPaths = SYSTEM_PATHS): string[] {
  const problems: string[] = [];
  const caps = effectiveCapabilities(Deno.readTextFileSync(paths.status));
  const has = (bit: bigint) => (caps >> bit & 1n) === 1n;
  if (!has(CAP_SYS_ADMIN) && !(has(CAP_BPF) && has(CAP_PERFMON))) {
    problems.push(
      "The agent needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load eBPF programs: run it as root",
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
