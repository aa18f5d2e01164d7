// SEV-SNP report parsing and verification on the IDS side, from fixtures: no SEV hardware and no
// AMD key service are needed. tests/testdata/sev/report-v3-test.bin was built with openssl and
// Python (tests/testdata/sev/build.sh), independently of the code under test; the other reports
// are built and signed here with a WebCrypto P-384 key.
import assert from "node:assert/strict";
import {
  type AttestationReport,
  expectedReportData,
  importVcek,
  newNonce,
  parseReport,
  REPORT_BYTES,
  ReportError,
  SIGNATURE_OFFSET,
  verifyAgentAttestation,
  verifyReport,
} from "../../ids/attestation.ts";
import { reportData } from "../../agent/attestation.ts";

const DIR = new URL("../testdata/sev/", import.meta.url);
const read = (name: string) => Deno.readFile(new URL(name, DIR));
const readText = (name: string) => Deno.readTextFile(new URL(name, DIR));

function fromHex(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

interface Fixture {
  agent_x25519: string;
  agent_ed25519: string;
  nonce: string;
  report_data: string;
  measurement: string;
  signature_r_be: string;
  signature_s_be: string;
}

const fixture: Fixture = JSON.parse(await readText("report-v3-test.json"));
const fixtureBytes = await read("report-v3-test.bin");
const agentKey = { noise: fromHex(fixture.agent_x25519), signing: fromHex(fixture.agent_ed25519) };
const nonce = fromHex(fixture.nonce);

/** The test "VCEK" private key of the fixtures (a self-signed test key, not from AMD). */
async function fixturePrivateKey(): Promise<CryptoKey> {
  const pem = await readText("vcek-test.key.pem");
  const body = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  const der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0));
  return await crypto.subtle.importKey(
    "pkcs8",
    der,
    { name: "ECDSA", namedCurve: "P-384" },
    false,
    [
      "sign",
    ],
  );
}

async function newChipKey(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
}

interface Fields {
  version?: number;
  policy?: bigint;
  signatureAlgo?: number;
  flags?: number;
  reportData?: Uint8Array;
  measurement?: Uint8Array;
}

/** Signs bytes 0..0x29F and stores R and S as 72-byte little-endian numbers, as the PSP does. */
async function sign(report: Uint8Array<ArrayBuffer>, key: CryptoKey): Promise<void> {
  const rs = new Uint8Array(
    await crypto.subtle.sign(
      { name: "ECDSA", hash: "SHA-384" },
      key,
      report.slice(0, SIGNATURE_OFFSET),
    ),
  );
  report.fill(0, SIGNATURE_OFFSET);
  for (let i = 0; i < 48; i++) {
    report[SIGNATURE_OFFSET + i] = rs[47 - i]!; // R
    report[SIGNATURE_OFFSET + 72 + i] = rs[95 - i]!; // S
  }
}

const MEASUREMENT = fromHex(fixture.measurement);

async function buildReport(key: CryptoKey, fields: Fields = {}): Promise<Uint8Array<ArrayBuffer>> {
  const report = new Uint8Array(REPORT_BYTES);
  const view = new DataView(report.buffer);
  view.setUint32(0x00, fields.version ?? 2, true);
  view.setUint32(0x04, 1, true);
  view.setBigUint64(0x08, fields.policy ?? 0x30000n, true);
  view.setUint32(0x34, fields.signatureAlgo ?? 1, true);
  view.setBigUint64(0x38, 0x0807000000000203n, true);
  view.setUint32(0x48, fields.flags ?? 0, true);
  report.set(fields.reportData ?? await expectedReportData(agentKey, nonce), 0x50);
  report.set(fields.measurement ?? MEASUREMENT, 0x90);
  report.fill(0xc1, 0x1a0, 0x1e0);
  await sign(report, key);
  return report;
}

function reportError(code: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof ReportError, `expected a ReportError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

Deno.test("parseReport() reads every field of the fixture at its ABI offset", () => {
  const r: AttestationReport = parseReport(fixtureBytes);
  assert.equal(r.version, 3);
  assert.equal(r.guestSvn, 7);
  assert.equal(r.policy, (1n << 17n) | (1n << 16n) | (1n << 8n) | 0x37n);
  assert.deepEqual(r.guestPolicy, {
    abiMinor: 0x37,
    abiMajor: 1,
    smt: true,
    migrateMa: false,
    debug: false,
    singleSocket: false,
  });
  assert.equal(hex(r.familyId), "46".repeat(16));
  assert.equal(hex(r.imageId), "49".repeat(16));
  assert.equal(r.vmpl, 0);
  assert.equal(r.signatureAlgo, 1);
  assert.deepEqual(r.currentTcb, {
    raw: 0xd315000000000104n,
    bootLoader: 4,
    tee: 1,
    snp: 0x15,
    microcode: 0xd3,
  });
  assert.equal(r.platformInfo, 3n);
  assert.equal(r.authorKeyEn, true);
  assert.equal(r.maskChipKey, false);
  assert.equal(r.signingKey, "vcek");
  assert.equal(hex(r.reportData), fixture.report_data);
  assert.equal(hex(r.measurement), fixture.measurement);
  assert.equal(hex(r.hostData), "48".repeat(32));
  assert.equal(hex(r.idKeyDigest), "00".repeat(48));
  assert.equal(hex(r.reportId), "52".repeat(32));
  assert.equal(r.reportedTcb.raw, 0xd315000000000104n);
  assert.deepEqual(r.cpuid, { family: 0x19, model: 0x11, stepping: 1 });
  assert.equal(hex(r.chipId), hex(Uint8Array.from({ length: 64 }, (_, i) => i)));
  assert.deepEqual(r.currentVersion, { major: 1, minor: 0x37, build: 10 });
  assert.deepEqual(r.committedVersion, { major: 1, minor: 0x37, build: 10 });
  assert.equal(r.launchTcb.raw, 0xd315000000000104n);
  // R and S are stored little-endian and zero-extended to 72 bytes.
  assert.equal(hex(r.signatureR.slice(0, 48).reverse()), fixture.signature_r_be);
  assert.equal(hex(r.signatureS.slice(0, 48).reverse()), fixture.signature_s_be);
  assert.equal(hex(r.signatureR.subarray(48)), "00".repeat(24));
});

Deno.test("parseReport() decodes a Turin TCB_VERSION by its CPUID family", () => {
  const bytes = fixtureBytes.slice();
  bytes[0x188] = 0x1a;
  const r = parseReport(bytes);
  assert.deepEqual(r.currentTcb, {
    raw: 0xd315000000000104n,
    fmc: 4,
    bootLoader: 1,
    tee: 0,
    snp: 0,
    microcode: 0xd3,
  });
});

Deno.test("parseReport() rejects a wrong size and a pre-SNP version", () => {
  assert.throws(
    () => parseReport(fixtureBytes.subarray(0, 0x49f)),
    reportError("malformed", /is 1183 bytes, expected 1184 \(0x4A0\)/),
  );
  const v1 = fixtureBytes.slice();
  v1[0] = 1;
  assert.throws(() => parseReport(v1), reportError("malformed", /version 1 is not an SEV-SNP/));
});

Deno.test("expectedReportData() matches the agent's reportData() and the Python-built fixture", async () => {
  const ids = await expectedReportData(agentKey, nonce);
  assert.equal(hex(ids), fixture.report_data);
  assert.equal(hex(await reportData(agentKey, nonce)), hex(ids));
  const other = newNonce();
  assert.equal(
    hex(await reportData(agentKey, other)),
    hex(await expectedReportData(agentKey, other)),
  );
});

Deno.test("verifyReport() accepts the openssl-signed fixture with the VCEK in every form", async (t) => {
  const certPem = await readText("vcek-test.crt.pem");
  const forms: [string, () => Promise<Parameters<typeof importVcek>[0]>][] = [
    ["a PEM certificate", () => Promise.resolve(certPem)],
    ["a DER certificate", () => read("vcek-test.crt.der")],
    ["a PEM public key", () => readText("vcek-test.pub.pem")],
    ["a CryptoKey", () => importVcek(certPem)],
  ];
  for (const [name, load] of forms) {
    await t.step(name, async () => {
      const report = await verifyReport(fixtureBytes, {
        vcek: await load(),
        expectedReportData: fromHex(fixture.report_data),
        expectedMeasurement: MEASUREMENT,
      });
      assert.equal(report.version, 3);
    });
  }
});

Deno.test("verifyAgentAttestation() binds the report to the agent key and nonce", async () => {
  const vcek = await readText("vcek-test.crt.pem");
  await verifyAgentAttestation(fixtureBytes, {
    vcek,
    agentKey,
    nonce,
    expectedMeasurement: MEASUREMENT,
  });
  await assert.rejects(
    verifyAgentAttestation(fixtureBytes, { vcek, agentKey, nonce: newNonce() }),
    reportError("report_data", /does not bind the expected agent key and nonce/),
  );
  await assert.rejects(
    verifyAgentAttestation(fixtureBytes, {
      vcek,
      agentKey: { ...agentKey, signing: new Uint8Array(32) },
      nonce,
    }),
    reportError("report_data"),
  );
});

Deno.test("verifyReport() accepts a report built and signed with WebCrypto", async () => {
  const chip = await newChipKey();
  const bytes = await buildReport(chip.privateKey);
  const report = await verifyReport(bytes, {
    vcek: chip.publicKey,
    expectedReportData: await expectedReportData(agentKey, nonce),
    expectedMeasurement: MEASUREMENT,
  });
  assert.equal(report.version, 2);
  assert.equal(report.cpuid, undefined);
});

Deno.test("verifyReport() rejects what an attacker could change", async (t) => {
  const chip = await newChipKey();
  const good = await buildReport(chip.privateKey);
  const expected = await expectedReportData(agentKey, nonce);
  const check = (bytes: Uint8Array, extra: { allowDebug?: boolean } = {}) =>
    verifyReport(bytes, {
      vcek: chip.publicKey,
      expectedReportData: expected,
      expectedMeasurement: MEASUREMENT,
      ...extra,
    });

  await t.step("REPORT_DATA altered after signing: the signature fails", async () => {
    const bytes = good.slice();
    bytes[0x50] = bytes[0x50]! ^ 1;
    await assert.rejects(
      check(bytes),
      reportError("signature", /does not verify with the supplied VCEK/),
    );
  });
  await t.step("measurement altered after signing: the signature fails", async () => {
    const bytes = good.slice();
    bytes[0xbf] = bytes[0xbf]! ^ 0x80;
    await assert.rejects(check(bytes), reportError("signature"));
  });
  await t.step("a signature byte changed", async () => {
    const bytes = good.slice();
    bytes[SIGNATURE_OFFSET + 72] = bytes[SIGNATURE_OFFSET + 72]! ^ 1; // S, lowest byte
    await assert.rejects(check(bytes), reportError("signature"));
  });
  await t.step("R wider than 48 bytes", async () => {
    const bytes = good.slice();
    bytes[SIGNATURE_OFFSET + 48] = 1;
    await assert.rejects(
      check(bytes),
      reportError("signature", /component R is larger than 48 bytes/),
    );
  });
  await t.step("signed by another chip", async () => {
    const other = await newChipKey();
    await assert.rejects(check(await buildReport(other.privateKey)), reportError("signature"));
  });
  await t.step("genuine report for another agent key", async () => {
    const bytes = await buildReport(chip.privateKey, {
      reportData: await expectedReportData({ ...agentKey, noise: new Uint8Array(32) }, nonce),
    });
    await assert.rejects(
      check(bytes),
      reportError("report_data", /REPORT_DATA does not bind the expected agent key and nonce/),
    );
  });
  await t.step("genuine report of another guest image", async () => {
    const bytes = await buildReport(chip.privateKey, { measurement: new Uint8Array(48).fill(7) });
    await assert.rejects(
      check(bytes),
      reportError("measurement", /measurement 0707.* is not the expected .*another image/),
    );
  });
  await t.step("debuggable guest (policy bit 19)", async () => {
    const bytes = await buildReport(chip.privateKey, { policy: 0x30000n | (1n << 19n) });
    await assert.rejects(check(bytes), reportError("policy", /allows debugging/));
    assert.equal((await check(bytes, { allowDebug: true })).guestPolicy.debug, true);
  });
  await t.step("another signature algorithm", async () => {
    const bytes = await buildReport(chip.privateKey, { signatureAlgo: 2 });
    await assert.rejects(
      check(bytes),
      reportError("algorithm", /signature algorithm 2, expected 1 \(ECDSA P-384 with SHA-384\)/),
    );
  });
  await t.step("SIGNING_KEY says unsigned", async () => {
    const bytes = await buildReport(chip.privateKey, { flags: 7 << 2 });
    await assert.rejects(check(bytes), reportError("unsigned", /SIGNING_KEY is none/));
  });
});

Deno.test("the fixture's signature does not verify under a fresh key", async () => {
  const other = await newChipKey();
  await assert.rejects(
    verifyReport(fixtureBytes, {
      vcek: other.publicKey,
      expectedReportData: fromHex(fixture.report_data),
    }),
    reportError("signature"),
  );
  // ...and the fixture key signs reports this test builds that verify with the fixture cert.
  const bytes = await buildReport(await fixturePrivateKey());
  await verifyReport(bytes, {
    vcek: await readText("vcek-test.crt.pem"),
    expectedReportData: await expectedReportData(agentKey, nonce),
  });
});

Deno.test("importVcek() rejects keys that are not ECDSA P-384 public keys", async (t) => {
  await t.step("a P-256 key", async () => {
    const p256 = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ]) as CryptoKeyPair;
    await assert.rejects(importVcek(p256.publicKey), reportError("vcek", /ECDSA P-384 public key/));
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", p256.publicKey));
    await assert.rejects(importVcek(spki), reportError("vcek", /not an ECDSA P-384 public key/));
  });
  await t.step("a private key", async () => {
    await assert.rejects(importVcek(await fixturePrivateKey()), reportError("vcek"));
    await assert.rejects(
      importVcek(await readText("vcek-test.key.pem")),
      reportError("vcek", /PEM block is PRIVATE KEY, expected CERTIFICATE or PUBLIC KEY/),
    );
  });
  await t.step("not PEM, not DER", async () => {
    await assert.rejects(importVcek("hello"), reportError("vcek", /no PEM block found/));
    await assert.rejects(
      importVcek(new Uint8Array([1, 2, 3])),
      reportError("vcek", /Cannot read the VCEK/),
    );
  });
});
