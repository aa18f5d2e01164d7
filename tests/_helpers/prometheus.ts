/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for
 * tests: every sample must follow its family's `# HELP` and `# TYPE` lines,
 * label values are unescaped, and anything else is an error.
 *
 * @module
 */

/** One series. */
export interface ParsedSample {
  labels: Record<string, string>;
  value: number;
}

/** One family. */
export interface ParsedFamily {
  help: string;
  type: string;
  samples: ParsedSample[];
}

function unescape(text: string, quotes: boolean): string {
  return text.replace(/\\(.)/g, (all, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    if (c === '"' && quotes) return '"';
    throw new Error(`Bad escape ${all}`);
  });
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)/y;
  let at = 0;
  while (at < text.length) {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (match === null) throw new Error(`Bad labels {${text}} at ${at}`);
    if (match[1]! in labels) throw new Error(`Label ${match[1]} twice in {${text}}`);
    labels[match[1]!] = unescape(match[2]!, true);
    at = pattern.lastIndex;
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(text)) throw new Error(`Bad value ${text}`);
  return Number(text);
}

/** Parses `text`; throws on anything the format does not allow. */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  if (text !== "" && !text.endsWith("\n")) throw new Error("The text does not end in a newline");
  const helps = new Map<string, string>();
  for (const line of text.split("\n").slice(0, -1)) {
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/
      .exec(line);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (help) {
      if (helps.has(help[1]!)) throw new Error(`Second HELP for ${help[1]}`);
      helps.set(help[1]!, unescape(help[2]!, false));
    } else if (type) {
      const name = type[1]!;
      if (families.has(name)) throw new Error(`Second TYPE for ${name}`);
      const h = helps.get(name);
      if (h === undefined) throw new Error(`TYPE before HELP for ${name}`);
      families.set(name, { help: h, type: type[2]!, samples: [] });
    } else if (sample) {
      const family = families.get(sample[1]!);
      if (family === undefined) throw new Error(`Sample of undeclared metric: ${line}`);
      family.samples.push({ labels: parseLabels(sample[2] ?? ""), value: parseValue(sample[3]!) });
    } else if (line !== "") {
      throw new Error(`Unparsable line: ${line}`);
    }
  }
  return families;
}

/** The value of `name`'s series with exactly `labels`, or undefined. */
export function sampleValue(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return families.get(name)?.samples.find((s) =>
    JSON.stringify(Object.entries(s.labels).sort()) === want
  )?.value;
}
