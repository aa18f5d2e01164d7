/**
 * The `hostile_agent` alert: the guest's agent answered what the guest's
 * kernel cannot hold, or more than the check's budget allows (a hash table
 * larger than the kernel makes, a flood of records, answers past the
 * deadline). Whoever is root in the guest holds the agent's key, so such an
 * answer is evidence of a compromised guest, and the check reports it instead
 * of its views (which it cannot trust).
 *
 * @module
 */
import { HOSTILE_AGENT, type HostileAnswer } from "../client/budget.ts";
import type { AcquisitionCost } from "../os/view.ts";
import type { Alert, CheckReport } from "../detect/alert.ts";

/** The alert for `error`; one alert per limit, so that repeated checks report it once. */
export function hostileAgentAlert(error: HostileAnswer): Alert {
  return {
    detector: HOSTILE_AGENT,
    severity: "critical",
    summary: `the guest's agent gave an answer no honest guest gives (limit ${error.limit})`,
    evidence: { limit: error.limit, error: error.message },
  };
}

/** What a check that met a lie before any acquisition (while the profile was built) cost. */
const NO_ACQUISITION: AcquisitionCost = { roundTrips: 0, bytes: 0, misses: 0, attempts: 0 };

/**
 * The report of a check that met `error`: its one alert, and no detector that
 * ran; `cost` is what the check had cost (none when the lie came before any
 * acquisition).
 */
export function hostileAgentReport(
  error: HostileAnswer,
  durationMs: number,
  cost: AcquisitionCost = NO_ACQUISITION,
): CheckReport {
  return {
    alerts: [hostileAgentAlert(error)],
    skipped: [{ detector: "all", reason: "the guest's agent answered with a lie" }],
    ran: [],
    cost,
    durationMs,
  };
}
