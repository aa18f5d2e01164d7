/**
 * `ebpfmonitor ids bench`: the paper's experiment. Acquire the first N
 * processes, and all modules, in each fetch mode, repeated; report the median
 * and p95 time, round trips and bytes per mode and the ratio page/bulk.
 *
 * @module
 */
import {
  type Acquired,
  type AcquisitionCost,
  FETCH_MODES,
  type FetchMode,
  type Guest,
} from "../guest.ts";
import { table } from "./format.ts";
import { median, quantile } from "./stats.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { startSleepers } from "./workload.ts";

/** Options of `ids bench`. */
export interface BenchOptions extends ConnectOptions {
  /** Processes to acquire. */
  procs: number;
  /** Measured repetitions per mode. */
  repeat: number;
  /** Print JSON. */
  json: boolean;
}

/** One mode's figures. */
export interface ModeFigures {
  /** Median time of one acquisition, ms. */
  median_ms: number;
  /** 95th percentile, ms. */
  p95_ms: number;
  /** Requests to the agent per acquisition. */
  round_trips: number;
  /** Bytes on the wire per acquisition. */
  bytes: number;
  /** Pages read one by one because the mode had not fetched them. */
  misses: number;
}

/** One target's figures across modes. */
export interface TargetFigures {
  /** Objects acquired (the same in every mode). */
  count: number;
  /** By mode. */
  modes: Record<FetchMode, ModeFigures>;
  /** page median over bulk median (null when bulk took no time to measure). */
  ratio_page_over_bulk: number | null;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

async function measure<T>(
  repeat: number,
  acquire: (mode: FetchMode) => Promise<Acquired<T>>,
): Promise<TargetFigures> {
  const times: Record<FetchMode, number[]> = { page: [], bulk: [] };
  const costs = {} as Record<FetchMode, AcquisitionCost>;
  const counts = new Set<number>();
  for (const mode of FETCH_MODES) await acquire(mode); // warm-up: JIT, programs, sockets
  for (let i = 0; i < repeat; i++) {
    // Alternate the order so that neither mode always runs right after the other.
    const order = i % 2 === 0 ? FETCH_MODES : [...FETCH_MODES].reverse();
    for (const mode of order) {
      const t0 = performance.now();
      const result = await acquire(mode);
      times[mode].push(performance.now() - t0);
      costs[mode] = result.cost;
      counts.add(result.items.length);
    }
  }
  const modes = {} as Record<FetchMode, ModeFigures>;
  for (const mode of FETCH_MODES) {
    modes[mode] = {
      median_ms: round(median(times[mode])),
      p95_ms: round(quantile(times[mode], 0.95)),
      round_trips: costs[mode].roundTrips,
      bytes: costs[mode].bytes,
      misses: costs[mode].misses,
    };
  }
  const bulk = modes.bulk.median_ms;
  return {
    count: Math.min(...counts),
    modes,
    ratio_page_over_bulk: bulk > 0 ? round(modes.page.median_ms / bulk, 2) : null,
  };
}

/** Runs the benchmark against `guest`. */
export async function benchGuest(guest: Guest, procs: number, repeat: number) {
  const processes = await measure(repeat, (mode) => guest.processes(mode, procs));
  const modules = await measure(repeat, (mode) => guest.modules(mode));
  return {
    procs: processes.count,
    repeat,
    kernel: guest.profile.release,
    modes: processes.modes,
    ratio_page_over_bulk: processes.ratio_page_over_bulk,
    modules: { ...modules, note: guest.profile.modulesNote ?? null },
  };
}

function render(result: Awaited<ReturnType<typeof benchGuest>>): string {
  const rows = (label: string, figures: TargetFigures) =>
    FETCH_MODES.map((mode) => {
      const f = figures.modes[mode];
      return [
        label,
        mode,
        String(f.median_ms),
        String(f.p95_ms),
        String(f.round_trips),
        String(f.bytes),
        String(f.misses),
      ];
    });
  const lines = [
    `kernel ${result.kernel}, ${result.repeat} repetitions per mode`,
    table(
      ["TARGET", "MODE", "MEDIAN_MS", "P95_MS", "ROUND_TRIPS", "BYTES", "MISSES"],
      [
        ...rows(`${result.procs} processes`, {
          count: result.procs,
          modes: result.modes,
          ratio_page_over_bulk: null,
        }),
        ...rows(`${result.modules.count} modules`, result.modules),
      ],
      new Set([2, 3, 4, 5, 6]),
    ),
    `page/bulk: processes ${result.ratio_page_over_bulk ?? "n/a"}, modules ${
      result.modules.ratio_page_over_bulk ?? "n/a"
    }`,
  ];
  if (result.modules.note) lines.push(`note: ${result.modules.note}`);
  return lines.join("\n");
}

/** Runs `ids bench`; returns the exit code. */
export function bench(options: BenchOptions): Promise<number> {
  return withGuest(options, async (guest, local) => {
    // On this machine's kernel, start helpers so the task list holds at least N processes.
    const workload = local ? await startSleepers(options.procs) : undefined;
    try {
      const result = await benchGuest(guest, options.procs, options.repeat);
      console.log(options.json ? JSON.stringify(result) : render(result));
      return 0;
    } finally {
      await workload?.stop();
    }
  });
}
