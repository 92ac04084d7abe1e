/**
 * The one error catalog of carkey.
 *
 * Guarantees:
 * - Every error any carkey module raises or returns is a `CarkeyError` whose
 *   `code` is one of the stable codes below (`CK_<AREA>_<WHAT>`). Codes are
 *   never renamed or reused; new ones are appended to their section.
 * - `exitCode` maps an error to the CLI's documented process exit code, so the
 *   same failure means the same thing to a script everywhere.
 * - Messages never contain key material; `details` is plain data safe to log
 *   (the logger redacts key/signature fields anyway).
 */

/** Process exit codes shared by `carkey`, `carkeyd` and `carkey-cloud`. */
export const ExitCode = {
  ok: 0,
  /** unexpected internal failure */
  internal: 1,
  /** bad flags, bad file, bad input from the user */
  badInput: 2,
  /** the car (or cloud) answered and refused: not permitted, expired, revoked */
  denied: 3,
  /** not found: no such vehicle/key, car not in range, not paired */
  notFound: 4,
  /** timed out: scanning, connecting, waiting for an answer */
  timeout: 5,
  /** no BLE adapter / radio unavailable / hardware link unavailable */
  unavailable: 6,
  /** local state problem: corrupt store, wrong passphrase, audit chain broken */
  state: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

interface CatalogEntry {
  readonly message: string;
  readonly exit: ExitCode;
}

/**
 * The catalog. Keys are the stable codes. Keep sections in order:
 * core crypto, codec/framing, protocol/session, credentials/policy, transport,
 * hardware, vehicle daemon, phone/CLI, config.
 */
export const Catalog = {
  // --- core: crypto --------------------------------------------------------
  CK_CRYPTO_BAD_LENGTH: { message: 'key, signature or nonce has the wrong length', exit: ExitCode.badInput },
  CK_CRYPTO_NONCANONICAL_KEY: { message: 'public key is not canonically encoded', exit: ExitCode.badInput },
  CK_CRYPTO_SMALL_ORDER_KEY: { message: 'public key has small order', exit: ExitCode.badInput },
  CK_CRYPTO_ZERO_SHARED_SECRET: { message: 'X25519 produced an all-zero shared secret', exit: ExitCode.badInput },
  CK_CRYPTO_BAD_SIGNATURE: { message: 'signature does not verify', exit: ExitCode.denied },
  CK_CRYPTO_DECRYPT_FAILED: { message: 'authenticated decryption failed', exit: ExitCode.badInput },
  CK_CRYPTO_BACKEND_UNAVAILABLE: { message: 'crypto backend is not available on this platform', exit: ExitCode.unavailable },

  // --- core: codec and framing ----------------------------------------------
  CK_CODEC_TRUNCATED: { message: 'message is shorter than its format requires', exit: ExitCode.badInput },
  CK_CODEC_TRAILING_BYTES: { message: 'message has bytes after its end', exit: ExitCode.badInput },
  CK_CODEC_BAD_VERSION: { message: 'unsupported protocol version', exit: ExitCode.badInput },
  CK_CODEC_BAD_TYPE: { message: 'unknown message type', exit: ExitCode.badInput },
  CK_CODEC_BAD_VALUE: { message: 'a field has a value outside its range', exit: ExitCode.badInput },
  CK_CODEC_TOO_LARGE: { message: 'message exceeds the size cap', exit: ExitCode.badInput },
  CK_FRAME_BAD_HEADER: { message: 'frame chunk has a bad header', exit: ExitCode.badInput },
  CK_FRAME_OUT_OF_ORDER: { message: 'frame chunk arrived out of order', exit: ExitCode.badInput },
  CK_FRAME_OVERFLOW: { message: 'frame chunk runs past the declared length', exit: ExitCode.badInput },
  CK_FRAME_TIMEOUT: { message: 'frame chunks stopped arriving before the message was complete', exit: ExitCode.timeout },
  CK_FRAME_BAD_MTU: { message: 'MTU is outside the supported range', exit: ExitCode.badInput },

  // --- core: protocol and sessions ------------------------------------------
  CK_PROTO_UNEXPECTED_MESSAGE: { message: 'message not expected in this session state', exit: ExitCode.badInput },
  CK_PROTO_REFUSED: { message: 'the car refused the request', exit: ExitCode.denied },
  CK_PROTO_BAD_CAR_SIGNATURE: { message: "the car's signature does not verify against the pinned key: not your car, or a spoofed one", exit: ExitCode.denied },
  CK_PROTO_BAD_PHONE_SIGNATURE: { message: 'phone signature does not verify', exit: ExitCode.denied },
  CK_PROTO_CHALLENGE_EXPIRED: { message: 'challenge expired before the request arrived', exit: ExitCode.denied },
  CK_PROTO_REPLAY: { message: 'replayed or out-of-sequence message', exit: ExitCode.denied },
  CK_PROTO_SESSION_CLOSED: { message: 'session is closed', exit: ExitCode.badInput },
  CK_PROTO_PAIRING_COMMITMENT: { message: 'pairing commitment does not match the revealed nonce', exit: ExitCode.denied },
  CK_PROTO_PAIRING_NOT_CONFIRMED: { message: 'pairing was not confirmed on the car', exit: ExitCode.denied },
  CK_PROTO_NO_ANSWER: { message: 'the car closed the connection without answering; the command may or may not have been carried out', exit: ExitCode.unavailable },

  // --- core: credentials and policy -----------------------------------------
  CK_CRED_BAD_SIGNATURE: { message: 'credential signature does not verify', exit: ExitCode.denied },
  CK_CRED_WRONG_VEHICLE: { message: 'credential is for another vehicle', exit: ExitCode.denied },
  CK_CRED_BAD_WINDOW: { message: 'validity window is empty or too long for the role', exit: ExitCode.badInput },
  CK_KEYLIST_ROLLBACK: { message: 'key list version is not newer than the current one', exit: ExitCode.denied },
  CK_KEYLIST_VERSION_JUMP: { message: 'key list version moves too far ahead of the current one', exit: ExitCode.denied },
  CK_KEYLIST_VERSION_EXHAUSTED: { message: 'the key list version space of this epoch is used up; a factory reset starts a fresh one', exit: ExitCode.denied },
  CK_KEYLIST_WRONG_EPOCH: { message: 'key list belongs to another epoch of this car (made before or after a factory reset)', exit: ExitCode.denied },
  CK_KEYLIST_NOT_OWNER: { message: 'key list is not signed by a current owner', exit: ExitCode.denied },
  CK_KEYLIST_EMPTY_OWNERS: { message: 'key list must name at least one owner', exit: ExitCode.badInput },
  CK_KEYLIST_TOO_LARGE: { message: 'key list exceeds its limits', exit: ExitCode.badInput },

  // --- transport (sim radio, BLE) -------------------------------------------
  CK_TRANSPORT_NO_ADAPTER: { message: 'no Bluetooth adapter available; use --transport sim to run on the simulated radio', exit: ExitCode.unavailable },
  CK_TRANSPORT_NOT_FOUND: { message: 'car not found while scanning (out of range or not advertising)', exit: ExitCode.notFound },
  CK_TRANSPORT_CONNECT_FAILED: { message: 'could not connect to the car', exit: ExitCode.unavailable },
  CK_TRANSPORT_TIMEOUT: { message: 'the link timed out', exit: ExitCode.timeout },
  CK_TRANSPORT_DISCONNECTED: { message: 'the link was disconnected', exit: ExitCode.unavailable },
  CK_TRANSPORT_RADIO_UNAVAILABLE: { message: 'the simulated radio broker is not reachable', exit: ExitCode.unavailable },
  CK_TRANSPORT_CHUNK_TOO_LARGE: { message: 'chunk is larger than the negotiated MTU allows (mtu - 3 bytes)', exit: ExitCode.internal },
  CK_TRANSPORT_NOT_SUBSCRIBED: { message: 'the phone has not subscribed to notifications on this link', exit: ExitCode.internal },
  CK_TRANSPORT_NOT_STARTED: { message: 'the transport is not started or was already stopped', exit: ExitCode.internal },
  CK_TRANSPORT_RADIO_PROTOCOL: { message: 'malformed or invalid message on the simulated radio socket', exit: ExitCode.internal },
  CK_TRANSPORT_EMULATOR_UNAVAILABLE: { message: 'the btvirt emulated BLE controllers could not start', exit: ExitCode.unavailable },

  // --- hardware (firmware-sim / body controller) ----------------------------
  CK_HW_UNAVAILABLE: { message: 'the body controller is not reachable', exit: ExitCode.unavailable },
  CK_HW_TIMEOUT: { message: 'the body controller did not answer in time', exit: ExitCode.timeout },
  CK_HW_REJECTED: { message: 'the body controller rejected the command', exit: ExitCode.internal },
  CK_HW_BAD_REPLY: { message: 'the body controller sent a malformed reply', exit: ExitCode.internal },

  // --- vehicle daemon ---------------------------------------------------------
  CK_STORE_CORRUPT: { message: 'the state store is corrupt', exit: ExitCode.state },
  CK_STORE_LOCKED: { message: 'the state directory is in use by another carkeyd', exit: ExitCode.state },
  CK_STORE_INSECURE_PERMISSIONS: { message: 'a state file or directory is accessible to other users', exit: ExitCode.state },
  CK_STORE_IO: { message: 'the state directory could not be read or written', exit: ExitCode.state },
  CK_AUDIT_CHAIN_BROKEN: { message: 'the audit chain does not verify', exit: ExitCode.state },
  CK_PAIRING_NOT_ACTIVE: { message: 'the car is not in pairing mode (press the pairing button or tap the keycard)', exit: ExitCode.denied },
  CK_REMOTE_EXPIRED: { message: 'the remote command expired before the car received it', exit: ExitCode.timeout },
  CK_PAIRING_BUSY: { message: 'another phone is pairing with this car right now; wait for the pairing window to close and try again', exit: ExitCode.denied },
  CK_RATE_LIMITED: { message: 'too many requests; try again shortly', exit: ExitCode.denied },
  CK_REMOTE_INTERRUPTED: { message: 'the car restarted while carrying out the remote command; it may or may not have been carried out', exit: ExitCode.unavailable },
  CK_SYNC_OUTBOX_FULL: { message: 'the sync outbox is full; remote commands wait in the cloud until results are delivered', exit: ExitCode.unavailable },
  CK_SYNC_CIRCUIT_OPEN: { message: 'the cloud failed repeatedly; the sync worker waits before it tries again', exit: ExitCode.unavailable },
  CK_STORE_NOT_INITIALIZED: { message: 'the state directory holds no car identity', exit: ExitCode.state },
  CK_STATUS_PORT_UNAVAILABLE: { message: 'the status port cannot be opened (in use by another process, or not allowed)', exit: ExitCode.unavailable },

  // --- phone / CLI ------------------------------------------------------------
  CK_PHONE_NOT_PAIRED: { message: 'no paired vehicle by that name; pair first with `carkey pair`', exit: ExitCode.notFound },
  CK_PHONE_NO_CREDENTIAL: { message: 'no usable key for this vehicle (expired or not accepted yet)', exit: ExitCode.denied },
  CK_PHONE_BAD_PASSPHRASE: { message: 'wrong passphrase for the key store', exit: ExitCode.state },
  CK_PHONE_STORE_CORRUPT: { message: 'the phone key store is unreadable', exit: ExitCode.state },
  CK_PHONE_AMBIGUOUS_VEHICLE: { message: 'several vehicles are paired; choose one with --vehicle NAME', exit: ExitCode.badInput },
  CK_DENIED: { message: 'the car denied the command', exit: ExitCode.denied },
  CK_PHONE_NO_IDENTITY: { message: 'this phone has no key yet; create one with `carkey keygen`', exit: ExitCode.state },
  CK_PHONE_IDENTITY_EXISTS: { message: 'this key store already has a key; it is never overwritten (use another --home for a new one)', exit: ExitCode.badInput },
  CK_PHONE_NEED_PASSPHRASE: { message: 'the key is encrypted and no passphrase was given (use --passphrase-file FILE, $CARKEY_PASSPHRASE or a terminal)', exit: ExitCode.badInput },
  CK_PHONE_STORE_BUSY: { message: 'the key store is being changed by another carkey process; try again', exit: ExitCode.state },
  CK_PHONE_NOT_OWNER: { message: 'this phone is not an owner of that vehicle', exit: ExitCode.denied },
  CK_PHONE_VEHICLE_EXISTS: { message: 'a vehicle by that name is already stored; choose another name with --name', exit: ExitCode.badInput },
  CK_PHONE_BAD_SHARE: { message: 'not a valid carkey share (expected carkey1:... or a share file)', exit: ExitCode.badInput },
  CK_PHONE_SHARE_NOT_FOR_ME: { message: 'this key was issued to another phone; send the owner the public key from `carkey whoami`', exit: ExitCode.badInput },
  CK_PHONE_COMMAND_FAILED: { message: 'the car accepted the command but could not carry it out', exit: ExitCode.unavailable },
  CK_PHONE_DELIVERY_FAILED: { message: 'the car did not take the queued key list; it stays queued', exit: ExitCode.denied },
  CK_PHONE_CLOUD_UNAVAILABLE: { message: 'not available yet: this comes with carkey-cloud; every other command works over Bluetooth without it', exit: ExitCode.badInput },
  CK_PHONE_BAD_LABEL: { message: 'not a valid grant label (1 to 64 characters of printable text after trimming)', exit: ExitCode.badInput },
  CK_PHONE_NO_SUCH_GRANT: { message: 'no grant issued from this phone matches', exit: ExitCode.notFound },

  // --- cloud (carkey-cloud and its clients) -----------------------------------
  CK_CLOUD_AUTH_MISSING: { message: 'the request carries no valid carkey signature headers', exit: ExitCode.denied },
  CK_CLOUD_AUTH_STALE: { message: 'the request time is outside the replay window (check this clock)', exit: ExitCode.denied },
  CK_CLOUD_AUTH_BAD_SIGNATURE: { message: 'the request signature does not verify', exit: ExitCode.denied },
  CK_CLOUD_AUTH_REPLAY: { message: 'this request nonce was already used', exit: ExitCode.denied },
  CK_CLOUD_FORBIDDEN: { message: 'this key may not do that (or the resource does not exist)', exit: ExitCode.denied },
  CK_CLOUD_BAD_REQUEST: { message: 'the cloud refused a malformed request', exit: ExitCode.badInput },
  CK_CLOUD_CONFLICT: { message: 'the document does not follow the one the cloud holds (older version, other epoch, or not signed by an owner)', exit: ExitCode.denied },
  CK_CLOUD_RATE_LIMITED: { message: 'too many requests to the cloud; try again shortly', exit: ExitCode.unavailable },
  CK_CLOUD_UNAVAILABLE: { message: 'the cloud could not be reached', exit: ExitCode.unavailable },
  CK_CLOUD_SERVER_ERROR: { message: 'the cloud answered with a server error', exit: ExitCode.unavailable },
  CK_CLOUD_TIMEOUT: { message: 'the cloud did not answer in time', exit: ExitCode.timeout },
  CK_CLOUD_BAD_RESPONSE: { message: 'the cloud sent an answer that does not parse or verify', exit: ExitCode.unavailable },
  CK_CLOUD_STORE: { message: 'the cloud database failed', exit: ExitCode.unavailable },

  // --- configuration ----------------------------------------------------------
  CK_CONFIG_INVALID: { message: 'invalid configuration', exit: ExitCode.badInput },
  CK_USAGE: { message: 'invalid command line', exit: ExitCode.badInput },
  CK_INTERNAL: { message: 'internal error', exit: ExitCode.internal },
} as const satisfies Record<string, CatalogEntry>;

export type ErrorCode = keyof typeof Catalog;

/** The single error type. `code` is stable; `message` is for people. */
export class CarkeyError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, detail?: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    const base = Catalog[code].message;
    super(detail === undefined ? base : `${base}: ${detail}`, options);
    this.name = 'CarkeyError';
    this.code = code;
    this.details = details;
  }

  get exitCode(): ExitCode {
    return Catalog[this.code].exit;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Is `code` one of the catalog's codes (e.g. one a server sent)? */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(Catalog, code);
}

export function isCarkeyError(value: unknown, code?: ErrorCode): value is CarkeyError {
  return value instanceof CarkeyError && (code === undefined || value.code === code);
}

/** Typed result for paths that must never throw (verify, decode of radio input). */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: CarkeyError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(code: ErrorCode, detail?: string, details?: Record<string, unknown>): Result<T> {
  return { ok: false, error: new CarkeyError(code, detail, details) };
}

/** Map any thrown value into a CarkeyError (unknown values become CK_INTERNAL). */
export function toCarkeyError(value: unknown): CarkeyError {
  if (value instanceof CarkeyError) return value;
  const detail = value instanceof Error ? value.message : String(value);
  return new CarkeyError('CK_INTERNAL', detail, undefined, { cause: value });
}
