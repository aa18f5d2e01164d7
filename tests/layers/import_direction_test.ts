/**
 * Imports point down only. The IDS's layers, bottom up: transport (wire, and
 * the shared program objects in bpf/) → agent client → memory → profile → OS
 * views → detectors → acquisition (ids/guest.ts) → checks (ids/check: the
 * detectors run on a guest) → watch → CLI. Detectors see a snapshot (memory
 * and views), never the agent client or the Guest, so they run offline. The agent
 * side (agent/, agent.ts) sits on wire and bpf and never meets the IDS; the
 * IDS never imports the agent. A file may import its own layer or any below.
 * Reads the sources only; no kernel, no network.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Which side of the channel a layer belongs to; `shared` is imported by both. */
type Side = "shared" | "ids" | "agent";

interface Layer {
  name: string;
  rank: number;
  side: Side;
}

/** Each file's layer: the longest matching prefix wins. */
const LAYERS: readonly [prefix: string, layer: Layer][] = [
  ["wire/", { name: "transport", rank: 0, side: "shared" }],
  ["bpf/", { name: "transport", rank: 0, side: "shared" }],
  ["ids/printable.ts", { name: "transport", rank: 0, side: "shared" }],
  ["ids/duration.ts", { name: "transport", rank: 0, side: "shared" }],
  ["ids/client/", { name: "client", rank: 1, side: "ids" }],
  ["ids/limits.ts", { name: "client", rank: 1, side: "ids" }],
  ["ids/local_agent.ts", { name: "client", rank: 1, side: "ids" }],
  ["ids/attestation.ts", { name: "client", rank: 1, side: "ids" }],
  ["ids/vcek_chain.ts", { name: "client", rank: 1, side: "ids" }],
  ["ids/memory/", { name: "memory", rank: 2, side: "ids" }],
  ["ids/profile/", { name: "profile", rank: 3, side: "ids" }],
  ["ids/os/", { name: "OS views", rank: 4, side: "ids" }],
  ["ids/detect/", { name: "detectors", rank: 5, side: "ids" }],
  ["ids/guest.ts", { name: "acquisition", rank: 6, side: "ids" }],
  ["ids/check/", { name: "checks", rank: 7, side: "ids" }],
  ["ids/watch/", { name: "watch", rank: 8, side: "ids" }],
  ["ids/cli/", { name: "CLI", rank: 9, side: "ids" }],
  ["agent/", { name: "agent", rank: 1, side: "agent" }],
  ["agent.ts", { name: "agent entry", rank: 2, side: "agent" }],
  ["main.ts", { name: "entry", rank: 10, side: "shared" }],
];

/** The layer of a file (a path relative to the repository), or undefined outside the layers. */
function layerOf(path: string): Layer | undefined {
  let best: [string, Layer] | undefined;
  for (const [prefix, layer] of LAYERS) {
    if (path.startsWith(prefix) && (best === undefined || prefix.length > best[0].length)) {
      best = [prefix, layer];
    }
  }
  return best?.[1];
}

/** Why importing `to` from `from` breaks the direction, or undefined when it does not. */
function violation(from: string, to: string): string | undefined {
  const a = layerOf(from);
  const b = layerOf(to);
  if (a === undefined || b === undefined) return undefined;
  if (from === "main.ts") return undefined;
  if (a.side !== b.side && b.side !== "shared") {
    return `${from} (${a.side}) imports ${to} (${b.side})`;
  }
  if (a.name === "detectors" && b.name === "client") {
    return `${from} (detectors) imports ${to} (client): detectors see a snapshot only`;
  }
  if (b.rank > a.rank) {
    return `${from} (${a.name}) imports ${to} (${b.name}), a layer above it`;
  }
  return undefined;
}

/** The relative imports of a source text (static, re-exports and dynamic). */
function importsOf(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) found.push(m[1]!);
  return found;
}

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = dir === "." ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

Deno.test("violation() reports an upward import and accepts a downward one", () => {
  assert.equal(violation("ids/os/tasks.ts", "ids/memory/memory.ts"), undefined);
  assert.equal(
    violation("ids/memory/memory.ts", "ids/os/tasks.ts"),
    "ids/memory/memory.ts (memory) imports ids/os/tasks.ts (OS views), a layer above it",
  );
  assert.equal(
    violation("ids/os/tasks.ts", "ids/cli/check.ts"),
    "ids/os/tasks.ts (OS views) imports ids/cli/check.ts (CLI), a layer above it",
  );
  assert.equal(
    violation("ids/detect/hidden_process.ts", "ids/guest.ts"),
    "ids/detect/hidden_process.ts (detectors) imports ids/guest.ts (acquisition), a layer above it",
  );
  assert.equal(
    violation("ids/detect/hidden_process.ts", "ids/client/agent_client.ts"),
    "ids/detect/hidden_process.ts (detectors) imports ids/client/agent_client.ts (client): detectors see a snapshot only",
  );
  assert.equal(violation("wire/frame.ts", "ids/client/budget.ts")?.includes("(shared)"), true);
  assert.equal(
    violation("ids/client/channel.ts", "agent/server.ts"),
    "ids/client/channel.ts (ids) imports agent/server.ts (agent)",
  );
  assert.equal(
    violation("agent/server.ts", "ids/guest.ts"),
    "agent/server.ts (agent) imports ids/guest.ts (ids)",
  );
});

Deno.test("no source file imports a layer above its own", async () => {
  const problems: string[] = [];
  let edges = 0;
  for (const top of ["wire", "bpf", "ids", "agent"]) {
    for await (const file of sources(top)) {
      const text = await Deno.readTextFile(join(ROOT, file));
      for (const spec of importsOf(text)) {
        const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
        edges++;
        const why = violation(file, target);
        if (why !== undefined) problems.push(why);
      }
    }
  }
  for (const file of ["agent.ts"]) {
    for (const spec of importsOf(await Deno.readTextFile(join(ROOT, file)))) {
      const why = violation(file, relative(ROOT, resolve(ROOT, spec)));
      if (why !== undefined) problems.push(why);
    }
  }
  assert.ok(edges > 100, `only ${edges} imports found: the scan is broken`);
  assert.deepEqual(problems, []);
});
