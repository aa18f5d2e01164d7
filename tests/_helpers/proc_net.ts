/**
 * Reads /proc/net/{tcp,tcp6,udp,udp6} text into {@linkcode SocketInfo}s, the
 * ground truth the sockets view is held against (on this host and in the VM
 * bed's guests). Addresses are decoded from the kernel's hex (each 32-bit word
 * printed in host order, little-endian here).
 *
 * @module
 */
import type { UnixSocketInfo } from "../../ids/os/unix_sockets.ts";
import { formatIPv4, formatIPv6, type SocketInfo, tcpStateName } from "../../ids/os/sockets.ts";

/** The four /proc/net files the view covers, with what they list. */
export const PROC_NET_FILES = [
  { file: "tcp", proto: "tcp", family: "inet" },
  { file: "tcp6", proto: "tcp", family: "inet6" },
  { file: "udp", proto: "udp", family: "inet" },
  { file: "udp6", proto: "udp", family: "inet6" },
] as const;

function addressBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < hex.length; i += 8) {
    view.setUint32(i / 2, parseInt(hex.slice(i, i + 8), 16), true);
  }
  return bytes;
}

function address(hex: string, family: SocketInfo["family"]): string {
  return family === "inet" ? formatIPv4(addressBytes(hex)) : formatIPv6(addressBytes(hex));
}

/** Parses the lines of one /proc/net/{tcp,tcp6,udp,udp6} file (the header is skipped). */
export function parseProcNet(
  text: string,
  proto: SocketInfo["proto"],
  family: SocketInfo["family"],
): SocketInfo[] {
  const sockets: SocketInfo[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (!/^\d+:$/.test(f[0] ?? "")) continue; // the header
    const [local, localPort] = f[1]!.split(":");
    const [remote, remotePort] = f[2]!.split(":");
    sockets.push({
      proto,
      family,
      local_addr: address(local!, family),
      local_port: parseInt(localPort!, 16),
      remote_addr: address(remote!, family),
      remote_port: parseInt(remotePort!, 16),
      state: tcpStateName(parseInt(f[3]!, 16)),
      uid: Number(f[7]),
      inode: Number(f[9]),
    });
  }
  return sockets;
}

/** This machine's sockets from /proc/net (its network namespace's). */
export async function readProcNet(): Promise<SocketInfo[]> {
  const all: SocketInfo[] = [];
  for (const { file, proto, family } of PROC_NET_FILES) {
    all.push(...parseProcNet(await Deno.readTextFile(`/proc/net/${file}`), proto, family));
  }
  return all;
}

/** A socket as one comparable string. */
export function socketKey(s: SocketInfo): string {
  return JSON.stringify([
    s.proto,
    s.family,
    s.local_addr,
    s.local_port,
    s.remote_addr,
    s.remote_port,
    s.state,
    s.uid,
    s.inode,
  ]);
}

/** The keys of `ids sockets --json`'s objects, in order, as the issue and README document them. */
export const SOCKET_JSON_KEYS = [
  "proto",
  "family",
  "local_addr",
  "local_port",
  "remote_addr",
  "remote_port",
  "state",
  "uid",
  "inode",
];

/**
 * The sockets of /proc/net/unix's text as the Unix-domain socket view keys them
 * (`type state inode path`): `Flags` 00010000 is a listener, else `St` names
 * the socket state; lines that are not socket lines are skipped.
 */
export function parseProcNetUnix(text: string): string[] {
  const types: Record<string, string> = { "0001": "stream", "0002": "dgram", "0005": "seqpacket" };
  const states = ["FREE", "UNCONNECTED", "CONNECTING", "CONNECTED", "DISCONNECTING"];
  const keys: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^[0-9a-f]+: \S+ \S+ (\S+) (\S+) (\S+)\s+(\d+)(?: (.*))?$/.exec(line.trimEnd());
    if (m === null) continue;
    const [, flags, type, st, inode, path] = m;
    const state = (parseInt(flags!, 16) & 0x10000) !== 0 ? "LISTEN" : states[parseInt(st!, 16)];
    keys.push([types[type!] ?? `type ${parseInt(type!, 16)}`, state, inode, path ?? ""].join(" "));
  }
  return keys;
}

/** A Unix-domain socket of the view as one comparable string (see {@linkcode parseProcNetUnix}). */
export function unixSocketKey(s: UnixSocketInfo): string {
  return [s.type, s.state, s.inode, s.path].join(" ");
}
