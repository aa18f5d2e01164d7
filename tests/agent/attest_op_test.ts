// The agent's attest request, against real agents (root: the agent loads eBPF). This machine is
// no SEV-SNP guest, so the agent must say so; in an SEV-SNP guest the same request returns the
// report (agent/attestation.ts, tested with synthetic reports in attestation_test.ts).
import assert from "node:assert/strict";
import { AgentClient, AgentError } from "../../ids/client/agent_client.ts";
import { startLocalAgent } from "../../ids/local_agent.ts";
import { newNonce } from "../../ids/attestation.ts";
import { IS_ROOT } from "../_helpers/agent.ts";

async function attestError(insecure: boolean): Promise<AgentError> {
  const agent = await startLocalAgent({ insecure });
  try {
    const client = await AgentClient.connect(agent.url, agent.security);
    try {
      const error = await client.attest(newNonce()).then(() => undefined, (e) => e);
      assert.ok(error instanceof AgentError, `expected an AgentError, got ${error}`);
      await client.ping(); // the connection survives the refusal
      return error;
    } finally {
      client.close();
    }
  } finally {
    await agent.stop();
  }
}

Deno.test({
  name: "attest outside an SEV-SNP guest answers not_supported, naming /dev/sev-guest (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const error = await attestError(false);
    assert.equal(error.code, "not_supported");
    assert.match(error.message, /\/dev\/sev-guest does not exist/);
  },
});

Deno.test({
  name: "attest on an agent without a key answers no_identity (root)",
  ignore: !IS_ROOT,
  fn: async () => {
    const error = await attestError(true);
    assert.equal(error.code, "no_identity");
  },
});
