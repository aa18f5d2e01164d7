import assert from "node:assert/strict";
import {
  accept,
  dial,
  type Endpoint,
  formatEndpoint,
  listen,
  parseEndpoint,
  TransportError,
  VMADDR_CID_ANY,
} from "../../wire/transport.ts";

function assertTransportError(error: unknown, code: string, message: string | RegExp): true {
  assert.ok(error instanceof TransportError, `expected a TransportError, got ${error}`);
  assert.equal(error.code, code);
  if (typeof message === "string") assert.equal(error.message, message);
  else assert.match(error.message, message);
  return true;
}

Deno.test("parseEndpoint() accepts tcp and vsock URLs", async (t) => {
  const cases: [string, Endpoint][] = [
    ["tcp://127.0.0.1:7000", { transport: "tcp", hostname: "127.0.0.1", port: 7000 }],
    ["tcp://localhost:0", { transport: "tcp", hostname: "localhost", port: 0 }],
    ["tcp://[::1]:65535", { transport: "tcp", hostname: "::1", port: 65535 }],
    ["TCP://guest.example:22", { transport: "tcp", hostname: "guest.example", port: 22 }],
    ["vsock://3:7000", { transport: "vsock", cid: 3, port: 7000 }],
    ["vsock://2:0", { transport: "vsock", cid: 2, port: 0 }],
    ["vsock://any:7000", { transport: "vsock", cid: VMADDR_CID_ANY, port: 7000 }],
    ["vsock://4294967295:4294967295", {
      transport: "vsock",
      cid: VMADDR_CID_ANY,
      port: 4294967295,
    }],
  ];
  for (const [url, endpoint] of cases) {
    await t.step(url, () => assert.deepEqual(parseEndpoint(url), endpoint));
  }
});

Deno.test("parseEndpoint() rejects bad URLs with a clear message", async (t) => {
  const cases: [string, string][] = [
    ["udp://127.0.0.1:53", "Unsupported transport udp: use tcp://host:port or vsock://cid:port"],
    [
      "unix:///run/agent.sock",
      "Unsupported transport unix: use tcp://host:port or vsock://cid:port",
    ],
    [
      "127.0.0.1:7000",
      'Invalid endpoint "127.0.0.1:7000": use tcp://host:port or vsock://cid:port',
    ],
    ["", 'Invalid endpoint "": use tcp://host:port or vsock://cid:port'],
    ["tcp://127.0.0.1", "Invalid endpoint tcp://127.0.0.1: expected tcp://host:port"],
    ["tcp://127.0.0.1:", "Invalid endpoint tcp://127.0.0.1:: missing port"],
    ["tcp://:7000", "Invalid endpoint tcp://:7000: missing host"],
    [
      "tcp://host:70000",
      "Invalid port 70000 in tcp://host:70000: must be an integer from 0 to 65535",
    ],
    ["tcp://host:-1", "Invalid port -1 in tcp://host:-1: must be an integer from 0 to 65535"],
    ["tcp://host:80x", "Invalid port 80x in tcp://host:80x: must be an integer from 0 to 65535"],
    [
      "tcp://host:80/path",
      "Invalid port 80/path in tcp://host:80/path: must be an integer from 0 to 65535",
    ],
    ["tcp://::1:80", "Invalid endpoint tcp://::1:80: expected tcp://host:port"],
    [
      "tcp://[127.0.0.1]:80",
      "Invalid endpoint tcp://[127.0.0.1]:80: brackets are only for IPv6 addresses",
    ],
    ["vsock://3", "Invalid endpoint vsock://3: expected vsock://cid:port"],
    [
      "vsock://host:7000",
      'Invalid cid host in vsock://host:7000: must be an integer from 0 to 4294967295 or "any"',
    ],
    [
      "vsock://-1:7000",
      'Invalid cid -1 in vsock://-1:7000: must be an integer from 0 to 4294967295 or "any"',
    ],
    [
      "vsock://3:4294967296",
      "Invalid port 4294967296 in vsock://3:4294967296: must be an integer from 0 to 4294967295",
    ],
    ["vsock://:7000", "Invalid endpoint vsock://:7000: missing cid"],
  ];
  for (const [url, message] of cases) {
    await t.step(url || "(empty)", () => {
      assert.throws(
        () => parseEndpoint(url),
        (e) => assertTransportError(e, "bad_endpoint", message),
      );
    });
  }
});

Deno.test("formatEndpoint() gives back the URL form", async (t) => {
  const cases: [Deno.Addr | Endpoint, string][] = [
    [{ transport: "tcp", hostname: "127.0.0.1", port: 7000 }, "tcp://127.0.0.1:7000"],
    [{ transport: "tcp", hostname: "::1", port: 80 }, "tcp://[::1]:80"],
    [{ transport: "vsock", cid: 3, port: 7000 }, "vsock://3:7000"],
    [{ transport: "vsock", cid: VMADDR_CID_ANY, port: 7000 }, "vsock://any:7000"],
  ];
  for (const [addr, url] of cases) {
    await t.step(url, () => {
      assert.equal(formatEndpoint(addr), url);
      assert.equal(formatEndpoint(parseEndpoint(url)), url);
    });
  }
  await t.step("unix addresses are refused", () => {
    assert.throws(
      () => formatEndpoint({ transport: "unix", path: "/run/agent.sock" }),
      (e) =>
        assertTransportError(
          e,
          "bad_endpoint",
          "Cannot format a unix address as an endpoint: only tcp and vsock are supported",
        ),
    );
  });
});

Deno.test("listen() on TCP port 0 reports the chosen port and dial() connects to it", async () => {
  const listener = listen("tcp://127.0.0.1:0");
  try {
    const url = formatEndpoint(listener.addr);
    assert.match(url, /^tcp:\/\/127\.0\.0\.1:[1-9][0-9]*$/);
    const [client, server] = await Promise.all([dial(url), accept(listener)]);
    assert.ok(server);
    assert.equal(formatEndpoint(client.remoteAddr), url);
    await client.write(new Uint8Array([42]));
    const buffer = new Uint8Array(1);
    assert.equal(await server.read(buffer), 1);
    assert.equal(buffer[0], 42);
    client.close();
    server.close();
  } finally {
    listener.close();
  }
});

Deno.test("accept() returns null once the listener is closed", async () => {
  const listener = listen("tcp://127.0.0.1:0");
  const pending = accept(listener);
  listener.close();
  assert.equal(await pending, null);
});

Deno.test("dial() explains a refused TCP connection", async () => {
  const listener = listen("tcp://127.0.0.1:0");
  const url = formatEndpoint(listener.addr);
  listener.close();
  await assert.rejects(
    dial(url),
    (e) => assertTransportError(e, "connect_failed", new RegExp(`^Cannot connect to ${url}: .+`)),
  );
});

Deno.test("dial() refuses port 0", async () => {
  await assert.rejects(
    dial("tcp://127.0.0.1:0"),
    (e) =>
      assertTransportError(
        e,
        "bad_endpoint",
        "Cannot connect to tcp://127.0.0.1:0: port 0 is only valid for listening",
      ),
  );
});

Deno.test("listen() explains an address already in use", () => {
  const first = listen("tcp://127.0.0.1:0");
  try {
    const url = formatEndpoint(first.addr);
    assert.throws(
      () => listen(url),
      (e) => assertTransportError(e, "listen_failed", new RegExp(`^Cannot listen on ${url}: .+`)),
    );
  } finally {
    first.close();
  }
});
