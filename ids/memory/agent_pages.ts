/**
 * `page` mode's source of pages: one `read_page` run per page, one round trip
 * each (the SEVmonitor baseline).
 *
 * @module
 */
import { RecordKind } from "../../bpf/records.ts";
import { MemoryFault, type PageSource } from "./memory.ts";
import { describeErrno, type ProgramSet } from "./programs.ts";

/** Reads single pages through the agent's read_page program. */
export class AgentPageSource implements PageSource {
  readonly #programs: ProgramSet;

  /** @param programs the programs of the agent connection */
  constructor(programs: ProgramSet) {
    this.#programs = programs;
  }

  /** Fetches the page at `page`. */
  async readPage(page: bigint): Promise<Uint8Array> {
    const params = new Uint8Array(8);
    new DataView(params.buffer).setBigUint64(0, page, true);
    for (const record of await this.#programs.run("read_page", params)) {
      if (record.kind === RecordKind.Page && record.addr === page) return record.payload;
      if (record.kind === RecordKind.Fault) {
        throw new MemoryFault(page, describeErrno(record.value));
      }
    }
    throw new MemoryFault(page, "the agent returned no page");
  }
}
