/**
 * Captures the socket fixture of the offline socket-view tests, by hand, as
 * root, on the machine whose BTF is tests/testdata/btf/vmlinux-6.18.btf.gz:
 *
 * ```sh
 * deno run -A tests/_helpers/capture_sockets.ts [NAME]
 * ```
 *
 * It starts a local agent, opens a TCP listener, a connection to it and a UDP
 * socket (IPv4 and IPv6) so that there is something to see, does one bulk walk
 * of the socket tables, and writes tests/testdata/memory/NAME.json.gz (default
 * host-6.18-sockets) with the tables, the walker's records as they came (its
 * pages and the non-empty buckets' heads), the sockets the view listed from
 * them, and /proc/net as it was around the walk.
 *
 * @module
 */
import dgram from "node:dgram";
import { Guest } from "../../ids/guest.ts";
import { startLocalAgent } from "../../ids/local_agent.ts";
import {
  collectHashWalk,
  encodeHashWalk,
  type HashTable,
  hashWalkSpec,
} from "../../ids/memory/hash.ts";
import { KernelMemory } from "../../ids/memory/memory.ts";
import { PageCache } from "../../ids/memory/page_cache.ts";
import { ProgramSet } from "../../ids/memory/programs.ts";
import { RangeCache } from "../../ids/memory/range_cache.ts";
import { listSockets, socketHashes, socketInfo } from "../../ids/os/sockets.ts";
import { hex } from "../../ids/cli/format.ts";
import { readProcNet, socketKey } from "./proc_net.ts";
import { gzip, MEMORY_FIXTURE_DIR, type SocketFixture, toBase64 } from "./memory_fixture.ts";
import { socketTablesOf } from "../../ids/os/socket_view.ts";
import { socketCapturePlan } from "../../ids/os/socket_view.ts";

const tableJson = (t: HashTable) => ({ ...t, base: hex(t.base) });

async function capture(name: string): Promise<void> {
  const agent = await startLocalAgent();
  const closers: (() => void)[] = [];
  try {
    for (const hostname of ["127.0.0.1", "::1"]) {
      const listener = Deno.listen({ hostname, port: 0 });
      const client = await Deno.connect({ hostname, port: listener.addr.port });
      const server = await listener.accept();
      const udp = dgram.createSocket(hostname === "::1" ? "udp6" : "udp4");
      await new Promise<void>((done) => udp.bind(0, hostname, done));
      closers.push(() => listener.close(), () => client.close(), () => server.close());
      closers.push(() => udp.close());
    }
    const guest = await Guest.open(agent.url, agent.security);
    try {
      const tables = (await socketTablesOf(guest.context, guest.memory()))!;
      const spec = hashWalkSpec(
        socketHashes(tables),
        (await socketCapturePlan(guest.profile))!,
        "bulk",
      );
      const programs = new ProgramSet(guest.client, guest.profile.bpf);
      const before = await readProcNet();
      const records = await programs.run("walk_hash", encodeHashWalk(spec));
      const after = await readProcNet();
      const mem = new KernelMemory(new PageCache(4096), undefined, new RangeCache(4096));
      collectHashWalk(records, mem, spec);
      const sockets = await listSockets(mem, guest.profile, tables);
      const afterKeys = new Set(after.map(socketKey));
      const fixture: SocketFixture = {
        release: guest.profile.release,
        pageSize: guest.profile.pageSize,
        captured: new Date().toISOString(),
        tables: {
          net: hex(tables.net),
          tcpListen: tableJson(tables.tcpListen),
          tcpEstablished: tableJson(tables.tcpEstablished),
          udp: tableJson(tables.udp!),
        },
        records: records.map((r) => ({
          kind: r.kind,
          addr: hex(r.addr),
          value: r.value.toString(),
          payload: toBase64(r.payload),
        })),
        expected: sockets.map(socketInfo),
        proc: before.filter((s) => afterKeys.has(socketKey(s))),
      };
      const out = new URL(`${name}.json.gz`, MEMORY_FIXTURE_DIR);
      const bytes = await gzip(new TextEncoder().encode(JSON.stringify(fixture)));
      await Deno.writeFile(out, bytes);
      console.log(
        `wrote ${out.pathname}: ${sockets.length} sockets, ${records.length} records, ${bytes.byteLength} bytes`,
      );
    } finally {
      guest.close();
    }
  } finally {
    for (const close of closers.reverse()) close();
    await agent.stop();
  }
}

if (import.meta.main) await capture(Deno.args[0] ?? "host-6.18-sockets");
