/**
 * One eBPF program loaded by the agent on behalf of the IDS: attached to the
 * trigger in this process only, fired with the IDS's parameters, its ring
 * buffer drained into chunks of records. The agent reads nothing of the records
 * but their length and whether the program asks to be fired again.
 *
 * @module
 */
import { type BpfLink, type BpfMap, BpfObject, RingBuffer, updateElem } from "./libbpf.ts";
import { fire, libcPath, TRIGGER_FUNCTION } from "./trigger.ts";
import type { RunSummary } from "../wire/ops.ts";
import { PARAMS_HEADER_BYTES, RECORD_HEADER_BYTES, RecordKind } from "../bpf/records.ts";

/** Bounds of one run. */
export interface RunLimits {
  /** Largest chunk of records handed out at once. */
  chunkBytes: number;
  /** Most fires in one run (each fire resumes the program's walk). */
  maxFires: number;
}

/** Default bounds: 1 MiB chunks, enough fires for the largest walks. */
export const DEFAULT_RUN_LIMITS: RunLimits = { chunkBytes: 1 << 20, maxFires: 100_000 };

/** Where the ring buffer's records go during a run. */
interface Route {
  sink?: (data: Deno.PointerObject, size: number) => void;
}

let lastRunId = 0n;
const FIRST_CHUNK_BYTES = 16 * 1024;

/** A loaded and attached program. */
export class LoadedProgram {
  readonly #object: BpfObject;
  readonly #params: BpfMap;
  readonly #link: BpfLink;
  readonly #ring: RingBuffer;
  readonly #route: Route;

  private constructor(
    object: BpfObject,
    params: BpfMap,
    link: BpfLink,
    ring: RingBuffer,
    route: Route,
  ) {
    this.#object = object;
    this.#params = params;
    this.#link = link;
    this.#ring = ring;
    this.#route = route;
  }

  /** The name of the program inside the object. */
  get name(): string {
    return this.#object.programName;
  }

  /**
   * Loads ELF bytes, attaches the program to the trigger for this process and
   * opens its ring buffer. Releases everything it made when a step fails.
   */
  static load(name: string, elf: Uint8Array): LoadedProgram {
    const object = BpfObject.load(name, elf);
    let link: BpfLink | undefined;
    try {
      const params = object.map("params");
      if (params.valueSize < PARAMS_HEADER_BYTES) {
        throw new Error(`eBPF object ${name}: params value is smaller than its header`);
      }
      const events = object.map("events");
      link = object.attachUprobe(Deno.pid, libcPath(), TRIGGER_FUNCTION);
      const route: Route = {};
      const ring = new RingBuffer(events, (data, size) => route.sink?.(data, size));
      return new LoadedProgram(object, params, link, ring, route);
    } catch (error) {
      link?.destroy();
      object.close();
      throw error;
    }
  }

  /**
   * Fires the program with `body` as its parameters until it stops asking for
   * more, yielding the records in chunks of at most `limits.chunkBytes`.
   * The program is armed only for the moment of each fire.
   */
  *run(
    body: Uint8Array,
    limits: RunLimits = DEFAULT_RUN_LIMITS,
  ): Generator<Uint8Array, RunSummary> {
    const capacity = this.#params.valueSize - PARAMS_HEADER_BYTES;
    if (body.byteLength > capacity) {
      throw new Error(
        `Parameters of ${body.byteLength} bytes exceed the ${capacity} that ${this.name} takes`,
      );
    }
    const value = new Uint8Array(this.#params.valueSize);
    const header = new DataView(value.buffer);
    header.setUint32(0, 1, true); // armed
    header.setUint32(4, Deno.pid, true); // tgid: only this process's fires count
    header.setBigUint64(8, ++lastRunId, true);
    value.set(body, PARAMS_HEADER_BYTES);

    const ready: Uint8Array[] = [];
    let chunk = new Uint8Array(Math.min(FIRST_CHUNK_BYTES, limits.chunkBytes));
    let used = 0;
    let lastKind = 0;
    const summary: RunSummary = { fires: 0, records: 0, bytes: 0 };
    let failure: Error | undefined;
    this.#route.sink = (data, size) => {
      if (size < RECORD_HEADER_BYTES || size > limits.chunkBytes) {
        failure ??= new Error(`${this.name} wrote a record of ${size} bytes`);
        return;
      }
      if (used + size > chunk.byteLength) {
        if (used + size <= limits.chunkBytes) {
          // Grow by doubling: small runs (one page) stay cheap, large ones copy little.
          const grown = new Uint8Array(Math.min(limits.chunkBytes, 2 * (used + size)));
          grown.set(chunk.subarray(0, used));
          chunk = grown;
        } else {
          ready.push(chunk.subarray(0, used));
          chunk = new Uint8Array(limits.chunkBytes);
          used = 0;
        }
      }
      Deno.UnsafePointerView.copyInto(data, chunk.subarray(used, used + size));
      // record_hdr.kind: a little-endian u32, read from the copy just made.
      lastKind = chunk[used]! | chunk[used + 1]! << 8 | chunk[used + 2]! << 16 |
        chunk[used + 3]! << 24;
      used += size;
      summary.records++;
      summary.bytes += size;
    };

    // Armed only while firing, never across a yield: another connection's run in
    // between fires its own program alone.
    const key = new Uint8Array(4);
    const disarmed = new Uint8Array(this.#params.valueSize);
    try {
      do {
        if (summary.fires >= limits.maxFires) {
          throw new Error(`${this.name} still asked for more after ${limits.maxFires} fires`);
        }
        lastKind = 0;
        updateElem(this.#params, key, value);
        try {
          fire();
        } finally {
          updateElem(this.#params, key, disarmed);
        }
        summary.fires++;
        this.#ring.consume();
        if (failure) throw failure;
        yield* ready.splice(0);
      } while (lastKind === RecordKind.More);
      if (used > 0) yield chunk.subarray(0, used);
      return summary;
    } finally {
      this.#route.sink = undefined;
    }
  }

  /** Detaches and unloads. Idempotent. */
  close(): void {
    this.#ring.close();
    this.#link.destroy();
    this.#object.close();
  }
}
