/**
 * The operator's policy: which process names, modules and listening ports a
 * guest may have, and which programs may turn a non-root parent into a root
 * child (set-user-ID programs such as sudo). Read from a JSON file:
 *
 * ```json
 * {
 *   "processes": ["sshd", "bash", "kworker/*"],
 *   "modules": ["virtio_net", "ext4"],
 *   "listening": ["tcp/22", "udp/53", "tcp/*"],
 *   "root_from_user": ["sudo", "su", "passwd"]
 * }
 * ```
 *
 * Every key is optional; a missing key allows everything of its kind. Names
 * may end in `*` (a prefix match), and `tcp/*` allows every TCP port.
 *
 * @module
 */
import { parseJson, readFileText } from "./_json_file.ts";

/** A parsed policy. */
export interface Policy {
  /** Allowed process names (`comm`); undefined: any. */
  processes?: string[];
  /** Allowed module names; undefined: any. */
  modules?: string[];
  /** Allowed listening sockets as `proto/port`; undefined: any. */
  listening?: string[];
  /** Programs (`comm`) that may run as root with a non-root parent. */
  root_from_user: string[];
}

/**
 * The set-user-ID root programs of a Debian system (what `find / -perm -4000 -user root` lists on
 * a desktop install): they run as root with a non-root parent by design. Names as `comm` holds
 * them, cut to 15 bytes (dbus-daemon-launch-helper, polkit-agent-helper-1).
 */
export const DEFAULT_ROOT_FROM_USER = [
  "sudo",
  "su",
  "passwd",
  "chsh",
  "chfn",
  "newgrp",
  "gpasswd",
  "pkexec",
  "mount",
  "umount",
  "fusermount",
  "fusermount3",
  "ssh-keysign",
  "dbus-daemon-lau",
  "polkit-agent-he",
  "chrome-sandbox",
  "ntfs-3g",
  "pppd",
  "Xorg",
];

/** A policy that allows everything but root from a non-root parent outside the usual programs. */
export const DEFAULT_POLICY: Policy = { root_from_user: DEFAULT_ROOT_FROM_USER };

const KEYS = ["processes", "modules", "listening", "root_from_user"] as const;

/** Parses a policy; throws an error naming the file and the bad key. */
export function parsePolicy(text: string, source = "policy"): Policy {
  const raw = parseJson(text, source);
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`Cannot parse ${source}: expected a JSON object`);
  }
  const object = raw as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new Error(`Cannot parse ${source}: unknown key "${key}" (known: ${KEYS.join(", ")})`);
    }
  }
  const list = (key: typeof KEYS[number]): string[] | undefined => {
    const value = object[key];
    if (value === undefined) return undefined;
    if (!Array.isArray(value) || value.some((v) => typeof v !== "string" || v === "")) {
      throw new Error(`Cannot parse ${source}: "${key}" must be an array of non-empty strings`);
    }
    return value as string[];
  };
  const listening = list("listening");
  for (const entry of listening ?? []) {
    if (!/^(tcp|udp)\/(\*|\d{1,5})$/.test(entry) || Number(entry.split("/")[1]) > 65535) {
      throw new Error(
        `Cannot parse ${source}: listening entry "${entry}" is not proto/port (tcp/22, udp/*)`,
      );
    }
  }
  const policy: Policy = { root_from_user: list("root_from_user") ?? DEFAULT_ROOT_FROM_USER };
  const processes = list("processes");
  const modules = list("modules");
  if (processes !== undefined) policy.processes = processes;
  if (modules !== undefined) policy.modules = modules;
  if (listening !== undefined) policy.listening = listening;
  return policy;
}

/** Reads and parses a policy file. */
export async function loadPolicy(path: string): Promise<Policy> {
  return parsePolicy(await readFileText(path, "policy"), `policy ${path}`);
}

/** Whether `name` matches one of `patterns` (exact, or a prefix before a trailing `*`). */
export function matches(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => p.endsWith("*") ? name.startsWith(p.slice(0, -1)) : name === p);
}
