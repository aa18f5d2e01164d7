// The open-file limit that sizes how many connections may wait for handshake message 1.
import assert from "node:assert/strict";
import { ASSUMED_OPEN_FILES, openFilesLimit, waitingBound } from "../../agent/open_files.ts";

const limits = (soft: string) =>
  `Limit                     Soft Limit           Hard Limit           Units     \n` +
  `Max cpu time              unlimited            unlimited            seconds   \n` +
  `Max open files            ${soft}                524288               files     \n`;

Deno.test("openFilesLimit() reads the soft limit of /proc/self/limits", () => {
  assert.equal(openFilesLimit(limits("1024")), 1024);
  assert.equal(openFilesLimit(limits("20000")), 20000);
  assert.equal(openFilesLimit(limits("unlimited")), 1 << 20);
  assert.ok(openFilesLimit() > 0, "this process's own limit");
});

Deno.test("openFilesLimit() assumes 1024 for text without a usable limit", () => {
  assert.equal(openFilesLimit(""), ASSUMED_OPEN_FILES);
  assert.equal(openFilesLimit(limits("many")), ASSUMED_OPEN_FILES);
  assert.equal(openFilesLimit(limits("0")), ASSUMED_OPEN_FILES);
});

Deno.test("waitingBound() is half the open-file limit, between 64 and 4096", () => {
  assert.equal(waitingBound(1024), 512);
  assert.equal(waitingBound(20000), 4096);
  assert.equal(waitingBound(100), 64);
});
