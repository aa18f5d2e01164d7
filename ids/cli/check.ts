/**
 * `ebpfmonitor ids check`: one check of the guest. Exit code 0 when clean, 1
 * when there are alerts, 2 on an error (the program's handler).
 *
 * @module
 */
import { printable, terminalSafeJson } from "../printable.ts";
import type { CheckReport } from "../detect/alert.ts";
import { type Baseline, loadBaseline, saveBaseline, takeBaseline } from "../detect/baseline.ts";
import { runChecks, takeSnapshot } from "../check/check.ts";
import { DEFAULT_POLICY, loadPolicy, type Policy } from "../detect/policy.ts";
import { HostileAnswer } from "../client/budget.ts";
import { hostileAgentReport } from "../check/hostile_agent.ts";
import type { FetchMode } from "../guest.ts";
import { type ConnectOptions, withGuest } from "./session.ts";

/** Options of `ids check`. */
export interface CheckCommandOptions extends ConnectOptions {
  /** Policy file. */
  policy?: string;
  /** Baseline file to compare with. */
  baseline?: string;
  /** Write a baseline of the guest as it is now to this file, and check nothing. */
  saveBaseline?: string;
  /** Fetch mode of the views. */
  fetch: FetchMode;
  /** Print JSON. */
  json: boolean;
}

/** The JSON `ids check --json` prints. */
export function reportJson(report: CheckReport): Record<string, unknown> {
  return {
    alerts: report.alerts,
    skipped: report.skipped,
    ran: report.ran,
    round_trips: report.cost.roundTrips,
    bytes: report.cost.bytes,
    duration_ms: Math.round(report.durationMs * 10) / 10,
  };
}

/** The report for a human. */
export function reportText(report: CheckReport): string {
  const lines = report.alerts.map((a) =>
    `${a.severity.toUpperCase().padEnd(8)} ${a.detector.padEnd(16)} ${printable(a.summary)}\n` +
    `${" ".repeat(26)}${terminalSafeJson(JSON.stringify(a.evidence))}`
  );
  for (const s of report.skipped) {
    lines.push(`skipped  ${s.detector.padEnd(16)} ${printable(s.reason)}`);
  }
  lines.push(
    `${report.alerts.length} alert(s); ran ${report.ran.join(", ")}; ` +
      `${report.cost.roundTrips} round trips, ${report.cost.bytes} bytes, ` +
      `${report.durationMs.toFixed(0)} ms`,
  );
  return lines.join("\n");
}

/** Runs `ids check`; returns the exit code. */
export async function check(options: CheckCommandOptions): Promise<number> {
  const policy = options.policy === undefined ? DEFAULT_POLICY : await loadPolicy(options.policy);
  const baseline = options.baseline === undefined
    ? undefined
    : await loadBaseline(options.baseline);
  const started = performance.now();
  const print = (report: CheckReport) =>
    console.log(
      options.json
        ? terminalSafeJson(JSON.stringify(reportJson(report), null, 2))
        : reportText(report),
    );
  try {
    return await checkGuest(options, policy, baseline, print);
  } catch (error) {
    // A lie met while the guest's profile is built (a huge kallsyms, say) is an alert too.
    if (!(error instanceof HostileAnswer)) throw error;
    print(hostileAgentReport(error, performance.now() - started));
    return 1;
  }
}

function checkGuest(
  options: CheckCommandOptions,
  policy: Policy,
  baseline: Baseline | undefined,
  print: (report: CheckReport) => void,
): Promise<number> {
  return withGuest(options, async (guest, _local, progress) => {
    if (options.saveBaseline !== undefined) {
      progress.step(`taking a snapshot (${options.fetch} mode)`);
      const snapshot = await takeSnapshot(guest, options.fetch);
      progress.done();
      const saved = takeBaseline(
        guest.profile.release,
        snapshot.processes,
        snapshot.modules,
        snapshot.listening,
      );
      await saveBaseline(options.saveBaseline, saved);
      console.error(
        `baseline of ${
          printable(saved.release)
        } written to ${options.saveBaseline}: ${saved.modules.length} modules, ` +
          `${saved.root_processes.length} root process names, ` +
          `${saved.listening?.length ?? "no"} listening sockets`,
      );
      return 0;
    }
    progress.step(`checking: snapshot (${options.fetch} mode), then every detector`);
    const report = await runChecks(guest, { policy, baseline }, { mode: options.fetch });
    progress.done();
    print(report);
    return report.alerts.length === 0 ? 0 : 1;
  });
}
