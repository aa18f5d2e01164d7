// The agent's side of SEV-SNP attestation. This machine has no SEV-SNP hardware: the tests check
// the key binding, the ioctl encoding, the response parsing and the errors; the one FFI test
// issues SNP_GET_REPORT on /dev/null, which every kernel refuses with ENOTTY.
import assert from "node:assert/strict";
import {
  AttestationError,
  describeFirmwareError,
  iowr,
  MSG_REPORT_RSP_HEADER_BYTES,
  REPORT_BYTES,
  REPORT_DATA_DOMAIN,
  reportData,
  reportFromResponse,
  requestReport,
  SEV_GUEST_PATH,
  sevGuestAvailable,
  SNP_GET_REPORT,
  SNP_GUEST_REQ_IOC_TYPE,
  SNP_GUEST_REQUEST_IOCTL_BYTES,
  SNP_REPORT_REQ_BYTES,
  SNP_REPORT_RESP_BYTES,
} from "../../agent/attestation.ts";

const KEY = { noise: new Uint8Array(32).fill(0x11), signing: new Uint8Array(32).fill(0x22) };
const NONCE = Uint8Array.from({ length: 32 }, (_, i) => i);
const HAS_SEV = sevGuestAvailable();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function attestationError(code: string, pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof AttestationError, `expected an AttestationError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

Deno.test("SNP_GET_REPORT is _IOWR('S', 0x0, struct snp_guest_request_ioctl) = 0xc0205300", () => {
  // struct snp_guest_request_ioctl: u8 msg_version @0, pad 7, u64 req_data @8, u64 resp_data @16,
  // union { u64 exitinfo2; struct { u32 fw_error; u32 vmm_error; } } @24 → 32 bytes.
  assert.equal(SNP_GUEST_REQUEST_IOCTL_BYTES, 32);
  assert.equal(SNP_GUEST_REQ_IOC_TYPE, 0x53);
  // (dir 3 << 30) | (size 32 << 16) | ('S' << 8) | nr 0
  assert.equal(((3 << 30) >>> 0) + (32 << 16) + (0x53 << 8) + 0, 0xc0205300);
  assert.equal(SNP_GET_REPORT, 0xc0205300);
  assert.equal(iowr(0x53, 0x1, 32), 0xc0205301, "SNP_GET_DERIVED_KEY");
  assert.equal(iowr(0x53, 0x2, 32), 0xc0205302, "SNP_GET_EXT_REPORT");
});

Deno.test("iowr() matches well-known Linux ioctl numbers", () => {
  // SEV_ISSUE_CMD = _IOWR('S', 0x0, struct sev_issue_cmd) (packed: u32, u64, u32 = 16 bytes)
  assert.equal(iowr(0x53, 0x0, 16), 0xc0105300);
  // KVM_CREATE_DEVICE = _IOWR(KVMIO 0xAE, 0xe0, struct kvm_create_device (12 bytes))
  assert.equal(iowr(0xae, 0xe0, 12), 0xc00caee0);
  assert.throws(() => iowr(0x53, 0, 1 << 14), RangeError);
});

Deno.test("the request and response structs have the uapi sizes", () => {
  assert.equal(SNP_REPORT_REQ_BYTES, 64 + 4 + 28);
  assert.equal(SNP_REPORT_RESP_BYTES, 4000);
  assert.ok(MSG_REPORT_RSP_HEADER_BYTES + REPORT_BYTES <= SNP_REPORT_RESP_BYTES);
});

Deno.test("reportData() is SHA-512 of the domain, both agent keys and the nonce", async () => {
  const domain = new TextEncoder().encode(REPORT_DATA_DOMAIN);
  assert.equal(domain.length, 25);
  assert.equal(domain[24], 0, "the domain ends with a NUL byte");
  const message = new Uint8Array([...domain, ...KEY.noise, ...KEY.signing, ...NONCE]);
  const expected = new Uint8Array(await crypto.subtle.digest("SHA-512", message));
  const data = await reportData(KEY, NONCE);
  assert.equal(data.length, 64);
  assert.equal(hex(data), hex(expected));
  // Same value as tests/testdata/sev/build.sh computes with Python's hashlib.
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("../testdata/sev/report-v3-test.json", import.meta.url)),
  );
  assert.equal(hex(data), fixture.report_data);
});

Deno.test("reportData() is deterministic and binds every input", async (t) => {
  const base = hex(await reportData(KEY, NONCE));
  assert.equal(hex(await reportData({ ...KEY }, NONCE.slice())), base);
  const flip = (bytes: Uint8Array, at: number) => {
    const copy = bytes.slice();
    copy[at] = copy[at]! ^ 1;
    return copy;
  };
  const cases: [string, Parameters<typeof reportData>][] = [
    ["another X25519 key", [{ ...KEY, noise: flip(KEY.noise, 31) }, NONCE]],
    ["another Ed25519 key", [{ ...KEY, signing: flip(KEY.signing, 0) }, NONCE]],
    ["another nonce", [KEY, flip(NONCE, 17)]],
    ["the two keys swapped", [{ noise: KEY.signing, signing: KEY.noise }, NONCE]],
  ];
  for (const [name, args] of cases) {
    await t.step(`${name} gives other bytes`, async () => {
      assert.notEqual(hex(await reportData(...args)), base);
    });
  }
});

Deno.test("reportData() rejects keys and nonces of the wrong size", async () => {
  await assert.rejects(
    reportData(KEY, new Uint8Array(31)),
    attestationError("bad_input", /nonce must be 32 bytes, got 31/),
  );
  await assert.rejects(
    reportData({ ...KEY, noise: new Uint8Array(33) }, NONCE),
    attestationError("bad_input", /X25519 key must be 32 bytes/),
  );
});

Deno.test("sevGuestAvailable() is false on this machine and for non-devices", async () => {
  assert.equal(sevGuestAvailable("/nonexistent/sev-guest"), false);
  const file = await Deno.makeTempFile();
  try {
    assert.equal(sevGuestAvailable(file), false, "a regular file is not the SEV guest device");
  } finally {
    await Deno.remove(file);
  }
  assert.equal(sevGuestAvailable("/dev/null"), true, "any character device passes the check");
  if (!HAS_SEV) assert.equal(sevGuestAvailable(), false);
});

Deno.test({
  name: "requestReport() says SEV-SNP is not available when /dev/sev-guest does not exist",
  ignore: HAS_SEV,
  fn: async () => {
    const data = await reportData(KEY, NONCE);
    assert.throws(
      () => requestReport(data),
      attestationError(
        "unavailable",
        /^SEV-SNP attestation is not available: \/dev\/sev-guest does not exist \(not an SEV-SNP guest\)$/,
      ),
    );
    assert.equal(SEV_GUEST_PATH, "/dev/sev-guest");
  },
});

Deno.test("requestReport() reports the errno when the device refuses the ioctl", async () => {
  // /dev/null has no ioctls: the full FFI path (open, ioctl with the 32-byte struct, close) runs
  // and the kernel answers ENOTTY.
  const data = await reportData(KEY, NONCE);
  assert.throws(
    () => requestReport(data, { path: "/dev/null" }),
    (error: unknown) => {
      assert.ok(error instanceof AttestationError);
      assert.equal(error.code, "ioctl_failed", error.message);
      assert.equal(error.errno, 25, error.message); // ENOTTY
      assert.match(error.message, /^SNP_GET_REPORT ioctl on \/dev\/null failed: .*\(errno 25\)$/);
      assert.equal(error.firmwareError, 0);
      return true;
    },
  );
});

Deno.test("requestReport() reports a device it cannot open", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A directory cannot be opened read-write: EISDIR.
    assert.throws(
      () => requestReport(new Uint8Array(64), { path: dir }),
      attestationError("open_failed", /^Cannot open .*: .*\(errno 21\)$/),
    );
  } finally {
    await Deno.remove(dir);
  }
});

Deno.test("requestReport() rejects bad REPORT_DATA and VMPL before touching the device", () => {
  assert.throws(
    () => requestReport(new Uint8Array(32), { path: "/dev/null" }),
    attestationError("bad_input", /REPORT_DATA must be 64 bytes, got 32/),
  );
  assert.throws(
    () => requestReport(new Uint8Array(64), { path: "/dev/null", vmpl: 4 }),
    attestationError("bad_input", /VMPL must be an integer from 0 to 3, got 4/),
  );
});

function response(status: number, size: number, fill = 0xab): Uint8Array {
  const bytes = new Uint8Array(SNP_REPORT_RESP_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, status, true);
  view.setUint32(4, size, true);
  bytes.fill(fill, MSG_REPORT_RSP_HEADER_BYTES, MSG_REPORT_RSP_HEADER_BYTES + REPORT_BYTES);
  return bytes;
}

Deno.test("reportFromResponse() takes the report after the 32-byte MSG_REPORT_RSP header", () => {
  const report = reportFromResponse(response(0, REPORT_BYTES));
  assert.equal(report.length, 0x4a0);
  assert.ok(report.every((b) => b === 0xab));
});

Deno.test("reportFromResponse() names the firmware status of a refused report", () => {
  assert.throws(
    () => reportFromResponse(response(0x16, 0)),
    (error: unknown) => {
      assert.ok(error instanceof AttestationError);
      assert.equal(error.code, "firmware");
      assert.equal(error.firmwareError, 0x16);
      assert.match(error.message, /status 0x16 INVALID_PARAM/);
      return true;
    },
  );
  assert.throws(() => reportFromResponse(response(0x27, 0)), /0x27 INVALID_KEY/);
  assert.equal(describeFirmwareError(0x99), "0x99 (unknown firmware status)");
});

Deno.test("reportFromResponse() rejects a report size other than 0x4A0", () => {
  assert.throws(
    () => reportFromResponse(response(0, 0x4a1)),
    attestationError("bad_response", /report_size 1185, expected 1184/),
  );
  assert.throws(
    () => reportFromResponse(new Uint8Array(16)),
    attestationError("bad_response", /shorter than its 32-byte header/),
  );
});
