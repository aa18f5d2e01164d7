/**
 * The Prometheus text exposition format, version 0.0.4: metric families, each
 * with its `# HELP` and `# TYPE` lines, then one line per series,
 * `name{label="value",...} value`. Label values escape `\`, `"` and newline;
 * help texts escape `\` and newline.
 *
 * @example
 * ```ts
 * renderExposition([{
 *   name: "ebpfmonitor_agent_up",
 *   help: "Whether the last check reached the agent",
 *   type: "gauge",
 *   samples: [{ labels: { vm: "web1" }, value: 1 }],
 * }]);
 * // # HELP ebpfmonitor_agent_up Whether the last check reached the agent
 * // # TYPE ebpfmonitor_agent_up gauge
 * // ebpfmonitor_agent_up{vm="web1"} 1
 * ```
 * @module
 */

/** The Content-Type of the format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** One series' value. */
export interface Sample {
  /** Its labels, in output order. */
  labels: Record<string, string>;
  /** Its value. */
  value: number;
}

/** One metric family. */
export interface MetricFamily {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*` */
  name: string;
  /** One line for a human. */
  help: string;
  /** Counter or gauge (the only types used here). */
  type: "counter" | "gauge";
  /** Its series. */
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value. */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

/** Escapes a help text. */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** A value as the format writes it (`+Inf`, `-Inf`, `NaN`, or a JavaScript number). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** Renders the families; the text ends with a newline. */
export function renderExposition(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    if (!NAME.test(family.name)) throw new Error(`Invalid metric name ${family.name}`);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels).map(([label, value]) => {
        if (!LABEL.test(label) || label.startsWith("__")) {
          throw new Error(`Invalid label name ${label} of metric ${family.name}`);
        }
        return `${label}="${escapeLabelValue(value)}"`;
      });
      const set = labels.length === 0 ? "" : `{${labels.join(",")}}`;
      lines.push(`${family.name}${set} ${formatValue(sample.value)}`);
    }
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
