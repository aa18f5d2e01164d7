/**
 * Small process and file helpers shared by the bed's image and fixture builders.
 *
 * @module
 */
/** Runs `command`; returns its stdout, throws with its stderr when it fails. */
export async function sh(
  command: string,
  args: string[],
  options: { cwd?: string; stdin?: Uint8Array } = {},
): Promise<Uint8Array> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(options.stdin);
    await writer.close();
  }
  const out = await child.output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${command} ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
  return out.stdout;
}

/** Runs `command`; returns its stdout as text. */
export const text = async (command: string, args: string[], cwd?: string) =>
  new TextDecoder().decode(await sh(command, args, { cwd }));

/** Whether `path` exists (a dangling link counts). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** The SHA-256 of `data`, hex. */
export async function sha256(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Downloads (once) the Debian package `name=version` into the folder `debs`
 * with `apt-get download` and the apt options `apt`; returns the .deb's path.
 */
export async function downloadDeb(
  apt: string[],
  debs: string,
  name: string,
  version: string,
  log: (line: string) => void,
): Promise<string> {
  await Deno.mkdir(debs, { recursive: true });
  const prefix = `${name}_${version.replace(":", "%3a")}_`;
  const find = async () => {
    for await (const entry of Deno.readDir(debs)) {
      if (entry.name.startsWith(prefix) && entry.name.endsWith(".deb")) {
        return `${debs}/${entry.name}`;
      }
    }
    return undefined;
  };
  const found = await find();
  if (found) return found;
  log(`downloading ${name}=${version} from Debian's archive`);
  await sh("apt-get", [
    ...apt,
    "-q",
    "-o",
    "APT::Sandbox::User=root",
    "download",
    `${name}=${version}`,
  ], {
    cwd: debs,
  });
  const got = await find();
  if (!got) {
    throw new Error(`apt-get download ${name}=${version} left no ${prefix}*.deb in ${debs}`);
  }
  return got;
}
