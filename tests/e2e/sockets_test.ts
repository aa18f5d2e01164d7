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
import { namespacedSocketView, socketView } from "../../ids/os/socket_view.ts";

/**
 * A socket held by a perl process that prints its port and holds it until its
 * stdin closes; `prefix` runs perl (e.g. under `unshare -n`).
 */
async function perlSocket(prefix: string[], socket: string, args: string[]) {
  const script = `$| = 1; my $s = IO::Socket::IP->new(${socket}) or die "$@"; ` +
    'print $s->sockport, "\\n"; <STDIN>;';
  const [command, ...rest] = [...prefix, "perl", "-MIO::Socket::IP", "-e", script, ...args];
  const child = new Deno.Command(command!, { args: rest, stdin: "piped", stdout: "piped" })
    .spawn();
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
      if (done) throw new Error("perl ended before it printed its port");
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return { port: Number(text.trim()), pid: child.pid, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * A connected UDP socket (Deno's node:dgram connects in user space only, and
 * the kernel's socket stays unconnected).
 */
function connectedUdp(hostname: string, port: number) {
  return perlSocket(
    [],
    'Proto => "udp", LocalHost => $ARGV[0], PeerHost => $ARGV[0], PeerPort => $ARGV[1]',
    [hostname, String(port)],
  );
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
          const acquired = await guest.acquire(socketView, mode);
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
    "sockets in bulk and fields mode take one request, no page misses; fields fewest bytes (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withGuest(async (guest) => {
      const own = await openSockets();
      try {
        await guest.acquire(socketView, "bulk"); // finds the tables
        const bulk = await guest.acquire(socketView, "bulk");
        const fields = await guest.acquire(socketView, "fields");
        const page = await guest.acquire(socketView, "page");
        for (const [mode, cost] of [["bulk", bulk.cost], ["fields", fields.cost]] as const) {
          assert.equal(cost.roundTrips, 1, `${mode}: round trips`);
          assert.equal(cost.misses, 0, `${mode}: misses`);
        }
        assert.ok(page.cost.roundTrips > 1);
        assert.ok(
          fields.cost.bytes < bulk.cost.bytes && bulk.cost.bytes < page.cost.bytes,
          `bytes: fields ${fields.cost.bytes}, bulk ${bulk.cost.bytes}, page ${page.cost.bytes}`,
        );
      } finally {
        await own.close();
      }
    }),
});

Deno.test({
  name: "sockets of every namespace show another namespace's listener with its netns (root)",
  ignore: !IS_ROOT,
  fn: () =>
    withGuest(async (guest) => {
      const other = await perlSocket(
        ["unshare", "-n"],
        'Listen => 1, LocalHost => "0.0.0.0", LocalPort => 0',
        [],
      );
      try {
        const netns = (pid: number | string) =>
          Number(/net:\[(\d+)\]/.exec(Deno.readLinkSync(`/proc/${pid}/ns/net`))?.[1]);
        const theirs = netns(other.pid);
        const ours = netns("self");
        assert.notEqual(theirs, ours);
        const isTheirs = (s: SocketInfo) => s.local_port === other.port && s.state === "LISTEN";
        for (const mode of FETCH_MODES) {
          const init = await guest.acquire(socketView, mode);
          assert.ok(
            !init.items.some(isTheirs),
            `${mode}: the other namespace's listener is listed`,
          );
          const all = await guest.acquire(namespacedSocketView, mode);
          const found = all.items.filter(isTheirs);
          assert.equal(found.length, 1, `${mode}: the other namespace's listener`);
          assert.equal(found[0]!.netns, theirs, `${mode}: its netns`);
          assert.equal(found[0]!.local_addr, "0.0.0.0");
          // Sockets come and go between the walks (on a shared machine, other programs' listeners
          // too): a listener the walk of all namespaces saw in ours was there before it or after.
          const after = await guest.acquire(socketView, mode);
          const initKeys = new Set([...init.items, ...after.items].map(socketKey));
          for (const s of all.items.filter((s) => s.netns === ours)) {
            if (s.state === "LISTEN") {
              assert.ok(initKeys.has(socketKey(s)), `${mode}: ${socketKey(s)}`);
            }
          }
        }
      } finally {
        await other.close();
      }
    }),
});
