/**
 * Captures the memory fixture of the offline OS-view tests, by hand, as root,
 * on the machine whose BTF is tests/testdata/btf/vmlinux-6.18.btf.gz:
 *
 * ```sh
 * deno run -A tests/_helpers/capture.ts [--connect tcp://HOST:PORT] [NAME]
 * ```
 *
 * It connects to an agent (a local one by default), does one bulk walk of the
 * whole task list, and writes tests/testdata/memory/NAME.json.gz (default
 * host-6.18) with the pages, the kallsyms lines the profile needs, the ps
 * result computed from those pages, and /proc as it was around the walk.
 *
 * @module
 */
import { AgentClient } from "../../ids/client/agent_client.ts";
import { startLocalAgent } from "../../ids/local_agent.ts";
import type { ClientSecurity } from "../../ids/client/channel.ts";
import { clientSecurity } from "../../ids/cli/session.ts";
import { bulkWalk } from "../../ids/memory/bulk.ts";
import { KernelMemory } from "../../ids/memory/memory.ts";
import { PageCache } from "../../ids/memory/page_cache.ts";
import { bpfFeatures } from "../../ids/profile/bpf_features.ts";
import { Btf } from "../../ids/profile/btf.ts";
import { ProgramSet } from "../../ids/memory/programs.ts";
import { listTasks } from "../../ids/os/tasks.ts";
import { hex } from "../../ids/cli/format.ts";
import { procSnapshot, stableProcesses } from "./agent.ts";
import {
  fixtureProfile,
  gzip,
  MEMORY_FIXTURE_DIR,
  type MemoryFixture,
  toBase64,
} from "./memory_fixture.ts";

/** A page cache that remembers what was put in it (PageCache has no iterator). */
class RecordingCache extends PageCache {
  readonly pages = new Map<bigint, Uint8Array>();

  override put(page: bigint, bytes: Uint8Array): void {
    super.put(page, bytes);
    this.pages.set(page, bytes.slice());
  }
}

/** The kallsyms lines the kernel profile reads. */
const PROFILE_SYMBOLS = new Set(["_stext", "_etext", "_text", "init_task", "modules"]);

async function capture(url: string, security: ClientSecurity, name: string): Promise<void> {
  const client = await AgentClient.connect(url, security);
  try {
    const info = await client.kernelInfo();
    const kallsyms = (await client.kallsyms()).split("\n")
      .filter((line) => PROFILE_SYMBOLS.has(line.split(/\s+/)[2] ?? ""))
      .join("\n") + "\n";
    const programs = new ProgramSet(client, bpfFeatures(Btf.parse(await client.btf())));
    await programs.preload(["walk_tasks"]);

    const before = procSnapshot();
    const cache = new RecordingCache(info.page_size);
    const walk = await bulkWalk(programs, cache, "tasks", 0n);
    const after = procSnapshot();

    const fixture: MemoryFixture = {
      release: info.release,
      pageSize: info.page_size,
      captured: new Date().toISOString(),
      start: hex(walk.start),
      kallsyms,
      pages: {},
      expected: [],
      proc: stableProcesses(before, after),
    };
    const profile = await fixtureProfile(fixture);
    const processes = await listTasks(new KernelMemory(cache), profile, { start: walk.start });
    fixture.expected = processes.map((p) => ({ ...p, addr: hex(p.addr) }));
    fixture.pages = Object.fromEntries(
      [...cache.pages].sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([addr, bytes]) => [addr.toString(16), toBase64(bytes)]),
    );
    const out = new URL(`${name}.json.gz`, MEMORY_FIXTURE_DIR);
    const bytes = await gzip(new TextEncoder().encode(JSON.stringify(fixture)));
    await Deno.writeFile(out, bytes);
    console.log(
      `wrote ${out.pathname}: ${processes.length} processes, ${cache.pages.size} pages, ${bytes.byteLength} bytes`,
    );
  } finally {
    client.close();
  }
}

if (import.meta.main) {
  const args = [...Deno.args];
  const option = (flag: string) => {
    const at = args.indexOf(flag);
    return at >= 0 ? args.splice(at, 2)[1] : undefined;
  };
  const connect = option("--connect");
  const key = option("--key");
  const agentKey = option("--agent-key");
  const name = args[0] ?? "host-6.18";
  if (connect !== undefined) {
    await capture(connect, await clientSecurity({ key, agentKey }), name);
  } else {
    const agent = await startLocalAgent();
    try {
      await capture(agent.url, agent.security, name);
    } finally {
      await agent.stop();
    }
  }
}
