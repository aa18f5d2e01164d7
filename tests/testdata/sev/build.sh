#!/usr/bin/env bash
# Rebuilds the SEV-SNP test fixtures of this directory with openssl and python3 only, so that
# the report layout and the signature byte order are produced independently of the TypeScript
# code under test. Nothing here comes from AMD: the "VCEK" is a self-signed test key.
set -euo pipefail
cd "$(dirname "$0")"

# 1. A P-384 key and a self-signed certificate standing in for a VCEK.
rm -f vcek-test.key.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out vcek-test.key.pem
openssl req -x509 -new -key vcek-test.key.pem -sha384 -days 36500 \
  -subj "/O=ebpfmonitor tests/CN=test VCEK (not an AMD key)" -out vcek-test.crt.pem
openssl x509 -in vcek-test.crt.pem -outform DER -out vcek-test.crt.der
openssl pkey -in vcek-test.key.pem -pubout -out vcek-test.pub.pem

# 1b. An AMD-style chain for that key, as AMD's KDS serves it: an ARK (self-signed) and an ASK
# (signed by the ARK), RSA 4096 keys, certificates signed with RSASSA-PSS (SHA-384, MGF1 SHA-384,
# salt 48) as AMD's are; a VCEK certificate for the key above signed by the ASK; and for broken
# chains, a second, unrelated ARK and ASK, and an impostor pair with the same names as the first
# but other keys. The CA keys are thrown away.
chain_certs() { # NAME OUT_ARK OUT_ASK [vcek]
  local dir
  dir=$(mktemp -d)
  local pss=(-sha384 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -days 36500)
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$dir/ark.key"
  openssl req -x509 -new -key "$dir/ark.key" "${pss[@]}" -subj "/O=ebpfmonitor tests/CN=ARK-$1" \
    -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$2"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$dir/ask.key"
  openssl req -new -key "$dir/ask.key" -subj "/O=ebpfmonitor tests/CN=SEV-$1" -out "$dir/ask.csr"
  printf 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n' >"$dir/ca.ext"
  openssl x509 -req -in "$dir/ask.csr" -CA "$2" -CAkey "$dir/ark.key" -set_serial 1 "${pss[@]}" \
    -extfile "$dir/ca.ext" -out "$3"
  if [ "${4:-}" = vcek ]; then
    openssl req -new -key vcek-test.key.pem -subj "/O=ebpfmonitor tests/CN=SEV-VCEK" \
      -out "$dir/vcek.csr"
    openssl x509 -req -in "$dir/vcek.csr" -CA "$3" -CAkey "$dir/ask.key" -set_serial 2 "${pss[@]}" \
      -out vcek-chained-test.crt.pem
  fi
  rm -rf "$dir"
}
chain_certs Test ark-test.crt.pem ask-test.crt.pem vcek
cat ask-test.crt.pem ark-test.crt.pem >cert_chain-test.pem
for other in other impostor; do
  chain_certs "$([ $other = other ] && echo Other || echo Test)" "ark-$other.pem" "ask-$other.pem"
  cat "ask-$other.pem" "ark-$other.pem" >"cert_chain-$other.pem"
  rm "ark-$other.pem" "ask-$other.pem"
done
openssl verify -CAfile ark-test.crt.pem -untrusted ask-test.crt.pem vcek-chained-test.crt.pem

# 2. A report (version 3, Genoa CPUID) binding a fixed agent key to a fixed nonce, signed by it.
python3 - <<'PY'
import hashlib, json, struct, subprocess

agent_x25519 = bytes([0x11]) * 32
agent_ed25519 = bytes([0x22]) * 32
nonce = bytes(range(32))
report_data = hashlib.sha512(b"ebpfmonitor-agent-key-v1\0" + agent_x25519 + agent_ed25519 + nonce).digest()
measurement = hashlib.sha384(b"ebpfmonitor test guest image").digest()

r = bytearray(0x4A0)
struct.pack_into("<IIQ", r, 0x00, 3, 7, (1 << 17) | (1 << 16) | (1 << 8) | 0x37)  # version, guest_svn, policy (ABI 1.55, SMT, reserved bit 17)
r[0x10:0x20] = b"F" * 16                                      # family_id
r[0x20:0x30] = b"I" * 16                                      # image_id
struct.pack_into("<II", r, 0x30, 0, 1)                        # vmpl 0, signature_algo 1
struct.pack_into("<Q", r, 0x38, 0xD315000000000104)           # current_tcb: ucode 0xD3, snp 0x15, tee 1, bl 4
struct.pack_into("<Q", r, 0x40, 0x3)                          # platform_info: SMT, TSME
struct.pack_into("<I", r, 0x48, 0x1)                          # author_key_en, signing_key 0 (VCEK)
r[0x50:0x90] = report_data
r[0x90:0xC0] = measurement
r[0xC0:0xE0] = b"H" * 32                                      # host_data
r[0x140:0x160] = b"R" * 32                                    # report_id
struct.pack_into("<Q", r, 0x180, 0xD315000000000104)          # reported_tcb
r[0x188:0x18B] = bytes([0x19, 0x11, 0x01])                    # cpuid family 19h model 11h stepping 1 (Genoa)
r[0x1A0:0x1E0] = bytes(range(64))                             # chip_id
struct.pack_into("<Q", r, 0x1E0, 0xD315000000000104)          # committed_tcb
r[0x1E8:0x1EB] = bytes([0x0A, 0x37, 0x01])                    # current build 10, minor 55, major 1
r[0x1EC:0x1EF] = bytes([0x0A, 0x37, 0x01])                    # committed
struct.pack_into("<Q", r, 0x1F0, 0xD315000000000104)          # launch_tcb

der = subprocess.run(["openssl", "dgst", "-sha384", "-sign", "vcek-test.key.pem"],
                     input=bytes(r[:0x2A0]), capture_output=True, check=True).stdout
# ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (short-form lengths at P-384 sizes)
assert der[0] == 0x30
i = 2 if der[1] < 0x80 else 3
ints = []
for _ in range(2):
    assert der[i] == 0x02
    n = der[i + 1]
    ints.append(int.from_bytes(der[i + 2:i + 2 + n], "big"))
    i += 2 + n
r[0x2A0:0x2E8] = ints[0].to_bytes(72, "little")               # R, little-endian, zero-extended
r[0x2E8:0x330] = ints[1].to_bytes(72, "little")               # S
open("report-v3-test.bin", "wb").write(bytes(r))
json.dump({
    "agent_x25519": agent_x25519.hex(), "agent_ed25519": agent_ed25519.hex(), "nonce": nonce.hex(),
    "report_data": report_data.hex(), "measurement": measurement.hex(),
    "signature_r_be": format(ints[0], "096x"), "signature_s_be": format(ints[1], "096x"),
}, open("report-v3-test.json", "w"), indent=2)
open("report-v3-test.json", "a").write("\n")
PY
echo "rebuilt $(pwd)"
