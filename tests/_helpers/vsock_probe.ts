/**
 * Run by connection_test.ts in a child process with `--unstable-vsock`: listens on vsock, dials
 * itself through the loopback CID and exchanges one request; prints a JSON report on stdout.
 *
 * @module
 */

import {
  accept,
  dial,
  formatEndpoint,
  FramedConnection,
  listen,
  requestMessage,
  resultMessage,
} from "../../wire/mod.ts";

/** Loopback CID (VMADDR_CID_LOCAL): the local machine, if the vsock_loopback transport exists. */
const CID_LOCAL = 1;

function report(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

const port = 20000 + Math.floor(Math.random() * 40000);
let listener: Deno.Listener;
try {
  listener = listen(`vsock://any:${port}`);
} catch (error) {
  report({ stage: "listen", error: (error as Error).message });
  Deno.exit(0);
}
const listening = formatEndpoint(listener.addr);
const accepted = accept(listener);
try {
  const client = new FramedConnection(await dial(`vsock://${CID_LOCAL}:${port}`));
  const server = new FramedConnection((await accepted)!);
  await client.send(requestMessage(1, "ping", { addr: 0xffffffff81000000n }));
  const request = await server.receive();
  await server.send(resultMessage(1, request?.type === "request" ? request.args : null));
  const result = await client.receive();
  report({ stage: "exchanged", listening, result: result?.type });
  client.close();
  server.close();
} catch (error) {
  report({ stage: "dial", listening, error: (error as Error).message });
} finally {
  listener.close();
}
