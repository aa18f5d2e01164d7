// The agent's LoadedProgram in this process: real eBPF programs loaded into this kernel,
// attached to the trigger uprobe and fired (needs root).
import assert from "node:assert/strict";
import { DEFAULT_RUN_LIMITS, LoadedProgram, type RunLimits } from "../../agent/program.ts";
import type { RunSummary } from "../../wire/ops.ts";
import { bpfObject, type ProgramName } from "../../bpf/objects.ts";
import { AddrTag, type BpfRecord, decodeRecords, RecordKind } from "../../bpf/records.ts";
import { IS_ROOT } from "../_helpers/agent.ts";

const ignore = !IS_ROOT;
const PAGE = 4096;

/** Runs `body` with `name` loaded, unloading it afterwards. */
function withProgram<T>(name: ProgramName, body: (program: LoadedProgram) => T): T {
  const program = LoadedProgram.load(name, bpfObject(name));
  try {
    return body(program);
  } finally {
    program.close();
  }
}

/** Runs the program to its end: the chunks, their records and the summary. */
function runAll(
  program: LoadedProgram,
  params: Uint8Array,
  limits: RunLimits = DEFAULT_RUN_LIMITS,
): { chunks: Uint8Array[]; records: BpfRecord[]; summary: RunSummary } {
  const run = program.run(params, limits);
  const chunks: Uint8Array[] = [];
  for (;;) {
    const step = run.next();
    if (step.done) {
      const records = chunks.flatMap((chunk) => [...decodeRecords(chunk)]);
      return { chunks, records, summary: step.value };
    }
    chunks.push(step.value.slice());
  }
}

function readPageParams(addr: bigint): Uint8Array {
  const params = new Uint8Array(8);
  new DataView(params.buffer).setBigUint64(0, addr, true);
  return params;
}

function walkParams(start: bigint, limit: number): Uint8Array {
  const params = new Uint8Array(16);
  const view = new DataView(params.buffer);
  view.setBigUint64(0, start, true);
  view.setUint32(8, limit, true);
  return params;
}

function kallsymsAddress(name: string): bigint {
  for (const line of Deno.readTextFileSync("/proc/kallsyms").split("\n")) {
    const [addr, , symbol] = line.split(" ");
    if (symbol === name && addr) return BigInt(`0x${addr}`);
  }
  throw new Error(`kallsyms has no ${name}`);
}

const kinds = (records: BpfRecord[]) => records.map((r) => r.kind);

Deno.test({
  name: "read_page of kernel text (_stext) returns one PAGE record of 4096 bytes (root)",
  ignore,
  fn: () =>
    withProgram("read_page", (program) => {
      assert.equal(program.name, "read_page");
      const stext = kallsymsAddress("_stext");
      assert.notEqual(stext, 0n, "kallsyms addresses are visible to root");
      const { records, summary } = runAll(program, readPageParams(stext + 0x123n));
      assert.deepEqual(kinds(records), [RecordKind.Page, RecordKind.End]);
      const page = records[0]!;
      assert.equal(page.addr, stext & ~BigInt(PAGE - 1));
      assert.equal(page.payload.byteLength, PAGE);
      assert.ok(page.payload.some((b) => b !== 0), "kernel text is not all zeros");
      assert.deepEqual(summary, { fires: 1, records: 2, bytes: 24 + PAGE + 24 });
    }),
});

Deno.test({
  name: "read_page of address 0x10 returns a FAULT record and the program still works (root)",
  ignore,
  fn: () =>
    withProgram("read_page", (program) => {
      const { records } = runAll(program, readPageParams(0x10n));
      assert.deepEqual(kinds(records), [RecordKind.Fault, RecordKind.End]);
      assert.equal(records[0]!.addr, 0n);
      assert.ok(records[0]!.value < 0n, `fault value ${records[0]!.value} is a negative errno`);
      const again = runAll(program, readPageParams(kallsymsAddress("_stext")));
      assert.deepEqual(kinds(again.records), [RecordKind.Page, RecordKind.End]);
    }),
});

Deno.test({
  name: "read_page refuses a user-space address with EPERM before reading it (root)",
  ignore,
  fn: () =>
    withProgram("read_page", (program) => {
      // Refused by the program itself: -1 (EPERM), not the helper's -EFAULT or -ERANGE.
      const { records } = runAll(program, readPageParams(0x7fff_0000_1000n));
      assert.deepEqual(kinds(records), [RecordKind.Fault, RecordKind.End]);
      assert.equal(records[0]!.value, -1n);
    }),
});

Deno.test({
  name: "walk_tasks with limit 0 returns START then END (root)",
  ignore,
  fn: () =>
    withProgram("walk_tasks", (program) => {
      const { records } = runAll(program, walkParams(0n, 0));
      assert.deepEqual(kinds(records), [RecordKind.Addr, RecordKind.End]);
      assert.equal(records[0]!.value, BigInt(AddrTag.Start));
      assert.ok(records[0]!.addr >= 0xffff_8000_0000_0000n, "the start is a kernel address");
      assert.equal(records[1]!.value, 0n, "no task visited");
    }),
});

Deno.test({
  name: "walk_tasks with tiny chunks splits the records between chunks, never inside one (root)",
  ignore,
  fn: () =>
    withProgram("walk_tasks", (program) => {
      const chunkBytes = 2 * (24 + PAGE); // room for two page records at most
      const { chunks, records, summary } = runAll(program, walkParams(0n, 20), {
        ...DEFAULT_RUN_LIMITS,
        chunkBytes,
      });
      assert.ok(chunks.length > 10, `only ${chunks.length} chunks`);
      for (const chunk of chunks) {
        assert.ok(chunk.byteLength <= chunkBytes, `a chunk of ${chunk.byteLength} bytes`);
        assert.doesNotThrow(() => [...decodeRecords(chunk)], "each chunk holds whole records");
      }
      assert.equal(records.length, summary.records);
      assert.equal(chunks.reduce((n, c) => n + c.byteLength, 0), summary.bytes);
      assert.equal(records.filter((r) => r.kind === RecordKind.Fault).length, 0);
      assert.equal(
        records.filter((r) => r.kind === RecordKind.Addr && r.value === BigInt(AddrTag.Task))
          .length,
        20,
      );
      assert.equal(records.at(-1)?.kind, RecordKind.End);
      assert.equal(records.at(-1)?.value, 20n);
      for (const r of records.filter((r) => r.kind === RecordKind.Page)) {
        assert.equal(r.payload.byteLength, PAGE);
      }
    }),
});

Deno.test({
  name: "walk_tasks starts afresh on every run: two runs visit and copy as much (root)",
  ignore,
  fn: () =>
    withProgram("walk_tasks", (program) => {
      const count = (records: BpfRecord[], kind: number) =>
        records.filter((r) => r.kind === kind).length;
      const first = runAll(program, walkParams(0n, 8)).records;
      const second = runAll(program, walkParams(0n, 8)).records;
      for (const records of [first, second]) {
        assert.equal(records.at(-1)?.kind, RecordKind.End);
        assert.equal(records.at(-1)?.value, 8n, "eight tasks visited");
        assert.equal(count(records, RecordKind.Addr), 9, "START and eight tasks");
        assert.ok(count(records, RecordKind.Page) >= 8, "every run copies the pages again");
      }
      // The walk starts at this process's task both times.
      assert.equal(first[0]!.addr, second[0]!.addr);
      // A full walk ends too, and from the same start.
      const all = runAll(program, walkParams(0n, 0xffff_ffff)).records;
      assert.equal(all.at(-1)?.kind, RecordKind.End);
      assert.ok(all.at(-1)!.value > 8n);
      assert.equal(all[0]!.addr, first[0]!.addr);
    }),
});
