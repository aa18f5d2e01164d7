import assert from "node:assert/strict";
import { parseListenAddress, serveMetrics } from "../../../ids/watch/metrics_server.ts";
import { EXPOSITION_CONTENT_TYPE } from "../../../ids/watch/exposition.ts";

Deno.test("parseListenAddress() reads host:port and [v6]:port and refuses the rest", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:9464"), { hostname: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseListenAddress("[::1]:0"), { hostname: "::1", port: 0 });
  assert.deepEqual(parseListenAddress("localhost:80"), { hostname: "localhost", port: 80 });
  for (const bad of ["9464", ":9464", "127.0.0.1", "127.0.0.1:70000", "::1:9464", "a b:1"]) {
    assert.throws(() => parseListenAddress(bad), /^Error: Invalid listen address/, bad);
  }
});

Deno.test("serveMetrics() serves the text at /metrics on the address given, and 404 elsewhere", async () => {
  let renders = 0;
  const server = serveMetrics("127.0.0.1:0", () => `# HELP x X\n# TYPE x gauge\nx ${++renders}\n`);
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const first = await fetch(server.url);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("content-type"), EXPOSITION_CONTENT_TYPE);
    assert.equal(await first.text(), "# HELP x X\n# TYPE x gauge\nx 1\n");
    assert.equal(await (await fetch(server.url)).text(), "# HELP x X\n# TYPE x gauge\nx 2\n");
    const other = await fetch(server.url.replace("/metrics", "/"));
    assert.equal(other.status, 404);
    await other.body?.cancel();
    const post = await fetch(server.url, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.shutdown();
  }
});
