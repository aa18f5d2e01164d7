// The committed objects are what bpf/build.sh builds from the committed sources: a rebuild (clang,
// llvm-strip and bpftool from scripts/setup.sh; no root) equals bpf/objects.gen.ts byte for byte.
// The build reads its types from tests/testdata/btf/vmlinux-6.18.btf.gz, not from this machine's
// kernel, and maps its source paths, so the result does not depend on where it runs.
import assert from "node:assert/strict";

const BPF = new URL("../../bpf/", import.meta.url).pathname;

Deno.test("bpf/build.sh rebuilds bpf/objects.gen.ts byte for byte", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ebpfmonitor-build-" });
  try {
    const out = `${dir}/objects.gen.ts`;
    const run = await new Deno.Command("bash", {
      args: [`${BPF}build.sh`, out],
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, `bpf/build.sh failed: ${stderr}`);
    const rebuilt = await Deno.readTextFile(out);
    const committed = await Deno.readTextFile(`${BPF}objects.gen.ts`);
    // One assertion on the whole file, but name the first differing program when it fails.
    if (rebuilt !== committed) {
      const lines = rebuilt.split("\n");
      const first = committed.split("\n").findIndex((line, i) => line !== lines[i]);
      assert.fail(
        `bpf/objects.gen.ts differs from a rebuild at line ${first + 1}: run deno task bpf`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
