/**
 * What a detector reports: alerts with their evidence, and the checks it could
 * not run on this guest (a missing symbol, a kernel without modules) with the
 * reason. A check that could not run is never silently a clean result.
 *
 * @module
 */
import { formatAddress } from "../memory/address.ts";
import type { AcquisitionCost } from "../os/view.ts";

/** How bad an alert is, most severe first. */
export const SEVERITIES = ["critical", "high", "medium", "low"] as const;

/** One of {@linkcode SEVERITIES}. */
export type Severity = typeof SEVERITIES[number];

/** One finding of one detector. */
export interface Alert {
  /** Which detector, e.g. `hidden_module`. */
  detector: string;
  /** How bad. */
  severity: Severity;
  /** One line for a human. */
  summary: string;
  /** What was seen, as plain JSON (addresses as `0x…` strings). */
  evidence: Record<string, unknown>;
}

/** A detector that could not run on this guest. */
export interface Skipped {
  /** Which detector. */
  detector: string;
  /** Why, e.g. "kallsyms has no sys_call_table (CONFIG_KALLSYMS_ALL off)". */
  reason: string;
}

/** The result of one check of one guest. */
export interface CheckReport {
  /** Every alert, most severe first. */
  alerts: Alert[];
  /** Detectors that did not run, with why. */
  skipped: Skipped[];
  /** Detectors that ran. */
  ran: string[];
  /** What the check cost on the wire. */
  cost: AcquisitionCost;
  /** Wall time of the check in milliseconds. */
  durationMs: number;
}

/** Formats an address as evidence. */
export function hex(addr: bigint): string {
  return formatAddress(addr);
}
