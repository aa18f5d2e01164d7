/**
 * How long the IDS's parsers take on large and hostile input: the figures that used to be timed
 * assertions in the tests (which now bound work, not wall time). Not a test: run it by hand, on
 * a quiet machine, and compare medians.
 *
 * - FrameReader: 20,000 small frames in 3-byte chunks (tests/wire/frame_test.ts)
 * - decodePayload refusing 8 MiB of nested arrays (tests/wire/msgpack_guard_test.ts) and array
 *   headers claiming 2^23 elements (tests/security/fuzz_test.ts)
 * - Btf.parse of this machine's vmlinux BTF (tests/ids/profile/btf_vmlinux_test.ts)
 * - Kallsyms.parse of 150,000 lines (tests/ids/profile/kallsyms_test.ts)
 *
 * ```sh
 * deno run -A bench/decode_bounds.ts [--rounds 7]
 * ```
 *
 * @module
 */
import { concatBytes } from "../wire/bytes.ts";
import { decodePayload, encodeFrame, FrameReader } from "../wire/frame.ts";
import { Btf } from "../ids/profile/btf.ts";
import { Kallsyms } from "../ids/profile/kallsyms.ts";
import { median, quantile } from "../ids/cli/stats.ts";
import { chunkStream, split } from "../tests/_helpers/streams.ts";
import { vmlinuxBtfBytes } from "../tests/_helpers/profile_fixtures.ts";

const roundsAt = Deno.args.indexOf("--rounds");
const ROUNDS = roundsAt === -1 ? 7 : Number(Deno.args[roundsAt + 1]);
if (!Number.isSafeInteger(ROUNDS) || ROUNDS <= 0) {
  console.error("decode_bounds: --rounds takes a positive integer");
  Deno.exit(2);
}

async function time(name: string, body: () => unknown): Promise<void> {
  await body(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await body();
    times.push(performance.now() - t0);
  }
  console.log(
    `${name.padEnd(52)} median ${median(times).toFixed(1).padStart(8)} ms, p95 ${
      quantile(times, 0.95).toFixed(1).padStart(8)
    } ms`,
  );
}

function refuses(payload: Uint8Array): void {
  try {
    decodePayload(payload);
  } catch {
    return;
  }
  throw new Error("decodePayload accepted a hostile payload");
}

const frames = concatBytes(...Array.from({ length: 20_000 }, (_, i) => encodeFrame({ i })));
const frameChunks = split(frames, 3);
await time("FrameReader, 20,000 frames in 3-byte chunks", async () => {
  const reader = new FrameReader(chunkStream(frameChunks).stream);
  while (await reader.next() !== null) { /* drain */ }
});

const nested = new Uint8Array(8 * 1024 * 1024).fill(0x91);
await time("decodePayload refuses 8 MiB of nested arrays", () => refuses(nested));

const header = new Uint8Array(5);
header[0] = 0xdd;
new DataView(header.buffer).setUint32(1, 2 ** 23);
const claims = concatBytes(header, header, header, header);
await time("decodePayload refuses 4 headers claiming 2^23 each", () => refuses(claims));

const btf = await vmlinuxBtfBytes();
await time("Btf.parse, vmlinux 6.18 (126,700 types)", () => Btf.parse(btf));

const kallsyms = Array.from(
  { length: 150_000 },
  (_, i) => `${(0xffffffff81000000n + BigInt(i * 16)).toString(16)} t sym_${i}`,
).join("\n");
await time("Kallsyms.parse, 150,000 lines", () => Kallsyms.parse(kallsyms));
