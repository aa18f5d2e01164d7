/**
 * The rootkit fixtures (`tests/testdata/rootkits/`, kernel modules) built
 * against each guest kernel with Debian's headers of exactly that kernel:
 * `linux-headers-<release>` of the kernel package's version, plus the
 * `-common` and `linux-kbuild-*` packages it depends on, downloaded with
 * `apt-get download` like the kernel and unpacked under `.cache/vm/`, never
 * installed on the machine. A build is cached under `.cache/vm/fixtures/` by
 * the hash of its inputs (the sources, the header packages, the toolchain).
 *
 * Toolchains (decided from what the kernels were built with):
 * - 5.10 (Debian 11) was built with gcc-10, whose name its headers' Makefile
 *   carries (`CC = gcc-10`); Debian 12 has no gcc-10. Its flags are all known
 *   to gcc-12 and bullseye's kbuild tools run on Debian 12's glibc, so it is
 *   built on the host like 6.1, with `CC=gcc-12`; the modules load (the
 *   rootkit tests load every fixture on 5.10). Rejected: a bullseye chroot
 *   (~2 min and ~400 MB more in CI for the same result).
 * - 6.1 (Debian 12) was built with gcc-12, this machine's compiler: the
 *   headers are unpacked into a private tree (their Makefile includes the
 *   `-common` tree by absolute path, rewritten to the private one) and built
 *   on the host with `make`.
 * - 6.12 (Debian 13) was built with gcc-14. Debian 12's gcc-12 rejects its
 *   flags (`-fmin-function-alignment=16`), and trixie's kbuild host tools
 *   (modpost, objtool, resolve_btfids) need glibc 2.38 (Debian 12 has 2.36).
 *   So it is built in a trixie chroot made by debootstrap (minbase with gcc-14,
 *   make, libc6-dev, pahole and the kbuild tools' libraries; ~500 MB, ~2 min
 *   once, under `.cache/vm/chroot-trixie-<id>/`), with the headers unpacked into it
 *   at their own paths: Debian's own compiler and tools, no patched flags.
 *   Needs root (chroot) and debootstrap (scripts/setup.sh installs it).
 *   Rejected: rebuilding kbuild's host tools from source (the packages ship
 *   no sources), running the tools through trixie's ld.so (gcc-14 itself
 *   would still be missing), bookworm-backports (no 6.12.117+deb13 there).
 *
 * @module
 */
import { CACHE, type KernelName } from "./image.ts";
import { downloadDeb, exists, sh, sha256, text } from "./_sh.ts";

/** The rootkit fixtures, by module name. */
export const ROOTKITS = ["hide_module", "hook_syscall", "hide_task", "steal_cred"] as const;

/** One rootkit fixture's name (its module's name). */
export type RootkitName = typeof ROOTKITS[number];

/** Where the fixtures' sources are. */
export const ROOTKITS_SOURCE = new URL("../testdata/rootkits", import.meta.url).pathname;

/** Built fixtures for one kernel. */
export interface BuiltFixtures {
  /** The folder holding `<name>.ko` for every fixture. */
  dir: string;
  /** The hash of the build's inputs. */
  hash: string;
}

interface Chroot {
  /** The Debian suite the chroot runs. */
  suite: string;
  /** Packages debootstrap adds to minbase. */
  packages: string[];
}

/**
 * Where each kernel's fixtures are built: on the host (null) or in a chroot
 * of the suite the kernel comes from (see the module comment).
 */
const CHROOTS: Record<KernelName, Chroot | null> = {
  "5.10": null,
  "6.1": null,
  "6.12": {
    suite: "trixie",
    packages: ["gcc-14", "make", "libc6-dev", "libelf1t64", "libssl3t64", "zlib1g", "pahole"],
  },
};

const MIRROR = "http://deb.debian.org/debian";
const KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg";

/** Runs a build command; throws with its output (make writes errors to both streams). */
async function run(command: string, args: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command(command, { args, cwd, stdin: "null" }).output();
  if (out.success) return;
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  const output = `${decode(out.stdout)}\n${decode(out.stderr)}`.trim().split("\n").slice(-40);
  throw new Error(
    `${command} ${args.join(" ")} failed (exit ${out.code}):\n${output.join("\n")}`,
  );
}

/** The header packages of `release`: the headers and what they depend on of the same source. */
async function headerPackages(apt: string[], release: string): Promise<string[]> {
  const headers = `linux-headers-${release}`;
  const depends = await text("apt-cache", [...apt, "depends", headers]);
  const deps = [...depends.matchAll(/Depends: (linux-(?:headers-\S+-common|kbuild-\S+))/g)]
    .map((m) => m[1]!);
  if (!deps.some((d) => d.endsWith("-common")) || !deps.some((d) => d.startsWith("linux-kbuild"))) {
    throw new Error(
      `Cannot find the -common and linux-kbuild packages ${headers} depends on:\n${depends}`,
    );
  }
  return [headers, ...new Set(deps)];
}

/**
 * Makes (once) the chroot `chroot` describes; returns its root. Built in a
 * temporary folder and renamed into place, so an interrupted debootstrap
 * leaves nothing that looks finished.
 */
async function chrootRoot(chroot: Chroot, log: (line: string) => void): Promise<string> {
  const id = (await sha256(`${chroot.suite} ${chroot.packages.join(",")}`)).slice(0, 8);
  const root = `${CACHE}/chroot-${chroot.suite}-${id}`;
  if (await exists(`${root}/.done`)) return root;
  if (Deno.uid() !== 0) {
    throw new Error(
      `Cannot build the rootkit fixtures in a ${chroot.suite} chroot: debootstrap and chroot need root`,
    );
  }
  if (!await exists("/usr/sbin/debootstrap")) {
    throw new Error(
      `Cannot build the rootkit fixtures in a ${chroot.suite} chroot: debootstrap is missing (scripts/setup.sh installs it)`,
    );
  }
  log(`debootstrap ${chroot.suite} (minbase + ${chroot.packages.join(" ")}): once, ~2 min`);
  const t0 = performance.now();
  const staging = `${root}.tmp-${Deno.pid}`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    await run("debootstrap", [
      "--variant=minbase",
      `--include=${chroot.packages.join(",")}`,
      `--keyring=${KEYRING}`,
      chroot.suite,
      staging,
      MIRROR,
    ]);
    // Downloaded packages are not needed again.
    await run("chroot", [staging, "apt-get", "clean"]);
    await publish(staging, root);
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  log(`chroot ${chroot.suite} made in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return root;
}

/** The compiler make is told to use on the host, where it is not the headers' own. */
const HOST_CC: Partial<Record<KernelName, string>> = { "5.10": "gcc-12" };

/** A place to run kbuild: on the host or in a chroot, with the headers' kbuild dir. */
interface Toolchain {
  /** The chroot's root, or null for the host. */
  root: string | null;
  /** The `linux-headers-<release>` folder, as seen by make (inside the chroot if any). */
  kdir: string;
  /** Extra make arguments (the compiler, on the host). */
  makeArgs: string[];
  /** Identifies the toolchain and headers for the cache key. */
  id: string;
}

/** Unpacks the header packages for `release`, on the host or into the chroot. */
async function toolchain(
  kernel: KernelName,
  apt: string[],
  release: string,
  version: string,
  log: (line: string) => void,
): Promise<Toolchain> {
  const debs = [];
  for (const name of await headerPackages(apt, release)) {
    debs.push(await downloadDeb(apt, `${CACHE}/debs`, name, version, log));
  }
  const chroot = CHROOTS[kernel];
  const headers = `linux-headers-${release}`;
  if (chroot === null) {
    // A private tree; the headers' Makefile names the -common tree by absolute path.
    const tree = `${CACHE}/headers/${release}_${version}`;
    const kdir = `${tree}/usr/src/${headers}`;
    if (!await exists(`${tree}/.done`)) {
      log(`unpacking the headers of ${release}`);
      const staging = `${tree}.tmp-${Deno.pid}`;
      try {
        await Deno.mkdir(staging, { recursive: true });
        for (const deb of debs) await sh("dpkg-deb", ["-x", deb, staging]);
        const makefile = `${staging}/usr/src/${headers}/Makefile`;
        await Deno.writeTextFile(
          makefile,
          (await Deno.readTextFile(makefile)).replaceAll(
            "include /usr/src/",
            `include ${tree}/usr/src/`,
          ),
        );
        await publish(staging, tree);
      } finally {
        await Deno.remove(staging, { recursive: true }).catch(() => {});
      }
    }
    const cc = HOST_CC[kernel];
    const gcc = (await text(cc ?? "gcc", ["--version"])).split("\n")[0];
    return {
      root: null,
      kdir,
      makeArgs: cc ? [`CC=${cc}`] : [],
      id: `host ${gcc} ${debs.join(" ")}`,
    };
  }
  const root = await chrootRoot(chroot, log);
  const marker = `${root}/.headers-${release}_${version}`;
  if (!await exists(marker)) {
    log(`unpacking the headers of ${release} into the ${chroot.suite} chroot`);
    for (const deb of debs) await sh("dpkg-deb", ["-x", deb, root]);
    await Deno.writeTextFile(marker, "");
  }
  return {
    root,
    kdir: `/usr/src/${headers}`,
    makeArgs: [],
    id: `chroot ${root} ${debs.join(" ")}`,
  };
}

/** The files of the fixtures' build (C sources, headers, Kbuild, Makefile), sorted. */
async function sourceFiles(): Promise<string[]> {
  const names = [];
  for await (const entry of Deno.readDir(ROOTKITS_SOURCE)) {
    if (entry.isFile && /\.[ch]$|^Kbuild$|^Makefile$/.test(entry.name)) names.push(entry.name);
  }
  return names.sort();
}

/** The fixtures' source files (name and bytes' hash). */
async function sourceIdentity(): Promise<string[]> {
  const lines = [];
  for (const name of await sourceFiles()) {
    const bytes = await Deno.readFile(`${ROOTKITS_SOURCE}/${name}`);
    lines.push(`${name} ${await sha256(bytes)}`);
  }
  return lines;
}

/** The `vermagic=` of a module's .modinfo. */
function vermagic(bytes: Uint8Array): string | undefined {
  const found = /\0vermagic=([^\0]*)\0/.exec(new TextDecoder("latin1").decode(bytes));
  return found?.[1];
}

/**
 * Builds (or finds in the cache) the rootkit fixtures for a guest kernel:
 * `release` is its `uname -r`, `version` the Debian version of its package,
 * `apt` the apt options of its suite.
 */
export async function buildFixtures(
  kernel: KernelName,
  release: string,
  version: string,
  apt: string[],
  log: (line: string) => void,
): Promise<BuiltFixtures> {
  const tools = await toolchain(kernel, apt, release, version, log);
  const self = await sha256(await Deno.readFile(new URL(import.meta.url)));
  const inputs = [tools.id, `fixtures.ts ${self}`, ...await sourceIdentity()];
  const hash = (await sha256(inputs.join("\n"))).slice(0, 16);
  const dir = `${CACHE}/fixtures/${kernel}-${hash}`;
  if (await exists(`${dir}/.done`)) return { dir, hash };

  log(`building the rootkit fixtures for ${release}`);
  const t0 = performance.now();
  // The sources are copied where make runs: kbuild writes its objects next to them.
  const base = tools.root === null ? CACHE : `${tools.root}/tmp`;
  await Deno.mkdir(base, { recursive: true });
  const work = await Deno.makeTempDir({ dir: base, prefix: "rootkits-" });
  const staging = `${dir}.tmp-${Deno.pid}`;
  try {
    for (const name of await sourceFiles()) {
      await Deno.copyFile(`${ROOTKITS_SOURCE}/${name}`, `${work}/${name}`);
    }
    const m = tools.root === null ? work : work.slice(tools.root.length);
    const make = ["make", "-C", tools.kdir, `M=${m}`, ...tools.makeArgs, "modules"];
    if (tools.root === null) await run(make[0]!, make.slice(1));
    else await run("chroot", [tools.root, ...make]);

    await Deno.mkdir(staging, { recursive: true });
    for (const name of ROOTKITS) {
      const bytes = await Deno.readFile(`${work}/${name}.ko`);
      const magic = vermagic(bytes);
      if (!magic?.startsWith(`${release} `)) {
        throw new Error(
          `The fixture ${name}.ko was built for ${magic ?? "no kernel"}, not for ${release}`,
        );
      }
      await Deno.writeFile(`${staging}/${name}.ko`, bytes);
    }
    await publish(staging, dir);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
  log(`rootkit fixtures for ${release} built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  await prune(`${CACHE}/fixtures`, `${kernel}-`, dir);
  return { dir, hash };
}

/**
 * Marks `staging` finished and moves it to `final`, unless another process
 * finished `final` first (then `staging` is left for the caller to remove).
 */
async function publish(staging: string, final: string): Promise<void> {
  await Deno.writeTextFile(`${staging}/.done`, "");
  if (await exists(`${final}/.done`)) return;
  await Deno.remove(final, { recursive: true }).catch(() => {});
  await Deno.rename(staging, final);
}

/** Removes the older builds of one kernel's fixtures. */
async function prune(parent: string, prefix: string, keep: string): Promise<void> {
  for await (const entry of Deno.readDir(parent)) {
    const path = `${parent}/${entry.name}`;
    if (entry.name.startsWith(prefix) && path !== keep && !entry.name.includes(".tmp-")) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}
