/**
 * Guest images for the VM test bed, built from Debian's packages: a Debian
 * kernel (vmlinuz) and a busybox initramfs holding Deno, the bundled
 * ebpfmonitor, libbpf and its libraries, the modules for a virtio network card
 * plus a few ordinary ones, and `init.sh`. Everything lives under
 * `.cache/vm/` (git-ignored); an image is rebuilt when one of its inputs
 * changes (the kernel package version, the bundle's bytes, the init script,
 * these scripts, the host's deno, libbpf and busybox files).
 *
 * Kernels: Debian 12's comes through the machine's own apt configuration;
 * Debian 11's (bullseye, bullseye-updates and bullseye-security) and Debian
 * 13's through private ones (their own sources list, lists and caches under
 * `.cache/vm/apt-<codename>/`), verified with the machine's
 * debian-archive-keyring, which holds both suites' keys. The version is looked
 * up from the `linux-image-amd64` metapackage's Depends, never hard-coded.
 *
 * Rootkit fixtures (tests/testdata/rootkits/, see tests/vm/fixtures.ts) are
 * built against Debian's headers of exactly the guest kernel and put in the
 * image under /fixtures (not loaded at boot; tests/vm/rootkits.ts loads them).
 * Toolchain decision: 5.10 builds on the host with CC=gcc-12 (its headers name
 * gcc-10, which Debian 12 lacks); 6.1 builds on the host (Debian 12's gcc-12 is the
 * compiler the kernel was built with); 6.12 was built with gcc-14, whose
 * flags gcc-12 rejects, and trixie's kbuild tools need glibc 2.38, so it
 * builds in a debootstrapped trixie chroot (gcc-14, made once, cached under
 * .cache/vm/; needs root and debootstrap, which scripts/setup.sh installs).
 *
 * @module
 */
import { downloadDeb, exists, sh, sha256, text } from "./_sh.ts";
import { buildFixtures, type RootkitName, ROOTKITS } from "./fixtures.ts";
import { bedKeys } from "./keys.ts";

/** The guest kernels the bed knows. */
export type KernelName = "5.10" | "6.1" | "6.12";

/** Every guest kernel, oldest first. */
export const KERNELS: readonly KernelName[] = ["5.10", "6.1", "6.12"];

/** Parses a kernel name. */
export function parseKernel(text: string): KernelName {
  if ((KERNELS as readonly string[]).includes(text)) return text as KernelName;
  throw new Error(`Unknown guest kernel ${text}: use ${KERNELS.join(" or ")}`);
}

/** A built guest image. */
export interface GuestImage {
  /** Which kernel. */
  kernel: KernelName;
  /** The kernel's release (`uname -r`). */
  release: string;
  /** The Debian package the kernel came from, `name=version`. */
  package: string;
  /** The kernel image (bzImage). */
  vmlinuz: string;
  /** The initramfs (newc cpio, uncompressed). */
  initrd: string;
  /** The hash of the inputs (names the image's folder). */
  hash: string;
  /** Modules /init loads, in load order. */
  modules: string[];
  /** The rootkit fixtures' module files in the guest, by name (tests/vm/rootkits.ts loads them). */
  fixtures: Record<RootkitName, string>;
}

/** The repository root. */
export const REPO = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
/** Where the bed keeps its artifacts. */
export const CACHE = `${REPO}/.cache/vm`;

const HERE = new URL(".", import.meta.url).pathname;
const MODULES_FOR_NETWORK = ["virtio_pci", "virtio_net"];
/** Ordinary modules the guest loads so that its module list is not trivial. */
const MODULES_ORDINARY = ["dummy", "tun", "veth", "bridge", "vxlan", "macvlan", "ipip", "nlmon"];
/** Where the image holds the rootkit fixtures (tests/vm/fixtures.ts), not loaded at boot. */
const GUEST_FIXTURES = "/fixtures";
const LISTS_MAX_AGE_MS = 24 * 3600 * 1000;

interface Suite {
  debian: string;
  /** Extra apt-get/apt-cache options; empty for the machine's own configuration. */
  aptOptions(): Promise<string[]>;
}

/** Debian 12 (bookworm): the machine's own apt configuration (this machine runs Debian 12). */
const BOOKWORM: Suite = { debian: "12", aptOptions: () => Promise.resolve([]) };

/**
 * A Debian suite through a private apt configuration (its own sources list,
 * lists and caches under `.cache/vm/apt-<codename>/`); `apt-get update` runs
 * when its lists are missing or older than a day. The machine's sources are
 * never touched. Signatures are checked against the machine's
 * debian-archive-keyring (Debian 12's holds the keys of Debian 11 and 13; apt
 * fails on a bad or unknown signature).
 */
function privateSuite(debian: string, codename: string, sources: string[]): Suite {
  return {
    debian,
    async aptOptions() {
      const dir = `${CACHE}/apt-${codename}`;
      for (const sub of ["lists/partial", "cache/archives/partial", "preferences.d"]) {
        await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
      }
      const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
      if (!await exists(keyring)) {
        throw new Error(
          `Cannot verify Debian ${debian}'s archive: ${keyring} is missing (apt-get install debian-archive-keyring)`,
        );
      }
      await Deno.writeTextFile(
        `${dir}/sources.list`,
        sources.map((line) => `deb [signed-by=${keyring}] ${line}\n`).join(""),
      );
      const options = [
        `-o`,
        `Dir::Etc::sourcelist=${dir}/sources.list`,
        `-o`,
        `Dir::Etc::sourceparts=-`,
        `-o`,
        `Dir::Etc::preferences=/dev/null`,
        `-o`,
        `Dir::Etc::preferencesparts=${dir}/preferences.d`,
        `-o`,
        `Dir::State::lists=${dir}/lists`,
        `-o`,
        `Dir::Cache=${dir}/cache`,
        `-o`,
        `Acquire::Languages=none`,
      ];
      // Fresh when every source's InRelease is younger than a day.
      const listed = new Map<string, number>();
      for await (const entry of Deno.readDir(`${dir}/lists`)) {
        if (!entry.name.endsWith("_InRelease")) continue;
        const info = await Deno.stat(`${dir}/lists/${entry.name}`);
        listed.set(entry.name, info.mtime?.getTime() ?? 0);
      }
      const fresh = listed.size >= sources.length &&
        [...listed.values()].every((mtime) => Date.now() - mtime < LISTS_MAX_AGE_MS);
      if (!fresh) {
        try {
          await sh("apt-get", [...options, "-q", "update"]);
        } catch (error) {
          // Lists a day old still name a downloadable kernel; none at all is fatal.
          if (listed.size < sources.length) throw error;
          console.error(`vm: apt-get update for ${codename} failed, using the old lists: ${error}`);
        }
      }
      return options;
    },
  };
}

/** Debian 13 (trixie). */
const TRIXIE = privateSuite("13", "trixie", ["http://deb.debian.org/debian trixie main"]);

/**
 * Debian 11 (bullseye): its kernel (5.10) gets its updates from
 * bullseye-security (the point releases' kernel is older), so all three.
 */
const BULLSEYE = privateSuite("11", "bullseye", [
  "http://deb.debian.org/debian bullseye main",
  "http://deb.debian.org/debian bullseye-updates main",
  "http://deb.debian.org/debian-security bullseye-security main",
]);

const SUITES: Record<KernelName, Suite> = { "5.10": BULLSEYE, "6.1": BOOKWORM, "6.12": TRIXIE };

/** The kernel package `linux-image-amd64` depends on, and its candidate version. */
async function kernelPackage(apt: string[]): Promise<{ name: string; version: string }> {
  const depends = await text("apt-cache", [...apt, "depends", "linux-image-amd64"]);
  const name = /Depends: (linux-image-\S+)/.exec(depends)?.[1];
  if (!name) throw new Error(`Cannot find the kernel linux-image-amd64 depends on:\n${depends}`);
  const policy = await text("apt-cache", [...apt, "policy", name]);
  const version = /Candidate: (\S+)/.exec(policy)?.[1];
  if (!version || version === "(none)") throw new Error(`No candidate version of ${name}`);
  return { name, version };
}

/** Downloads (once) and extracts (once) a kernel package; returns the extracted tree. */
async function extractedKernel(
  apt: string[],
  pkg: { name: string; version: string },
  log: (line: string) => void,
): Promise<string> {
  const tree = `${CACHE}/kernels/${pkg.name}_${pkg.version}`;
  if (await exists(`${tree}/.done`)) return tree;
  const deb = await downloadDeb(apt, `${CACHE}/debs`, pkg.name, pkg.version, log);
  log(`extracting ${deb.slice(deb.lastIndexOf("/") + 1)}`);
  await Deno.remove(tree, { recursive: true }).catch(() => {});
  await Deno.mkdir(tree, { recursive: true });
  await sh("dpkg-deb", ["-x", deb, tree]);
  await Deno.writeTextFile(`${tree}/.done`, "");
  return tree;
}

/** The module folder of an extracted kernel (Debian 13 moved it under /usr). */
async function moduleDir(tree: string): Promise<{ dir: string; release: string }> {
  for (const base of [`${tree}/usr/lib/modules`, `${tree}/lib/modules`]) {
    if (!await exists(base)) continue;
    for await (const entry of Deno.readDir(base)) {
      if (entry.isDirectory) return { dir: `${base}/${entry.name}`, release: entry.name };
    }
  }
  throw new Error(`No lib/modules in ${tree}`);
}

const moduleName = (file: string) =>
  file.replace(/^.*\//, "").replace(/\.ko(\.xz|\.zst|\.gz)?$/, "").replaceAll("-", "_");

/** Every module file of the kernel by module name. */
async function moduleIndex(dir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const walk = async (path: string) => {
    for await (const entry of Deno.readDir(path)) {
      const full = `${path}/${entry.name}`;
      if (entry.isDirectory) await walk(full);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(entry.name)) index.set(moduleName(entry.name), full);
    }
  };
  await walk(`${dir}/kernel`);
  return index;
}

/** A module's bytes, decompressed (busybox insmod takes plain ELF). */
async function moduleBytes(file: string): Promise<Uint8Array> {
  if (file.endsWith(".xz")) return await sh("xz", ["-dc", file]);
  if (file.endsWith(".zst")) return await sh("zstd", ["-dcq", file]);
  if (file.endsWith(".gz")) return await sh("gzip", ["-dc", file]);
  return await Deno.readFile(file);
}

/** The `depends=` entry of a module's .modinfo section. */
function moduleDepends(bytes: Uint8Array): string[] {
  const needle = new TextEncoder().encode("\0depends=");
  outer: for (let i = 0; i + needle.length < bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    let end = i + needle.length;
    while (end < bytes.length && bytes[end] !== 0) end++;
    const list = new TextDecoder().decode(bytes.subarray(i + needle.length, end));
    return list.split(",").filter((s) => s !== "").map((s) => s.replaceAll("-", "_"));
  }
  return [];
}

/**
 * The modules to load (dependencies first) and their bytes: `wanted` and
 * what they depend on, skipping those built into the kernel or absent.
 */
async function resolveModules(
  dir: string,
  wanted: string[],
): Promise<{ order: string[]; bytes: Map<string, Uint8Array>; missing: string[] }> {
  const index = await moduleIndex(dir);
  const builtin = new Set(
    (await Deno.readTextFile(`${dir}/modules.builtin`)).split("\n").map(moduleName),
  );
  const order: string[] = [];
  const bytes = new Map<string, Uint8Array>();
  const missing: string[] = [];
  const visit = async (name: string, chain: string[]) => {
    if (bytes.has(name) || builtin.has(name)) return;
    if (chain.includes(name)) throw new Error(`Module dependency cycle: ${[...chain, name]}`);
    const file = index.get(name);
    if (file === undefined) {
      missing.push(name);
      return;
    }
    const data = await moduleBytes(file);
    for (const dep of moduleDepends(data)) await visit(dep, [...chain, name]);
    if (!bytes.has(name)) {
      bytes.set(name, data);
      order.push(name);
    }
  };
  for (const name of wanted) await visit(name, []);
  return { order, bytes, missing };
}

/** The shared libraries `binary` needs (ldd), with the dynamic loader. */
async function neededLibraries(binary: string): Promise<string[]> {
  const out = await text("ldd", [binary]);
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (match?.[1]) libs.push(match[1]);
  }
  return libs;
}

/** The host's libbpf.so.1 (the guest loads the same one). */
async function hostLibbpf(): Promise<string> {
  for (const path of ["/usr/lib/x86_64-linux-gnu/libbpf.so.1", "/lib64/libbpf.so.1"]) {
    if (await exists(path)) return path;
  }
  throw new Error("Cannot find libbpf.so.1 on this machine: apt-get install libbpf1");
}

/** The host's deno binary (the guest runs the same one). */
function hostDeno(): string {
  const exec = Deno.execPath();
  if (!/(^|\/)deno$/.test(exec)) throw new Error(`The bed needs to run under deno, not ${exec}`);
  return Deno.realPathSync(exec);
}

let bundled: Promise<string> | undefined;

/**
 * Bundles main.ts into one self-contained file (the guest has no network),
 * once per process. It is the same command as `deno task bundle`, written to
 * the bed's cache rather than dist/.
 */
function bundle(log: (line: string) => void): Promise<string> {
  bundled ??= bundleNow(log);
  bundled.catch(() => bundled = undefined);
  return bundled;
}

async function bundleNow(log: (line: string) => void): Promise<string> {
  // One file per checkout: two checkouts sharing a cache (git worktrees) must not bundle into
  // each other's file while the other builds its image from it.
  const out = `${CACHE}/bundle/ebpfmonitor-${(await sha256(REPO)).slice(0, 12)}.js`;
  await Deno.mkdir(`${CACHE}/bundle`, { recursive: true });
  log("bundling main.ts");
  await sh(hostDeno(), ["bundle", "--quiet", "--platform", "deno", "-o", out, "main.ts"], {
    cwd: REPO,
  });
  return out;
}

/** The agent's flags beyond --listen: its key and the IDS key it trusts, as laid out in the image. */
const AGENT_FLAGS = "--key /etc/vm/agent/id --trust /etc/vm/ids.pub";

/** A file's identity for the input hash: content hash for small files, else size and mtime. */
async function fileIdentity(path: string): Promise<string> {
  const info = await Deno.stat(path);
  if (info.size < 8 << 20) return `${path} ${await sha256(await Deno.readFile(path))}`;
  return `${path} ${info.size} ${info.mtime?.getTime()}`;
}

/** A guest kernel's image as Debian ships it, and where it came from. */
export interface KernelImage {
  /** The kernel's release (`uname -r`). */
  release: string;
  /** The Debian package, `name=version`. */
  package: string;
  /** The kernel image (bzImage) in the extracted package. */
  vmlinuz: string;
}

/** Finds (downloading and extracting once) the kernel package of `kernel`. */
export async function kernelImage(
  kernel: KernelName,
  log: (line: string) => void = (line) => console.error(`vm: ${line}`),
): Promise<KernelImage & { tree: string; dir: string; version: string; apt: string[] }> {
  const apt = await SUITES[kernel].aptOptions();
  const pkg = await kernelPackage(apt);
  const tree = await extractedKernel(apt, pkg, log);
  const { dir, release } = await moduleDir(tree);
  return {
    release,
    package: `${pkg.name}=${pkg.version}`,
    vmlinuz: `${tree}/boot/vmlinuz-${release}`,
    tree,
    dir,
    version: pkg.version,
    apt,
  };
}

/** Options of {@linkcode buildImage}. */
export interface BuildOptions {
  /** Progress lines (default: stderr). */
  log?: (line: string) => void;
}

/**
 * Builds (or finds in the cache) the image for `kernel`: resolves the kernel
 * package from Debian's archive, bundles ebpfmonitor, and assembles the
 * initramfs when any input changed.
 */
export async function buildImage(
  kernel: KernelName,
  options: BuildOptions = {},
): Promise<GuestImage> {
  const log = options.log ?? ((line: string) => console.error(`vm: ${line}`));
  const kernelFiles = await kernelImage(kernel, log);
  const { dir, release, apt, version } = kernelFiles;
  const vmlinuzSource = kernelFiles.vmlinuz;
  const fixtures = await buildFixtures(kernel, release, version, apt, log);

  const bundlePath = await bundle(log);
  const keys = await bedKeys();
  const deno = hostDeno();
  const libbpf = await hostLibbpf();
  const busybox = "/bin/busybox";
  if (!await exists(busybox)) {
    throw new Error("Cannot find /bin/busybox: apt-get install busybox-static");
  }
  const libraries = [
    ...new Set([...await neededLibraries(deno), libbpf, ...await neededLibraries(libbpf)]),
  ]
    .sort();

  const inputs = [
    `kernel ${kernelFiles.package}`,
    `modules ${[...MODULES_FOR_NETWORK, ...MODULES_ORDINARY].join(",")}`,
    `fixtures ${fixtures.hash}`,
    await fileIdentity(bundlePath),
    await fileIdentity(`${HERE}init.sh`),
    await fileIdentity(`${HERE}image.ts`),
    await fileIdentity(keys.agentPublic),
    await fileIdentity(keys.idsPublic),
    await fileIdentity(deno),
    await fileIdentity(busybox),
    ...await Promise.all(libraries.map(async (lib) => fileIdentity(await Deno.realPath(lib)))),
  ];
  const hash = (await sha256(inputs.join("\n"))).slice(0, 16);
  const folder = `${CACHE}/images/${kernel}-${hash}`;
  const image = (modules: string[]): GuestImage => ({
    kernel,
    release,
    package: kernelFiles.package,
    vmlinuz: `${folder}/vmlinuz`,
    initrd: `${folder}/initrd.cpio`,
    hash,
    modules,
    fixtures: Object.fromEntries(
      ROOTKITS.map((name) => [name, `${GUEST_FIXTURES}/${name}.ko`]),
    ) as Record<RootkitName, string>,
  });
  if (await exists(`${folder}/image.json`)) {
    return JSON.parse(await Deno.readTextFile(`${folder}/image.json`)) as GuestImage;
  }

  log(`assembling the initramfs for ${release} (${hash})`);
  const t0 = performance.now();
  const staging = await Deno.makeTempDir({ dir: CACHE, prefix: "staging-" });
  try {
    const root = `${staging}/root`;
    for (const d of ["bin", "dev", "proc", "sys", "tmp", "etc/vm", "opt", "modules", "usr/lib"]) {
      await Deno.mkdir(`${root}/${d}`, { recursive: true });
    }
    await Deno.symlink("usr/lib", `${root}/lib`);
    await Deno.mkdir(`${root}/lib64`);

    await Deno.copyFile(busybox, `${root}/bin/busybox`);
    for (const applet of (await text(busybox, ["--list"])).split("\n")) {
      if (applet && applet !== "busybox") await Deno.symlink("busybox", `${root}/bin/${applet}`);
    }
    await Deno.copyFile(deno, `${root}/bin/deno`);
    for (const lib of libraries) {
      // Keep each library at the path ldd names (under /lib, a link to /usr/lib, as on Debian).
      const dest = `${root}${
        lib.replace(/^\/lib\//, "/usr/lib/").replace(/^\/lib64\//, "/lib64/")
      }`;
      await Deno.mkdir(dest.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.copyFile(await Deno.realPath(lib), dest);
    }
    await Deno.copyFile(bundlePath, `${root}/opt/ebpfmonitor.js`);
    await Deno.writeTextFile(`${root}/etc/vm/agent-flags`, AGENT_FLAGS);
    await Deno.mkdir(`${root}/etc/vm/agent`, { mode: 0o700 });
    await Deno.copyFile(keys.agentKey, `${root}/etc/vm/agent/id`);
    await Deno.chmod(`${root}/etc/vm/agent/id`, 0o600);
    await Deno.copyFile(keys.idsPublic, `${root}/etc/vm/ids.pub`);

    const { order, bytes, missing } = await resolveModules(dir, [
      ...MODULES_FOR_NETWORK,
      ...MODULES_ORDINARY,
    ]);
    if (missing.some((name) => MODULES_FOR_NETWORK.includes(name))) {
      throw new Error(`Kernel ${release} lacks a network module: ${missing.join(", ")}`);
    }
    if (missing.length > 0) log(`${release}: no module ${missing.join(", ")}; skipped`);
    for (const name of order) await Deno.writeFile(`${root}/modules/${name}.ko`, bytes.get(name)!);
    await Deno.writeTextFile(`${root}/etc/vm/modules`, order.map((m) => `${m}\n`).join(""));
    await Deno.mkdir(`${root}${GUEST_FIXTURES}`);
    for (const name of ROOTKITS) {
      await Deno.copyFile(`${fixtures.dir}/${name}.ko`, `${root}${GUEST_FIXTURES}/${name}.ko`);
    }
    await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0:root:/tmp:/bin/sh\n");
    await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\n");
    await Deno.copyFile(`${HERE}init.sh`, `${root}/init`);
    await Deno.chmod(`${root}/init`, 0o755);

    await sh("bash", [
      "-c",
      "set -o pipefail; cd root && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > ../initrd.cpio",
    ], { cwd: staging });
    await Deno.copyFile(vmlinuzSource, `${staging}/vmlinuz`);
    const built = image(order);
    await Deno.writeTextFile(`${staging}/image.json`, JSON.stringify(built, null, 2) + "\n");
    await Deno.writeTextFile(`${staging}/inputs.txt`, inputs.join("\n") + "\n");
    await Deno.remove(root, { recursive: true });
    await Deno.mkdir(`${CACHE}/images`, { recursive: true });
    await Deno.remove(folder, { recursive: true }).catch(() => {});
    await Deno.rename(staging, folder);
    log(
      `image ${kernel}-${hash} built in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    await pruneImages(kernel, folder);
    return JSON.parse(await Deno.readTextFile(`${folder}/image.json`)) as GuestImage;
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
}

/** Removes this kernel's older images (each is ~100 MB). */
async function pruneImages(kernel: KernelName, keep: string): Promise<void> {
  for await (const entry of Deno.readDir(`${CACHE}/images`)) {
    const path = `${CACHE}/images/${entry.name}`;
    if (entry.name.startsWith(`${kernel}-`) && path !== keep) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}
