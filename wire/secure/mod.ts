/**
 * The secure channel and the keys behind it, bottom up:
 * - `noise.ts`: the Noise_IK_25519_AESGCM_SHA256 handshake ({@linkcode HandshakeState})
 * - `secure_stream.ts`: {@linkcode initiateSecure}, {@linkcode acceptSecure}, {@linkcode SecureStream}
 * - `replay.ts`: message 1 timestamps and {@linkcode ReplayGuard}
 * - `mac1.ts`: the MAC ending message 1, checked before any Diffie-Hellman ({@linkcode checkMac1})
 * - `keys.ts`: identities and key files ({@linkcode generateIdentity}, {@linkcode readIdentity})
 * - `sign.ts`: eBPF object signatures ({@linkcode signObject}, {@linkcode verifyObject})
 *
 * @module
 */

export {
  CipherState,
  generateKeyPair,
  type HandshakeOptions,
  HandshakeState,
  type KeyPair,
  keyPairFromPrivateKey,
  MAX_MESSAGE_BYTES,
  NoiseError,
  type NoiseErrorCode,
  PROTOCOL_NAME,
  type Role,
  SymmetricState,
  type TransportState,
} from "./noise.ts";
export {
  type AcceptOptions,
  acceptSecure,
  BUSY_NOTICE,
  DEFAULT_PROLOGUE,
  HANDSHAKE_TIMEOUT_MS,
  type InitiateOptions,
  initiateSecure,
  MAX_CHUNK_BYTES,
  type PreparedInitiator,
  prepareInitiator,
  SecureChannelError,
  type SecureChannelErrorCode,
  SecureStream,
  sendBusyNotice,
} from "./secure_stream.ts";
export { appendMac1, checkMac1, MAC1_BYTES } from "./mac1.ts";
export {
  decodeTimestamp,
  DEFAULT_REPLAY_LIMITS,
  encodeTimestamp,
  ReplayGuard,
  type ReplayLimits,
  type ReplayVerdict,
  TIMESTAMP_BYTES,
  timestampNow,
} from "./replay.ts";
export {
  formatPublicKey,
  generateIdentity,
  type Identity,
  IDENTITY_FILE,
  KeyFileError,
  parsePublicKey,
  type PublicIdentity,
  publicIdentity,
  readIdentity,
  readPublicKey,
  readTrustedKeys,
  sameKeys,
  writeIdentity,
} from "./keys.ts";
export {
  OBJECT_SIGNATURE_DOMAIN,
  SIGNATURE_BYTES,
  SignatureError,
  signObject,
  verifyObject,
} from "./sign.ts";
