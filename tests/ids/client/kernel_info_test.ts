// The agent's kernel_info answer is checked field by field before the IDS uses it.
import assert from "node:assert/strict";
import { AgentClient, AgentError } from "../../../ids/client/agent_client.ts";
import { checkKernelInfo, MAX_BTF_BYTES } from "../../../ids/client/kernel_info.ts";
import { encodeFrame, FrameReader, parseMessage, PROTOCOL_VERSION } from "../../../wire/mod.ts";
import { FakeAgent } from "../../_helpers/security.ts";
import { makeKeys } from "../../_helpers/agent.ts";

const GOOD = {
  release: "6.1.0-28-amd64",
  arch: "x86_64",
  page_size: 4096,
  btf_bytes: 5_242_880,
  hostname: "guest",
};

Deno.test("checkKernelInfo() passes a well-formed answer through, without extra fields", () => {
  assert.deepEqual(checkKernelInfo({ ...GOOD, extra: [1, 2] }), GOOD);
  assert.deepEqual(checkKernelInfo({ ...GOOD, hostname: "", btf_bytes: 0 }), {
    ...GOOD,
    hostname: "",
    btf_bytes: 0,
  });
});

Deno.test("checkKernelInfo() names the bad field, what it is and what was expected", async (t) => {
  const cases: [string, unknown, string][] = [
    ["not a map", [GOOD], "kernel_info is an array, expected a map"],
    ["null", null, "kernel_info is null, expected a map"],
    [
      "page_size as a string",
      { ...GOOD, page_size: "4096" },
      'kernel_info field page_size is a string ("4096"), expected an integer from 4096 to 65536, a power of two',
    ],
    [
      "page_size not a power of two",
      { ...GOOD, page_size: 5000 },
      "kernel_info field page_size is 5000, expected an integer from 4096 to 65536, a power of two",
    ],
    [
      "page_size negative",
      { ...GOOD, page_size: -4096 },
      "kernel_info field page_size is -4096, expected an integer from 4096 to 65536, a power of two",
    ],
    [
      "btf_bytes too large",
      { ...GOOD, btf_bytes: MAX_BTF_BYTES + 1 },
      `kernel_info field btf_bytes is ${
        MAX_BTF_BYTES + 1
      }, expected an integer from 0 to ${MAX_BTF_BYTES}`,
    ],
    [
      "btf_bytes fractional",
      { ...GOOD, btf_bytes: 1.5 },
      `kernel_info field btf_bytes is 1.5, expected an integer from 0 to ${MAX_BTF_BYTES}`,
    ],
    [
      "release missing",
      { ...GOOD, release: undefined },
      "kernel_info field release is missing, expected a string",
    ],
    [
      "release empty",
      { ...GOOD, release: "" },
      'kernel_info field release is a string (""), expected a non-empty string',
    ],
    [
      "release with a control character",
      { ...GOOD, release: "6.1\u001b[2J" },
      'kernel_info field release is a string ("6.1\\u001b[2J"), expected printable text, without control characters',
    ],
    [
      "arch with a space",
      { ...GOOD, arch: "x86 64" },
      'kernel_info field arch is a string ("x86 64"), expected letters, digits and underscores',
    ],
    [
      "hostname too long",
      { ...GOOD, hostname: "h".repeat(300) },
      `kernel_info field hostname is a string ("${
        "h".repeat(40)
      }…"), expected at most 256 characters, got 300`,
    ],
    [
      "hostname as bytes",
      { ...GOOD, hostname: new Uint8Array(4) },
      "kernel_info field hostname is bytes, expected a string",
    ],
  ];
  for (const [name, body, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => checkKernelInfo(body), (error: Error) => {
        assert.equal(error.message, message);
        return true;
      });
    });
  }
});

Deno.test("AgentClient.kernelInfo() refuses a hostile answer with the field named", async () => {
  const keys = await makeKeys();
  const fake = new FakeAgent(keys, async (stream) => {
    const reader = new FrameReader(stream.readable);
    for (let value = await reader.next(); value !== null; value = await reader.next()) {
      const request = parseMessage(value);
      if (request.type !== "request") return;
      const body = request.op === "hello"
        ? { version: PROTOCOL_VERSION, agent: "fake", pid: 1, release: "6.1.0" }
        : { ...GOOD, page_size: "4096" };
      await stream.write(encodeFrame({ type: "result", id: request.id, body }));
    }
  });
  try {
    const client = await AgentClient.connect(fake.url, keys.security);
    try {
      await assert.rejects(client.kernelInfo(), (error: Error) => {
        assert.ok(error instanceof AgentError);
        assert.equal(error.code, "malformed");
        assert.equal(
          error.message,
          'Agent could not kernel_info: kernel_info field page_size is a string ("4096"), expected an integer from 4096 to 65536, a power of two',
        );
        return true;
      });
    } finally {
      client.close();
    }
  } finally {
    await fake.close();
    await keys.remove();
  }
});
