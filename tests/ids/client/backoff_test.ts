import assert from "node:assert/strict";
import { isUnreachable, withBackoff } from "../../../ids/client/backoff.ts";
import { TransportError } from "../../../wire/mod.ts";

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
