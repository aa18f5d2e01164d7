/**
 * The benchmark's chart: median time per fetch mode against the number of
 * processes, both axes logarithmic, with the ping as the floor. Plain SVG, no
 * dependencies.
 *
 * @module
 */
import { FETCH_MODES, type FetchMode } from "../guest.ts";
import type { BenchResult } from "./bench.ts";

const WIDTH = 640;
const HEIGHT = 420;
const MARGIN = { left: 70, right: 120, top: 30, bottom: 50 };
const COLORS: Record<FetchMode, string> = { page: "#c0392b", bulk: "#2874a6", fields: "#1e8449" };

function decades(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
  return out;
}

function label(n: number): string {
  return n >= 1 ? n.toLocaleString("en-US") : String(n);
}

/** The SVG text of the chart of `result`. */
export function plotSvg(result: BenchResult): string {
  const points = new Map<FetchMode, [number, number][]>(FETCH_MODES.map((m) => [m, []]));
  for (const target of [{ count: result.procs, modes: result.modes }, ...result.scales]) {
    for (const mode of FETCH_MODES) {
      const figures = target.modes[mode];
      if (figures && figures.median_ms > 0) {
        points.get(mode)!.push([target.count, figures.median_ms]);
      }
    }
  }
  const all = [...points.values()].flat();
  const xs = all.map(([x]) => x);
  const ys = [...all.map(([, y]) => y), result.ping_ms].filter((y) => y > 0);
  const xTicks = decades(Math.min(...xs), Math.max(...xs));
  const yTicks = decades(Math.min(...ys), Math.max(...ys));
  const [x0, x1] = [Math.log10(xTicks[0]!), Math.log10(xTicks.at(-1)!)];
  const [y0, y1] = [Math.log10(yTicks[0]!), Math.log10(yTicks.at(-1)!)];
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) =>
    MARGIN.left + (x1 === x0 ? 0.5 : (Math.log10(x) - x0) / (x1 - x0)) * plotW;
  const sy = (y: number) =>
    MARGIN.top + plotH - (y1 === y0 ? 0.5 : (Math.log10(y) - y0) / (y1 - y0)) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${
      WIDTH / 2
    }" y="18" text-anchor="middle" font-size="14">ebpfmonitor: time to acquire N processes (kernel ${result.kernel})</text>`,
  ];
  for (const x of xTicks) {
    parts.push(
      `<line x1="${sx(x)}" y1="${MARGIN.top}" x2="${sx(x)}" y2="${
        MARGIN.top + plotH
      }" stroke="#ddd"/>`,
      `<text x="${sx(x)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${label(x)}</text>`,
    );
  }
  for (const y of yTicks) {
    parts.push(
      `<line x1="${MARGIN.left}" y1="${sy(y)}" x2="${MARGIN.left + plotW}" y2="${
        sy(y)
      }" stroke="#ddd"/>`,
      `<text x="${MARGIN.left - 8}" y="${sy(y) + 4}" text-anchor="end">${label(y)}</text>`,
    );
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${
      HEIGHT - 12
    }" text-anchor="middle">processes (log scale)</text>`,
    `<text transform="translate(16 ${
      MARGIN.top + plotH / 2
    }) rotate(-90)" text-anchor="middle">median ms (log scale)</text>`,
    `<line x1="${MARGIN.left}" y1="${sy(result.ping_ms)}" x2="${MARGIN.left + plotW}" y2="${
      sy(result.ping_ms)
    }" stroke="#777" stroke-dasharray="6 4"/>`,
  );
  let legendY = MARGIN.top + 10;
  for (const mode of FETCH_MODES) {
    const series = points.get(mode)!.sort((a, b) => a[0] - b[0]);
    if (series.length === 0) continue;
    const path = series.map(([x, y], i) =>
      `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`
    ).join(" ");
    parts.push(`<path d="${path}" fill="none" stroke="${COLORS[mode]}" stroke-width="2"/>`);
    for (const [x, y] of series) {
      parts.push(
        `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${
          COLORS[mode]
        }"/>`,
      );
    }
    parts.push(
      `<line x1="${WIDTH - MARGIN.right + 12}" y1="${legendY}" x2="${
        WIDTH - MARGIN.right + 32
      }" y2="${legendY}" stroke="${COLORS[mode]}" stroke-width="2"/>`,
      `<text x="${WIDTH - MARGIN.right + 38}" y="${legendY + 4}">${mode}</text>`,
    );
    legendY += 20;
  }
  parts.push(
    `<line x1="${WIDTH - MARGIN.right + 12}" y1="${legendY}" x2="${
      WIDTH - MARGIN.right + 32
    }" y2="${legendY}" stroke="#777" stroke-dasharray="6 4"/>`,
    `<text x="${WIDTH - MARGIN.right + 38}" y="${legendY + 4}">ping</text>`,
    "</svg>",
  );
  return parts.join("\n") + "\n";
}
