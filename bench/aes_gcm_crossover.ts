/**
 * Where synchronous AES-GCM (`node:crypto`) stops beating WebCrypto: median time to encrypt and
 * to decrypt one message of each size, one message at a time, both ways. Used to choose
 * `SYNC_MAX_BYTES` in `wire/secure/_aes_gcm.ts`. Not a test: run it by hand.
 *
 * ```sh
 * deno run -A bench/aes_gcm_crossover.ts
 * ```
 *
 * @module
 */

import { importKey, openAsync, openSync, sealAsync, sealSync } from "../wire/secure/_aes_gcm.ts";

async function median(count: number, run: () => unknown): Promise<number> {
  for (let i = 0; i < Math.max(10, count / 10); i++) await run();
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1]! * 1000;
}

const key = crypto.getRandomValues(new Uint8Array(32));
const webKey = await importKey(key);
const iv = new Uint8Array(12);
const ad = new Uint8Array(0);
console.log("bytes\tsync seal\tsync open\twebcrypto seal\twebcrypto open (µs, medians)");
for (const size of [32, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65519]) {
  const plaintext = crypto.getRandomValues(new Uint8Array(size));
  const sealed = sealSync(key, iv, ad, plaintext);
  const count = size > 8192 ? 300 : 2000;
  const row = [
    await median(count, () => sealSync(key, iv, ad, plaintext)),
    await median(count, () => openSync(key, iv, ad, sealed)),
    await median(count, () => sealAsync(webKey, iv, ad, plaintext)),
    await median(count, () => openAsync(webKey, iv, ad, sealed)),
  ];
  console.log(`${size}\t${row.map((t) => t.toFixed(1)).join("\t")}`);
}
