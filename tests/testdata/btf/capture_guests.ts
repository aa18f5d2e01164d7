/**
 * Captures the BTF of the bed's guest kernels into `vmlinux-<kernel>.btf.gz`
 * next to this file (the offline profile tests read them): each kernel's
 * vmlinuz is found (or downloaded) by the bed (tests/vm/image.ts), its
 * compressed payload unpacked (xz or zstd, found by magic as the kernel's
 * scripts/extract-vmlinux does) and its `.BTF` section dumped.
 *
 * ```sh
 * deno run -A tests/testdata/btf/capture_guests.ts [5.10 6.1 6.12]
 * ```
 *
 * Needs xz, zstd, llvm-objcopy and gzip.
 *
 * @module
 */
import { kernelImage, KERNELS, parseKernel } from "../../vm/image.ts";

const HERE = new URL(".", import.meta.url).pathname;

const MAGICS: [number[], string[]][] = [
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], ["xz", "-dcq"]],
  [[0x28, 0xb5, 0x2f, 0xfd], ["zstd", "-dcq"]],
];

async function run(command: string, args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(command, {
    args,
    stdin: input ? "piped" : "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const output = child.output(); // read while writing: the pipes are small
  if (input) {
    const writer = child.stdin.getWriter();
    await writer.write(input).catch(() => {});
    await writer.close().catch(() => {});
  }
  return (await output).stdout;
}

/** The ELF vmlinux inside a bzImage. */
async function vmlinux(bzImage: Uint8Array): Promise<Uint8Array> {
  for (const [magic, command] of MAGICS) {
    for (let i = 0; i + magic.length < bzImage.length; i++) {
      if (!magic.every((b, j) => bzImage[i + j] === b)) continue;
      const out = await run(command[0]!, command.slice(1), bzImage.subarray(i));
      if (out[0] === 0x7f && out[1] === 0x45 && out[2] === 0x4c && out[3] === 0x46) return out;
    }
  }
  throw new Error("No xz or zstd compressed ELF in the kernel image");
}

for (const name of Deno.args.length > 0 ? Deno.args.map(parseKernel) : KERNELS) {
  const image = await kernelImage(name);
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${tmp}/vmlinux`, await vmlinux(await Deno.readFile(image.vmlinuz)));
    await run("llvm-objcopy", ["--dump-section", `.BTF=${tmp}/btf`, `${tmp}/vmlinux`, "/dev/null"]);
    const gz = await run("gzip", ["-9n", "-c", `${tmp}/btf`]);
    const out = `${HERE}vmlinux-${name}.btf.gz`;
    await Deno.writeFile(out, gz);
    console.log(`${out}: ${image.release} (${image.package}), ${gz.length} bytes`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
