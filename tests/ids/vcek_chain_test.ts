// The VCEK's certificate chain (ARK → ASK → VCEK), with certificates openssl made here as AMD
// makes them (tests/testdata/sev/build.sh): RSA keys and RSASSA-PSS SHA-384 signatures for the
// ARK and the ASK, an ECDSA P-384 key for the VCEK.
import assert from "node:assert/strict";
import type { X509Certificate } from "node:crypto";
import { ChainError, readCertificates, verifyVcekChain } from "../../ids/vcek_chain.ts";
import { verifyAgentAttestation } from "../../ids/attestation.ts";
import { runCli } from "../_helpers/agent.ts";

const DIR = new URL("../testdata/sev/", import.meta.url);
const path = (name: string) => new URL(name, DIR).pathname;
const certs = async (name: string) => readCertificates(await Deno.readTextFile(path(name)), name);
const one = async (name: string) => (await certs(name))[0]!;

const VCEK = await one("vcek-chained-test.crt.pem");
const CHAIN = await certs("cert_chain-test.pem");

function chainError(message: string) {
  return (error: unknown) => {
    assert.ok(error instanceof ChainError, String(error));
    assert.equal(error.message, message);
    assert.equal(error.code, "chain");
    return true;
  };
}

Deno.test("verifyVcekChain() accepts the VCEK through its ASK to the self-signed ARK, in either order", () => {
  assert.equal(CHAIN.length, 2);
  verifyVcekChain(VCEK, CHAIN);
  verifyVcekChain(VCEK, [...CHAIN].reverse());
});

Deno.test("the chained VCEK certificate verifies the fixture report (the same P-384 key)", async () => {
  const fixture = JSON.parse(await Deno.readTextFile(path("report-v3-test.json")));
  const bytes = (text: string) => Uint8Array.from(text.match(/../g)!, (p) => parseInt(p, 16));
  const report = await Deno.readFile(path("report-v3-test.bin"));
  const verified = await verifyAgentAttestation(report, {
    vcek: await Deno.readTextFile(path("vcek-chained-test.crt.pem")),
    agentKey: { noise: bytes(fixture.agent_x25519), signing: bytes(fixture.agent_ed25519) },
    nonce: bytes(fixture.nonce),
  });
  assert.equal(verified.signingKey, "vcek");
});

Deno.test("verifyVcekChain() names the first link that does not hold", async (t) => {
  const [other, impostor] = [
    await certs("cert_chain-other.pem"),
    await certs("cert_chain-impostor.pem"),
  ];
  const cases: [string, X509Certificate, X509Certificate[], string][] = [
    [
      "another chain",
      VCEK,
      other,
      "The VCEK (SEV-VCEK) is not signed by the ASK (SEV-Other) with RSASSA-PSS SHA-384: the chain is broken",
    ],
    [
      "an impostor chain with the same names",
      VCEK,
      impostor,
      "The VCEK (SEV-VCEK) is not signed by the ASK (SEV-Test) with RSASSA-PSS SHA-384: the chain is broken",
    ],
    [
      "the ASK of one chain under the ARK of the impostor",
      VCEK,
      [CHAIN[0]!, impostor[1]!],
      "The ASK (SEV-Test) is not signed by the ARK (ARK-Test) with RSASSA-PSS SHA-384: the chain is broken",
    ],
    [
      "a self-signed ECDSA certificate as the ARK",
      VCEK,
      [CHAIN[0]!, await one("vcek-test.crt.pem")],
      "The ARK (test VCEK (not an AMD key)) is not signed by itself (test VCEK (not an AMD key)) with RSASSA-PSS SHA-384: the chain is broken",
    ],
    [
      "no ARK",
      VCEK,
      [CHAIN[0]!, VCEK],
      "The chain file holds no self-issued certificate (the ARK)",
    ],
    [
      "one certificate",
      VCEK,
      [CHAIN[1]!],
      "The chain file must hold two certificates (the ASK and the ARK), found 1",
    ],
  ];
  for (const [name, vcek, chain, message] of cases) {
    await t.step(
      name,
      () => assert.throws(() => verifyVcekChain(vcek, chain), chainError(message)),
    );
  }
  await t.step("a certificate not valid yet", () => {
    assert.throws(
      () => verifyVcekChain(VCEK, CHAIN, new Date("2000-01-01T00:00:00Z")),
      chainError(
        `The ARK (ARK-Test) is not valid now: valid from ${CHAIN[1]!.validFrom} to ${
          CHAIN[1]!.validTo
        }`,
      ),
    );
  });
});

Deno.test("readCertificates() reads PEM blocks or one DER certificate, and says what it cannot read", async () => {
  assert.equal((await certs("cert_chain-test.pem")).length, 2);
  const der = await Deno.readFile(path("vcek-test.crt.der"));
  assert.equal(readCertificates(der, "x").length, 1);
  assert.throws(
    () =>
      readCertificates(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        "the VCEK file",
      ),
    chainError("Cannot read the certificates of the VCEK file: no CERTIFICATE block found"),
  );
  assert.throws(() => readCertificates(new Uint8Array([1, 2, 3]), "the chain file"), ChainError);
});

/** `ids attest` against nothing, with the chained VCEK and `chain`. */
function attestWithChain(chain: string, extra: string[] = []) {
  return runCli([
    "ids",
    "attest",
    "--connect",
    "tcp://127.0.0.1:1",
    "--vcek",
    path("vcek-chained-test.crt.pem"),
    "--chain",
    path(chain),
    ...extra,
  ]);
}

Deno.test("ids attest --chain with a broken chain exits 2 with the link that does not hold, before connecting", async () => {
  const run = await attestWithChain("cert_chain-other.pem", ["--json"]);
  const message =
    "The VCEK (SEV-VCEK) is not signed by the ASK (SEV-Other) with RSASSA-PSS SHA-384: the chain is broken";
  assert.equal(run.code, 2);
  assert.equal(run.stderr, `ebpfmonitor: ${message}\n`);
  assert.deepEqual(JSON.parse(run.stdout), { error: { code: "chain", message } });
});

Deno.test("ids attest --chain with a good chain goes on to connect", async () => {
  const run = await attestWithChain("cert_chain-test.pem");
  assert.equal(run.code, 2);
  assert.match(run.stderr, /needs its key and the agent's public key/);
});
