/**
 * `ebpfmonitor ids bench`: the paper's experiment and beyond. Acquire the
 * first N processes, and all modules, in each fetch mode, repeated; then the
 * same at larger process counts; and the round trip of an empty request (the
 * floor); all sockets; one whole `ids check`. Reports median and p95 time, round trips and bytes per mode, and the
 * ratios between them.
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
import type { CheckReport } from "../detect/alert.ts";
import { runChecks } from "../check/check.ts";
import { DEFAULT_POLICY } from "../detect/policy.ts";
import { table } from "./format.ts";
import { pingTimes } from "./ping.ts";
import { plotSvg } from "./plot.ts";
import { median, quantile } from "./stats.ts";
import { type ConnectOptions, withGuest } from "./session.ts";
import { startSleepers, type Workload } from "./workload.ts";
import { moduleView } from "../os/module_view.ts";
import { processView } from "../os/process_view.ts";
import { socketView } from "../os/socket_view.ts";
import { moduleLayoutNote } from "../os/modules_layout.ts";

/** Options of `ids bench`. */
export interface BenchOptions extends ConnectOptions {
  /** Processes to acquire for the main figures (the paper's 100). */
  procs: number;
  /** Measured repetitions per mode. */
  repeat: number;
  /** Larger process counts to measure too (the page mode only up to 1,000). */
  scales: number[];
  /** Write a chart of time per mode against process count. */
  plot?: string;
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
  /** By mode (a mode left out at this scale is absent). */
  modes: Partial<Record<FetchMode, ModeFigures>>;
}

/** Page mode costs two round trips per process: past this many it is left out. */
const PAGE_MODE_MAX_PROCS = 1_000;

const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) =>
  a !== undefined && b !== undefined && b > 0 ? round(a / b, 2) : null;

/** Hears each step of a benchmark: what, and how far (`done` of `total` acquisitions). */
export type BenchProgress = (what: string, done: number, total: number) => void;

async function measure<T>(
  what: string,
  progress: BenchProgress,
  modes: readonly FetchMode[],
  repeat: number,
  acquire: (mode: FetchMode) => Promise<Acquired<T>>,
  between: () => Promise<void> = () => Promise.resolve(),
): Promise<TargetFigures> {
  const times = new Map<FetchMode, number[]>(modes.map((mode) => [mode, []]));
  const costs = new Map<FetchMode, AcquisitionCost>();
  const counts = new Set<number>();
  const total = modes.length * (repeat + 1);
  let done = 0;
  for (const mode of modes) {
    progress(`${what}, ${mode} mode (warm-up)`, done++, total);
    await acquire(mode); // warm-up: JIT, programs, sockets
  }
  for (let i = 0; i < repeat; i++) {
    // Rotate the order so that no mode always runs right after the same other one.
    const order = modes.map((_, k) => modes[(k + i) % modes.length]!);
    for (const mode of order) {
      progress(`${what}, ${mode} mode`, done++, total);
      const t0 = performance.now();
      const result = await acquire(mode);
      times.get(mode)!.push(performance.now() - t0);
      costs.set(mode, result.cost);
      counts.add(result.items.length);
    }
    await between();
  }
  const figures: TargetFigures = { count: Math.min(...counts), modes: {} };
  for (const mode of modes) {
    const samples = times.get(mode)!;
    const cost = costs.get(mode)!;
    figures.modes[mode] = {
      median_ms: round(median(samples)),
      p95_ms: round(quantile(samples, 0.95)),
      round_trips: cost.roundTrips,
      bytes: cost.bytes,
      misses: cost.misses,
    };
  }
  return figures;
}

/** The result of a benchmark run. */
export interface BenchResult {
  /** Processes acquired for the main figures. */
  procs: number;
  /** Repetitions per mode (fewer at larger scales). */
  repeat: number;
  /** The guest kernel. */
  kernel: string;
  /** The main figures by mode. */
  modes: Partial<Record<FetchMode, ModeFigures>>;
  /** Median of an empty round trip, ms. */
  ping_ms: number;
  /** p95 of an empty round trip, ms. */
  ping_p95_ms: number;
  /** page median over bulk median (the paper's figure). */
  ratio_page_over_bulk: number | null;
  /** page median over fields median. */
  ratio_page_over_fields: number | null;
  /** fields median over the ping. */
  ratio_fields_over_ping: number | null;
  /** All modules, by mode. */
  modules: TargetFigures & { note: string | null; ratio_page_over_bulk: number | null };
  /** Larger process counts. */
  scales: TargetFigures[];
  /** All TCP and UDP sockets, by mode. */
  sockets: TargetFigures;
  /** One whole `ids check` (views in bulk mode and every detector), with the default policy. */
  check: ModeFigures & { alerts: number };
}

/**
 * Runs the benchmark against `guest`. `ensure(n)` is called before each
 * process count, to start helper processes when the guest is this machine.
 */
export async function benchGuest(
  guest: Guest,
  options: Pick<BenchOptions, "procs" | "repeat" | "scales">,
  ensure: (procs: number) => Promise<void> = () => Promise.resolve(),
  progress: BenchProgress = () => {},
): Promise<BenchResult> {
  progress(`starting helpers for ${options.procs} processes`, 0, 1);
  await ensure(options.procs);
  // Pings between the repetitions, so that the floor is measured in the same conditions.
  await pingTimes(guest.client, 100); // warm-up
  const pings: number[] = [];
  const processes = await measure(
    `${options.procs} processes`,
    progress,
    FETCH_MODES,
    options.repeat,
    (mode) => guest.acquire(processView(options.procs), mode),
    async () => {
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        await guest.client.ping();
        pings.push(performance.now() - t0);
      }
    },
  );
  const ping = { median_ms: round(median(pings)), p95_ms: round(quantile(pings, 0.95)) };
  const modules = await measure(
    "all modules",
    progress,
    FETCH_MODES,
    options.repeat,
    (mode) => guest.acquire(moduleView, mode),
  );
  const sockets = await measure(
    "all sockets",
    progress,
    FETCH_MODES,
    options.repeat,
    (mode) => guest.acquire(socketView, mode),
  );
  const check = await measureCheck(guest, options.repeat, progress);
  const scales: TargetFigures[] = [];
  for (const procs of options.scales) {
    progress(`starting helpers for ${procs} processes`, 0, 1);
    await ensure(procs);
    const modes = FETCH_MODES.filter((mode) => mode !== "page" || procs <= PAGE_MODE_MAX_PROCS);
    const repeat = Math.max(3, Math.ceil(options.repeat * 100 / procs));
    scales.push(
      await measure(
        `${procs} processes`,
        progress,
        modes,
        repeat,
        (mode) => guest.acquire(processView(procs), mode),
      ),
    );
  }
  const m = processes.modes;
  return {
    procs: processes.count,
    repeat: options.repeat,
    kernel: guest.profile.release,
    modes: m,
    ping_ms: ping.median_ms,
    ping_p95_ms: ping.p95_ms,
    ratio_page_over_bulk: ratio(m.page?.median_ms, m.bulk?.median_ms),
    ratio_page_over_fields: ratio(m.page?.median_ms, m.fields?.median_ms),
    ratio_fields_over_ping: ratio(m.fields?.median_ms, ping.median_ms),
    modules: {
      ...modules,
      note: moduleLayoutNote(guest.profile) ?? null,
      ratio_page_over_bulk: ratio(modules.modes.page?.median_ms, modules.modes.bulk?.median_ms),
    },
    scales,
    sockets,
    check,
  };
}

/** Times `repeat` whole checks (after one warm-up). */
async function measureCheck(
  guest: Guest,
  repeat: number,
  progress: BenchProgress,
): Promise<BenchResult["check"]> {
  progress("ids check (warm-up)", 0, repeat + 1);
  await runChecks(guest, { policy: DEFAULT_POLICY });
  const times: number[] = [];
  let last: CheckReport | undefined;
  for (let i = 0; i < repeat; i++) {
    progress("ids check", i + 1, repeat + 1);
    const t0 = performance.now();
    last = await runChecks(guest, { policy: DEFAULT_POLICY });
    times.push(performance.now() - t0);
  }
  return {
    median_ms: round(median(times)),
    p95_ms: round(quantile(times, 0.95)),
    round_trips: last!.cost.roundTrips,
    bytes: last!.cost.bytes,
    misses: last!.cost.misses,
    alerts: last!.alerts.length,
  };
}

function render(result: BenchResult): string {
  const rows = (label: string, figures: TargetFigures) =>
    FETCH_MODES.flatMap((mode) => {
      const f = figures.modes[mode];
      if (f === undefined) return [];
      return [[
        label,
        mode,
        String(f.median_ms),
        String(f.p95_ms),
        String(f.round_trips),
        String(f.bytes),
        String(f.misses),
      ]];
    });
  const lines = [
    `kernel ${result.kernel}, ${result.repeat} repetitions per mode; ping median ${result.ping_ms} ms, p95 ${result.ping_p95_ms} ms`,
    table(
      ["TARGET", "MODE", "MEDIAN_MS", "P95_MS", "ROUND_TRIPS", "BYTES", "MISSES"],
      [
        ...rows(`${result.procs} processes`, { count: result.procs, modes: result.modes }),
        ...rows(`${result.modules.count} modules`, result.modules),
        ...rows(`${result.sockets.count} sockets`, result.sockets),
        [
          "ids check",
          "bulk",
          String(result.check.median_ms),
          String(result.check.p95_ms),
          String(result.check.round_trips),
          String(result.check.bytes),
          String(result.check.misses),
        ],
        ...result.scales.flatMap((scale) => rows(`${scale.count} processes`, scale)),
      ],
      new Set([2, 3, 4, 5, 6]),
    ),
    `page/bulk ${result.ratio_page_over_bulk ?? "n/a"}, page/fields ${
      result.ratio_page_over_fields ?? "n/a"
    }, fields/ping ${result.ratio_fields_over_ping ?? "n/a"} (processes); page/bulk ${
      result.modules.ratio_page_over_bulk ?? "n/a"
    } (modules)`,
  ];
  if (result.modules.note) lines.push(`note: ${result.modules.note}`);
  return lines.join("\n");
}

/** Runs `ids bench`; returns the exit code. */
export function bench(options: BenchOptions): Promise<number> {
  return withGuest(options, async (guest, local, progress) => {
    // On this machine's kernel, start helpers so the task list holds enough processes.
    const workloads: Workload[] = [];
    const ensure = async (procs: number) => {
      if (!local) return;
      const have = [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).length;
      if (have < procs + 10) workloads.push(await startSleepers(procs + 10 - have));
    };
    try {
      const result = await benchGuest(
        guest,
        options,
        ensure,
        (what, done, total) => progress.step(`bench: ${what}: ${done}/${total}`),
      );
      progress.done();
      if (options.plot) await Deno.writeTextFile(options.plot, plotSvg(result));
      console.log(options.json ? JSON.stringify(result) : render(result));
      return 0;
    } finally {
      for (const workload of workloads) await workload.stop();
    }
  }, { deadline: false });
}
