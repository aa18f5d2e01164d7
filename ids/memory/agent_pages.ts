/**
 * `page` mode's source of pages: one `read_page` run per page, one round trip
 * each (the SEVmonitor baseline); and `read_pages`, up to
 * {@linkcode READ_PAGES_MAX} named pages in one round trip, for views that know
 * a set of addresses before they read them.
 *
 * @module
 */
import { RecordKind } from "../../bpf/records.ts";
import { MemoryFault, type PageSource } from "./memory.ts";
import { describeErrno, type ProgramSet } from "./programs.ts";

/** Pages one `read_pages` run reads at most (READ_PAGES_MAX in bpf/read_pages.bpf.c). */
export const READ_PAGES_MAX = 256;

/** Encodes read_page's parameters (struct read_page_params after the agent's header). */
export function encodeReadPage(page: bigint): Uint8Array {
  const params = new Uint8Array(8);
  new DataView(params.buffer).setBigUint64(0, page, true);
  return params;
}

/** Encodes read_pages' parameters (struct read_pages_params after the agent's header). */
export function encodeReadPages(pages: bigint[]): Uint8Array {
  const params = new Uint8Array(8 + 8 * pages.length);
  const view = new DataView(params.buffer);
  view.setUint32(0, pages.length, true);
  pages.forEach((page, i) => view.setBigUint64(8 + 8 * i, page, true));
  return params;
}

/** Reads pages through the agent's read_page and read_pages programs. */
export class AgentPageSource implements PageSource {
  readonly #programs: ProgramSet;
  /** Pages one readPages() call takes. */
  readonly batchPages = READ_PAGES_MAX;

  /** @param programs the programs of the agent connection */
  constructor(programs: ProgramSet) {
    this.#programs = programs;
  }

  /** Fetches the page at `page`. */
  async readPage(page: bigint): Promise<Uint8Array> {
    for (const record of await this.#programs.run("read_page", encodeReadPage(page))) {
      if (record.kind === RecordKind.Page && record.addr === page) return record.payload;
      if (record.kind === RecordKind.Fault) {
        throw new MemoryFault(page, describeErrno(record.value));
      }
    }
    throw new MemoryFault(page, "the agent returned no page");
  }

  /** Fetches the pages at `pages` (at most READ_PAGES_MAX) in one run: each page or its fault. */
  async readPages(pages: bigint[]): Promise<Map<bigint, Uint8Array | MemoryFault>> {
    if (pages.length > READ_PAGES_MAX) {
      throw new Error(
        `read_pages reads at most ${READ_PAGES_MAX} pages, asked for ${pages.length}`,
      );
    }
    const params = encodeReadPages(pages);
    const found = new Map<bigint, Uint8Array | MemoryFault>();
    for (const record of await this.#programs.run("read_pages", params)) {
      if (record.kind === RecordKind.Page) found.set(record.addr, record.payload);
      if (record.kind === RecordKind.Fault) {
        found.set(record.addr, new MemoryFault(record.addr, describeErrno(record.value)));
      }
    }
    for (const page of pages) {
      if (!found.has(page)) found.set(page, new MemoryFault(page, "the agent returned no page"));
    }
    return found;
  }
}
