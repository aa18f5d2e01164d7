// End to end (needs root: real eBPF): the IDS's socket list, read from the kernel's socket hash
// tables through a real agent in every fetch mode, against /proc/net/{tcp,tcp6,udp,udp6} read
// at the same time. The test opens its own TCP and UDP sockets, IPv4 and IPv6, listening and
// connected, so that there is something to see; those must be found with exact fields.
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { FETCH_MODES } from "../../ids/guest.ts";
import type { SocketInfo } from "../../ids/os/sockets.ts";
import { IS_ROOT, withGuest } from "../_helpers/agent.ts";
import { readProcNet, socketKey } from "../_helpers/proc_net.ts";

/**
 * A connected UDP socket, held by a perl process (Deno's node:dgram connects
 * in user space only, and the kernel's socket stays unconnected).
 */
async function connectedUdp(hostname: string, port: number) {
  const child = new Deno.Command("perl", {
    args: [
      "-MIO::Socket::IP",
      "-e",
      '$| = 1; my $s = IO::Socket::IP->new(Proto => "udp", LocalHost => $ARGV[0], ' +
      'PeerHost => $ARGV[0], PeerPort => $ARGV[1]) or die "$@"; print $s->sockport, "\\n"; <STDIN>;',
      hostname,
      String(port),
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const close = async () => {
    await child.stdin.close();
    await child.stdout.cancel();
    await child.status;
  };
  try {
    const reader = child.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("perl ended before it printed its UDP port");
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return { port: Number(text.trim()), close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The test's own sockets: TCP listeners and connections, UDP bound and connected; v4 and v6. */
async function openSockets() {
  const closers: (() => void | Promise<void>)[] = [];
  const ports: number[] = [];
  try {
    for (const hostname of ["127.0.0.1", "::1"]) {
      const listener = Deno.listen({ hostname, port: 0 });
      closers.push(() => listener.close());
      const client = await Deno.connect({ hostname, port: listener.addr.port });
      closers.push(() => client.close());
      const server = await listener.accept();
      closers.push(() => server.close());
      ports.push(listener.addr.port, (client.localAddr as Deno.NetAddr).port);

      const type = hostname === "::1" ? "udp6" : "udp4";
      const bound = dgram.createSocket(type);
      closers.push(() => new Promise<void>((done) => bound.close(() => done())));
      await new Promise<void>((done) => bound.bind(0, hostname, done));
      const connected = await connectedUdp(hostname, bound.address().port);
      closers.push(connected.close);
      ports.push(bound.address().port, connected.port);
    }
  } catch (error) {
    for (const close of closers.reverse()) await close();
    throw error;
  }
  return {
    ports: new Set(ports),
    close: async () => {
      for (const close of closers.reverse()) await close();
    },
  };
}

Deno.test({
  name: "sockets in every fetch mode equal /proc/net for every stable socket, ours exactly (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withGuest(async (guest) => {
      const own = await openSockets();
      try {
        const isOwn = (s: SocketInfo) =>
          own.ports.has(s.local_port) && s.local_addr.match(/^(127\.0\.0\.1|::1)$/);
        for (const mode of FETCH_MODES) {
          const before = await readProcNet();
          const acquired = await guest.sockets(mode);
          const after = await readProcNet();
          const afterKeys = new Set(after.map(socketKey));
          const stable = before.filter((s) => afterKeys.has(socketKey(s)));
          const seen = new Set(acquired.items.map(socketKey));
          const mine = stable.filter(isOwn);
          // Per address: a TCP listener, both ends of a connection, a bound and a connected UDP socket.
          assert.equal(
            mine.length,
            10,
            `${mode}: /proc/net shows ${mine.length} of our 10 sockets`,
          );
          const states = mine.map((s) => `${s.proto} ${s.state}`).sort();
          assert.deepEqual(states, [
            ...Array(4).fill("tcp ESTABLISHED"),
            ...Array(2).fill("tcp LISTEN"),
            ...Array(2).fill("udp CLOSE"),
            ...Array(2).fill("udp ESTABLISHED"),
          ]);
          for (const s of stable) {
            assert.ok(
              seen.has(socketKey(s)),
              `${mode}: ${socketKey(s)} is in /proc/net, not in the view`,
            );
          }
          const listed = new Set([...before, ...after].map(socketKey));
          for (const s of acquired.items.filter((s) => s.state === "LISTEN")) {
            assert.ok(
              listed.has(socketKey(s)),
              `${mode}: listener ${socketKey(s)} is not in /proc/net`,
            );
          }
          assert.equal(seen.size, acquired.items.length, `${mode}: a socket is listed twice`);
          for (const s of acquired.items.filter(isOwn)) {
            assert.ok(s.inode > 0, `${mode}: our socket ${socketKey(s)} has no inode`);
          }
        }
      } finally {
        await own.close();
      }
    }),
});

Deno.test({
  name:
    "sockets in bulk mode take one request once the tables are found, and no page misses (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withGuest(async (guest) => {
      const own = await openSockets();
      try {
        await guest.sockets("bulk"); // finds the tables
        const bulk = await guest.sockets("bulk");
        const page = await guest.sockets("page");
        assert.equal(bulk.cost.roundTrips, 1);
        assert.equal(bulk.cost.misses, 0);
        assert.ok(page.cost.roundTrips > 1);
        assert.ok(
          bulk.cost.bytes < page.cost.bytes,
          `bulk ${bulk.cost.bytes} bytes, page ${page.cost.bytes}`,
        );
      } finally {
        await own.close();
      }
    }),
});
