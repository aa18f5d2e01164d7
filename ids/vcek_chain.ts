/**
 * AMD's certificate chain of a chip's VCEK: ARK (AMD Root Key, self-signed) → ASK (AMD SEV Key)
 * → VCEK. The operator supplies the ASK and the ARK (AMD's Key Distribution Service serves them
 * as one PEM file, `cert_chain`: ASK then ARK); this checks that they chain: each certificate is
 * issued by the next (names, and the signature with the issuer's key), the ARK signs itself, and
 * all are valid now. Whether the ARK is AMD's is the operator's to know (compare its fingerprint
 * with AMD's published one): AMD's service is not reachable from here.
 *
 * Certificates are read with `node:crypto`'s `X509Certificate`. AMD signs all three with
 * RSASSA-PSS (SHA-384, MGF1 with SHA-384, 48-byte salt); Deno's `X509Certificate.verify()`
 * answers false for every RSASSA-PSS signature (Deno 2.9.6, checked against chains openssl
 * verifies), so the signature is checked with `node:crypto`'s `verify()` over the certificate's
 * `tbsCertificate`, split out of its DER (the three elements of RFC 5280's `Certificate`), and
 * only AMD's exact algorithm parameters are accepted.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { constants, createPublicKey, verify, X509Certificate } from "node:crypto";
import { CodedError } from "../wire/coded_error.ts";
import { equalBytes } from "../wire/bytes.ts";

/** A certificate chain that does not hold. */
export class ChainError extends CodedError<"chain"> {
  override readonly name = "ChainError";
  /** @param message what does not hold, in one sentence */
  constructor(message: string, options?: ErrorOptions) {
    super("chain", message, options);
  }
}

/**
 * The DER AlgorithmIdentifier of AMD's certificate signatures: id-RSASSA-PSS
 * (1.2.840.113549.1.1.10) with RSASSA-PSS-params { hashAlgorithm sha384, maskGenAlgorithm
 * mgf1(sha384), saltLength 48 } (RFC 4055).
 */
const AMD_PSS_ALGORITHM = Uint8Array.from(
  ("304106092a864886f70d01010a3034a00f300d06096086480165030402020500" +
    "a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130")
    .match(/../g)!.map((pair) => parseInt(pair, 16)),
);

/** Where a DER element's contents start and end, after its tag and length at `offset`. */
function element(der: Uint8Array, offset: number): { contents: number; end: number } {
  let length = der[offset + 1] ?? 0;
  let contents = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[contents + i] ?? 0);
    contents += count;
  }
  return { contents, end: contents + length };
}

/**
 * The three elements of a certificate's DER (X509Certificate parsed it already, so it is
 * well-formed): tbsCertificate (whole), signatureAlgorithm (whole), and the signature's bytes.
 */
function certificateParts(
  cert: X509Certificate,
): { tbs: Uint8Array; algorithm: Uint8Array; signature: Uint8Array } {
  const der = new Uint8Array(cert.raw);
  const outer = element(der, 0);
  const tbs = element(der, outer.contents);
  const algorithm = element(der, tbs.end);
  const signature = element(der, algorithm.end);
  return {
    tbs: der.subarray(outer.contents, tbs.end),
    algorithm: der.subarray(tbs.end, algorithm.end),
    // A BIT STRING's first content byte counts the unused bits (0 for a signature).
    signature: der.subarray(signature.contents + 1, signature.end),
  };
}

/** Whether `issuer`'s key made `cert`'s signature, with AMD's RSASSA-PSS parameters. */
function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  const { tbs, algorithm, signature } = certificateParts(cert);
  if (!equalBytes(algorithm, AMD_PSS_ALGORITHM)) return false;
  const key = issuer.publicKey;
  if (key.asymmetricKeyType !== "rsa") return false;
  return verify("sha384", tbs, {
    key,
    padding: constants.RSA_PKCS1_PSS_PADDING,
    saltLength: 48,
  }, signature);
}

/** How a certificate is named in messages: its common name, else its whole subject. */
function named(cert: X509Certificate): string {
  const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  return cn ?? cert.subject.replaceAll("\n", ", ");
}

/**
 * Reads the certificates of a PEM text (every CERTIFICATE block, in order) or of DER bytes (one
 * certificate).
 *
 * @throws {ChainError} when there is none, or one cannot be read.
 */
export function readCertificates(input: string | Uint8Array, what: string): X509Certificate[] {
  const text = typeof input === "string" ? input : new TextDecoder().decode(input);
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  try {
    if (blocks !== null) return blocks.map((block) => new X509Certificate(block));
    if (typeof input === "string") throw new Error("no CERTIFICATE block found");
    return [new X509Certificate(input)];
  } catch (error) {
    throw new ChainError(`Cannot read the certificates of ${what}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Checks that `vcek` chains to a self-signed ARK through an ASK, both in `chain` (in any order),
 * and that all three are valid at `now`.
 *
 * @throws {ChainError} naming the first link that does not hold.
 */
export function verifyVcekChain(
  vcek: X509Certificate,
  chain: readonly X509Certificate[],
  now: Date = new Date(),
): void {
  if (chain.length !== 2) {
    throw new ChainError(
      `The chain file must hold two certificates (the ASK and the ARK), found ${chain.length}`,
    );
  }
  const ark = chain.find((cert) => cert.checkIssued(cert));
  const ask = chain.find((cert) => cert !== ark);
  if (ark === undefined || ask === undefined) {
    throw new ChainError("The chain file holds no self-issued certificate (the ARK)");
  }
  for (const [cert, role] of [[ark, "ARK"], [ask, "ASK"], [vcek, "VCEK"]] as const) {
    if (now < cert.validFromDate || now > cert.validToDate) {
      throw new ChainError(
        `The ${role} (${
          named(cert)
        }) is not valid now: valid from ${cert.validFrom} to ${cert.validTo}`,
      );
    }
  }
  const links = [
    [ark, ark, "The ARK", "itself"],
    [ask, ark, "The ASK", "the ARK"],
    [vcek, ask, "The VCEK", "the ASK"],
  ] as const;
  for (const [cert, issuer, role, by] of links) {
    if (!cert.checkIssued(issuer) || !signedBy(cert, issuer)) {
      throw new ChainError(
        `${role} (${named(cert)}) is not signed by ${by} (${
          named(issuer)
        }) with RSASSA-PSS SHA-384: the chain is broken`,
      );
    }
  }
}

/** The SubjectPublicKeyInfo (DER) of a certificate's or a public key's PEM or DER. */
export function subjectPublicKeyInfo(input: string | Uint8Array): Uint8Array<ArrayBuffer> {
  let key;
  if (typeof input === "string") {
    const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(input)?.[1];
    if (label === undefined) throw new Error("no PEM block found");
    if (label === "CERTIFICATE") key = new X509Certificate(input).publicKey;
    else if (label === "PUBLIC KEY") key = createPublicKey(input);
    else throw new Error(`PEM block is ${label}, expected CERTIFICATE or PUBLIC KEY`);
  } else {
    try {
      key = new X509Certificate(input).publicKey;
    } catch {
      key = createPublicKey({ key: Buffer.from(input), format: "der", type: "spki" });
    }
  }
  return new Uint8Array(key.export({ type: "spki", format: "der" }));
}
