// The Unix-domain socket view (ids/os/unix_sockets.ts): where each target kernel keeps the table
// (offline, on the real BTF of 5.10, 6.1, 6.12 and 6.18), the names /proc/net/unix prints, and
// (as root) the view equal to this machine's /proc/net/unix in every fetch mode, and through
// `ids sockets --unix --json`.
import assert from "node:assert/strict";
import { Btf } from "../../../ids/profile/btf.ts";
import { Kallsyms } from "../../../ids/profile/kallsyms.ts";
import { KernelProfile } from "../../../ids/profile/profile.ts";
import { FETCH_MODES } from "../../../ids/guest.ts";
import {
  UNIX_HASH_BUCKETS,
  unixCapturePlan,
  unixLayout,
  unixPath,
  unixSocketView,
} from "../../../ids/os/unix_sockets.ts";
import { vmlinuxBtfBytes } from "../../_helpers/profile_fixtures.ts";
import { IS_ROOT, runCli, withGuest } from "../../_helpers/agent.ts";
import { parseProcNetUnix, unixSocketKey } from "../../_helpers/proc_net.ts";

function profile(btf: Btf, kallsyms: string): KernelProfile {
  return new KernelProfile({
    release: "test",
    btf,
    kallsyms: Kallsyms.parse(kallsyms),
    pageSize: 4096,
  });
}

const TEXT = "ffffffff81000000 T _stext\nffffffff81e00000 T _etext\n";

Deno.test("unixLayout(): the per-namespace table from 6.0 (6.1, 6.12, 6.18), unix_socket_table before (5.10)", async (t) => {
  for (const kernel of ["5.10", "6.1", "6.12", "6.18"]) {
    await t.step(kernel, async () => {
      const btf = Btf.parse(await vmlinuxBtfBytes(kernel));
      const withSymbol = profile(btf, `${TEXT}ffffffff82c00000 b unix_socket_table\n`);
      const layout = unixLayout(withSymbol);
      assert.ok(typeof layout !== "string", String(layout));
      if (kernel === "5.10") {
        assert.deepEqual(layout.table, { symbol: 0xffffffff82c00000n });
        // Without data symbols in kallsyms the old table cannot be found: a note, not a crash.
        assert.equal(
          unixLayout(profile(btf, TEXT)),
          "Kernel keeps Unix-domain sockets in unix_socket_table, which kallsyms does not list",
        );
      } else {
        assert.ok("netBuckets" in layout.table);
        assert.equal(typeof unixLayout(profile(btf, TEXT)), "object");
      }
      // The chain link is sk->__sk_common.skc_node, the name's bytes 108 of sockaddr_un.
      assert.equal(layout.link, 104);
      assert.equal(layout.sunPath.size, 108);
      // What fields mode captures: the link and the members read, sk_socket and addr followed.
      const plan = await unixCapturePlan(withSymbol);
      assert.deepEqual(
        plan.follows.map((f) => f.pointer).sort((a, b) => a - b),
        [layout.sk_socket.offset, layout.addr.offset].sort((a, b) => a - b),
      );
      assert.ok(plan.ranges.some((r) => r.offset <= layout.link && layout.link < r.offset + r.len));
    });
  }
});

Deno.test("unixPath() prints names as /proc/net/unix does: abstract ones with @, NULs as @", () => {
  const bytes = (text: string) => {
    const out = new Uint8Array(108);
    out.set(new TextEncoder().encode(text));
    return out;
  };
  // A filesystem name: len counts the family (2) and the terminating NUL.
  assert.equal(unixPath(bytes("/run/x.sock"), 2 + 11 + 1), "/run/x.sock");
  // An abstract name starts with NUL; its NULs print as @.
  assert.equal(unixPath(bytes("\0name\0x"), 2 + 7), "@name@x");
  // Unbound (autobind would give an abstract name): nothing.
  assert.equal(unixPath(bytes(""), 0), "");
  // A length past sun_path is cut at sun_path's size.
  assert.equal(unixPath(bytes("\0" + "a".repeat(107)), 4096), "@" + "a".repeat(107));
  assert.equal(UNIX_HASH_BUCKETS, 512);
});

async function procNetUnix(): Promise<string[]> {
  return parseProcNetUnix(await Deno.readTextFile("/proc/net/unix"));
}

Deno.test({
  name:
    "unix sockets in every fetch mode equal /proc/net/unix for every stable socket, ours exactly (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/view.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const client = await Deno.connect({ transport: "unix", path });
    const server = await listener.accept();
    try {
      await withGuest(async (guest) => {
        for (const mode of FETCH_MODES) {
          const before = await procNetUnix();
          const acquired = await guest.acquire(unixSocketView, mode);
          const after = new Set(await procNetUnix());
          const seen = new Set(acquired.items.map(unixSocketKey));
          for (const key of before.filter((k) => after.has(k))) {
            assert.ok(seen.has(key), `${mode}: ${key} is in /proc/net/unix, not in the view`);
          }
          const listed = new Set([...before, ...after]);
          for (const s of acquired.items.filter((s) => s.state === "LISTEN")) {
            assert.ok(
              listed.has(unixSocketKey(s)),
              `${mode}: ${unixSocketKey(s)} is not in /proc/net/unix`,
            );
          }
          // The listener, and the accepted end, which shares its address (as /proc shows it).
          const ours = acquired.items.filter((s) => s.path === path);
          assert.deepEqual(ours.map((s) => [s.type, s.state]).sort(), [
            ["stream", "CONNECTED"],
            ["stream", "LISTEN"],
          ]);
          // The accepted end and the client's unbound end name each other as peers.
          const accepted = ours.find((s) => s.state === "CONNECTED")!;
          const peer = acquired.items.find((s) => s.inode === accepted.peer_inode);
          assert.deepEqual(
            [peer?.state, peer?.path, peer?.peer_inode],
            ["CONNECTED", "", accepted.inode],
          );
          if (mode !== "page") assert.equal(acquired.cost.misses, 0, `${mode}: misses`);
        }
      });
      const run = await runCli(["ids", "sockets", "--unix", "--json"]);
      assert.equal(run.code, 0, run.stderr);
      const items = JSON.parse(run.stdout) as Record<string, unknown>[];
      const listenerItem = items.find((s) => s.path === path);
      assert.deepEqual(Object.keys(listenerItem ?? {}), [
        "proto",
        "type",
        "state",
        "path",
        "inode",
        "peer_inode",
      ]);
      assert.equal(listenerItem?.proto, "unix");
    } finally {
      client.close();
      server.close();
      listener.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
