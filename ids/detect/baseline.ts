/**
 * A baseline: what a guest had when the operator trusted it (its modules, its
 * listening sockets, the names of its root processes), saved as JSON so that
 * later checks report what is new since.
 *
 * @module
 */
import { parseJson, readFileText } from "./_json_file.ts";
import type { ModuleInfo } from "../os/modules.ts";
import type { ProcessInfo } from "../os/tasks.ts";

/** What a baseline holds. */
export interface Baseline {
  /** Format version, 1. */
  version: 1;
  /** When it was taken (ISO 8601). */
  taken: string;
  /** The guest kernel's release. */
  release: string;
  /** Module names. */
  modules: string[];
  /** Listening sockets as `proto/port`; undefined when the snapshot had no sockets view. */
  listening?: string[];
  /** Names (`comm`) of user-space processes running as root. */
  root_processes: string[];
}

/** Whether a process is a user-space process with root's real or effective uid. */
export function isRootProcess(p: ProcessInfo): boolean {
  return !p.kthread && (p.uid === 0 || p.euid === 0);
}

const sorted = (items: Iterable<string>) => [...new Set(items)].sort();

/** Takes a baseline from a snapshot's views. */
export function takeBaseline(
  release: string,
  processes: readonly ProcessInfo[],
  modules: readonly ModuleInfo[],
  listening?: readonly string[],
): Baseline {
  const baseline: Baseline = {
    version: 1,
    taken: new Date().toISOString(),
    release,
    modules: sorted(modules.map((m) => m.name)),
    root_processes: sorted(processes.filter(isRootProcess).map((p) => p.comm)),
  };
  if (listening !== undefined) baseline.listening = sorted(listening);
  return baseline;
}

/** Parses a saved baseline; throws naming the file and what is wrong. */
export function parseBaseline(text: string, source = "baseline"): Baseline {
  const raw = parseJson(text, source);
  const b = raw as Partial<Baseline> | null;
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
  if (
    typeof b !== "object" || b === null || b.version !== 1 || typeof b.taken !== "string" ||
    typeof b.release !== "string" || !strings(b.modules) || !strings(b.root_processes) ||
    (b.listening !== undefined && !strings(b.listening))
  ) {
    throw new Error(
      `Cannot parse ${source}: not an ebpfmonitor baseline (version 1 with release, modules, root_processes)`,
    );
  }
  return b as Baseline;
}

/** Reads a baseline file. */
export async function loadBaseline(path: string): Promise<Baseline> {
  return parseBaseline(await readFileText(path, "baseline"), `baseline ${path}`);
}

/** Writes a baseline file (atomically: a temporary file renamed over it). */
export async function saveBaseline(path: string, baseline: Baseline): Promise<void> {
  const temporary = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(temporary, JSON.stringify(baseline, null, 2) + "\n");
  await Deno.rename(temporary, path);
}
