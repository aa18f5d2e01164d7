import assert from "node:assert/strict";
import { TokenBucket } from "../../agent/rate_limit.ts";

Deno.test("TokenBucket lets a burst through, then spaces requests at its rate", () => {
  let now = 0;
  const bucket = new TokenBucket(100, 3, () => now);
  assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [0, 0, 0]);
  assert.equal(bucket.take(), 10, "the fourth waits one token: 10 ms at 100/s");
  now += 10;
  assert.equal(bucket.take(), 10, "the debt is not forgiven by waiting exactly once");
  now += 1000;
  assert.equal(bucket.take(), 0, "a second later the bucket is full again");
});

Deno.test("TokenBucket never holds more than its burst", () => {
  let now = 0;
  const bucket = new TokenBucket(10, 2, () => now);
  now += 60_000;
  assert.deepEqual([bucket.take(), bucket.take()], [0, 0]);
  assert.ok(bucket.take() > 0);
});
