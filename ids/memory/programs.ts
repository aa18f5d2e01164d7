/**
 * The eBPF programs the IDS sends to an agent, loaded once per connection on
 * first use (the paper's "sent ahead of time"), and the decoding of what they
 * write back.
 *
 * @module
 */
import { formatAddress } from "./address.ts";
import type { AgentClient } from "../client/agent_client.ts";
import { bpfObject, type ProgramName, type VariantName } from "../../bpf/objects.ts";
import { type BpfFeatures, chooseVariant } from "../../bpf/variants.ts";
import { type BpfRecord, decodeRecords, FaultCode, RecordKind } from "../../bpf/records.ts";

/** A walk or read in the guest failed; the message says where and why. */
export class WalkFault extends Error {
  /** The guest address the program was at. */
  readonly addr: bigint;
  /** @param what what was walked @param addr where @param code the FAULT record's value */
  constructor(what: string, addr: bigint, code: bigint) {
    super(`${what} stopped at ${formatAddress(addr)}: ${describeFault(code)}`);
    this.name = "WalkFault";
    this.addr = addr;
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  12: "ENOMEM",
  14: "EFAULT",
  22: "EINVAL",
  28: "ENOSPC",
  34: "ERANGE",
};

/** Says what a FAULT record of a walker means. */
export function describeFault(code: bigint): string {
  const n = Number(-code);
  if (n === FaultCode.Cycle) return "the list loops back on itself (corrupted or changing list)";
  if (n === FaultCode.LoopBound) return "the list did not close within the iteration bound";
  if (n === FaultCode.RingFull) return "the ring buffer was full";
  return describeErrno(code);
}

/** Says what a FAULT record holding a negative errno means (read_page's faults are only these). */
export function describeErrno(code: bigint): string {
  const n = Number(-code);
  if (n === 0) return "an object could not be read";
  return `unreadable (${ERRNO_NAMES[n] ?? "errno"} ${n})`;
}

/**
 * The programs loaded into one agent connection: of each, the variant the
 * kernel can load (bpf/variants.ts), chosen from what the profile says the
 * kernel supports.
 */
export class ProgramSet {
  readonly #client: AgentClient;
  readonly #features: BpfFeatures;
  readonly #handles = new Map<ProgramName, Promise<number>>();
  readonly #loaded = new Map<ProgramName, VariantName>();

  /**
   * @param client the agent connection the programs live in
   * @param features what the guest kernel's eBPF supports (from its profile)
   */
  constructor(client: AgentClient, features: BpfFeatures) {
    this.#client = client;
    this.#features = features;
  }

  /** The handle of `name`, loading it on first use. */
  handle(name: ProgramName): Promise<number> {
    let handle = this.#handles.get(name);
    if (handle === undefined) {
      handle = this.#load(name);
      this.#handles.set(name, handle);
      handle.catch(() => this.#handles.delete(name));
    }
    return handle;
  }

  async #load(name: ProgramName): Promise<number> {
    const variant = chooseVariant(name, this.#features);
    const handle = await this.#client.load(name, bpfObject(name, variant));
    this.#loaded.set(name, variant);
    return handle;
  }

  /** The variant of each program loaded so far, by program name. */
  loaded(): ReadonlyMap<ProgramName, VariantName> {
    return this.#loaded;
  }

  /** Loads the programs ahead of time, so that no measured request pays for a load. */
  async preload(names: ProgramName[]): Promise<void> {
    await Promise.all(names.map((name) => this.handle(name)));
  }

  /** Runs `name` with `params` and returns its records, in order. */
  async run(name: ProgramName, params: Uint8Array): Promise<BpfRecord[]> {
    // Chunks are decoded as they arrive, every record counted against the acquisition's
    // budget, yielding to the event loop as it goes: a flood of tiny records ends at the
    // budget, before the rest of it is received.
    const budget = this.#client.budget;
    const records: BpfRecord[] = [];
    await this.#client.run(await this.handle(name), params, async (chunk) => {
      for (const record of decodeRecords(chunk)) {
        budget.spendRecords(1);
        records.push(record);
        await budget.pace();
      }
    });
    return records;
  }
}

/** The first FAULT among `records`, as an error, or undefined. */
export function firstFault(what: string, records: BpfRecord[]): WalkFault | undefined {
  const fault = records.find((record) => record.kind === RecordKind.Fault);
  return fault && new WalkFault(what, fault.addr, fault.value);
}
