import assert from "node:assert/strict";
import {
  type BackoffOptions,
  connectFailure,
  isUnreachable,
  withBackoff,
} from "../../../ids/client/backoff.ts";
import { dial, TransportError } from "../../../wire/mod.ts";

const unreachable = () =>
  new TransportError("connect_failed", "Cannot connect to tcp://x:1: refused");

Deno.test("withBackoff retries an unreachable agent with doubling waits up to the cap", async () => {
  const waits: number[] = [];
  let calls = 0;
  const result = await withBackoff(
    () => {
      calls++;
      if (calls < 4) return Promise.reject(unreachable());
      return Promise.resolve("connected");
    },
    { attempts: 5, firstDelayMs: 100, maxDelayMs: 250 },
    (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
  );
  assert.equal(result, "connected");
  assert.deepEqual(waits, [100, 200, 250]);
});

Deno.test("withBackoff gives up after its attempts with the last error", async () => {
  let calls = 0;
  await assert.rejects(
    withBackoff(() => {
      calls++;
      return Promise.reject(unreachable());
    }, { attempts: 3, firstDelayMs: 1, maxDelayMs: 1 }),
    /Cannot connect/,
  );
  assert.equal(calls, 3);
});

Deno.test("withBackoff does not retry a refused handshake", async () => {
  let calls = 0;
  await assert.rejects(
    withBackoff(() => {
      calls++;
      return Promise.reject(new Error("Handshake failed: the peer closed the connection"));
    }, { attempts: 5, firstDelayMs: 1, maxDelayMs: 1 }),
    /Handshake failed/,
  );
  assert.equal(calls, 1);
  assert.equal(isUnreachable(new Error("x")), false);
});

/** A free TCP port on 127.0.0.1 (nothing listens there once this returns). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Counts the dials of `url` that withBackoff makes with `options`, and returns the last error. */
async function countDials(
  url: string,
  options: BackoffOptions,
): Promise<{ calls: number; waits: number[]; error: unknown }> {
  let calls = 0;
  const waits: number[] = [];
  try {
    await withBackoff(
      () => {
        calls++;
        return dial(url);
      },
      options,
      (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
    );
  } catch (error) {
    return { calls, waits, error };
  }
  throw new Error(`${url} answered`);
}

const FOUR_TRIES: BackoffOptions = { attempts: 4, firstDelayMs: 100, maxDelayMs: 200 };

Deno.test("withBackoff fails at once on a refused connection unless told to retry it", async () => {
  const url = `tcp://127.0.0.1:${freePort()}`;
  const once = await countDials(url, FOUR_TRIES);
  assert.equal(connectFailure(once.error), "refused");
  assert.equal(once.calls, 1);
  assert.deepEqual(once.waits, []);
  assert.match((once.error as Error).message, /Connection refused/);
  const retried = await countDials(url, { ...FOUR_TRIES, retryRefused: true });
  assert.equal(retried.calls, 4);
  assert.deepEqual(retried.waits, [100, 200, 200]);
});

Deno.test("withBackoff fails at once on a host name that does not resolve", async () => {
  // .invalid never resolves (RFC 6761), with or without a network.
  const result = await countDials("tcp://no-such-host.invalid:7070", {
    ...FOUR_TRIES,
    retryRefused: true,
  });
  assert.equal(connectFailure(result.error), "unknown_host");
  assert.equal(result.calls, 1);
  assert.match((result.error as Error).message, /Cannot connect to tcp:\/\/no-such-host\.invalid/);
});

Deno.test("connectFailure() tells a missing vsock device from what a retry may mend", () => {
  const failed = (cause: Error) =>
    new TransportError("connect_failed", `Cannot connect to x: ${cause.message}`, { cause });
  assert.equal(connectFailure(failed(new Error("No such device (os error 19)"))), "no_device");
  assert.equal(
    connectFailure(failed(new Deno.errors.ConnectionRefused("Connection refused"))),
    "refused",
  );
  assert.equal(connectFailure(failed(new Error("Connection timed out (os error 110)"))), "other");
  assert.equal(connectFailure(unreachable()), "other");
});
