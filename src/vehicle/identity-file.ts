/**
 * The vehicle identity file `identity.key`: the car's long-term Ed25519 seed.
 *
 * Format: exactly 64 lowercase hexadecimal characters (the 32-byte RFC 8032
 * seed) followed by one "\n". Hex rather than raw bytes so an operator can
 * back it up and restore it with ordinary text tools and see at a glance that
 * it is intact; uppercase hex and a missing final newline are accepted when
 * reading, anything else is CK_STORE_CORRUPT.
 *
 * Guarantees:
 * - The file is written atomically and durably: temp file created with
 *   O_EXCL and mode 0600, written, fsynced, renamed over the final name, then
 *   the directory is fsynced. A power cut leaves either no identity or the
 *   complete one, never a torn file.
 * - Reading opens with O_NOFOLLOW and checks the opened descriptor (fstat):
 *   it must be a regular file granting nothing to group/others, otherwise
 *   CK_STORE_INSECURE_PERMISSIONS (the daemon refuses to start).
 * - `VehicleIdentity` keeps the seed in a private field: it never appears in
 *   JSON.stringify, util.inspect or console.log output; only `exportSeed()`
 *   hands out a copy, for the protocol code that signs challenges.
 *
 * Writers must hold the state-directory lock (state-dir.ts): the temp name is
 * fixed.
 */
import { closeSync, constants, fchmodSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { inspect } from 'node:util';
import { fromHex, toHex, utf8 } from '../core/bytes.js';
import type { Crypto, RandomSource } from '../core/crypto/index.js';
import { CarkeyError } from '../core/errors.js';
import { assertPrivateMode, fsyncDirectory, isMissingFileError, PRIVATE_FILE_MODE, storeIoError } from './state-dir.js';

export const IDENTITY_SEED_LENGTH = 32;
/** 64 hex characters plus a newline, with room to report junk instead of reading it all. */
const MAX_IDENTITY_FILE_BYTES = 256;

/** The vehicle's Ed25519 identity. The seed stays private (see the module header). */
export class VehicleIdentity {
  readonly publicKey: Uint8Array;
  readonly #seed: Uint8Array;
  readonly #crypto: Crypto;

  constructor(seed: Uint8Array, crypto: Crypto) {
    if (seed.length !== IDENTITY_SEED_LENGTH) throw new CarkeyError('CK_CRYPTO_BAD_LENGTH', `identity seed must be ${IDENTITY_SEED_LENGTH} bytes`);
    this.#seed = Uint8Array.from(seed);
    this.#crypto = crypto;
    this.publicKey = crypto.publicKeyFromSeed(this.#seed);
  }

  /** Ed25519 signature by the vehicle key. Callers put a domain-separation label first. */
  sign(message: Uint8Array): Uint8Array {
    return this.#crypto.sign(this.#seed, message);
  }

  /** A copy of the 32-byte seed, for the code that signs protocol messages. Never log it. */
  exportSeed(): Uint8Array {
    return Uint8Array.from(this.#seed);
  }

  toJSON(): { publicKey: string } {
    return { publicKey: toHex(this.publicKey) };
  }

  [inspect.custom](): string {
    return `VehicleIdentity { publicKey: ${toHex(this.publicKey)} }`;
  }
}

/** The file contents for a seed: 64 lowercase hex characters and "\n". */
export function encodeIdentityFile(seed: Uint8Array): Uint8Array {
  if (seed.length !== IDENTITY_SEED_LENGTH) throw new CarkeyError('CK_CRYPTO_BAD_LENGTH', `identity seed must be ${IDENTITY_SEED_LENGTH} bytes`);
  return utf8(`${toHex(seed)}\n`);
}

/** Parse file contents; throws CK_STORE_CORRUPT (without echoing the contents). */
export function decodeIdentityFile(contents: Uint8Array, path: string): Uint8Array {
  let text = new TextDecoder('utf-8', { fatal: false }).decode(contents);
  if (text.endsWith('\n')) text = text.slice(0, -1);
  const seed = text.length === IDENTITY_SEED_LENGTH * 2 ? fromHex(text) : undefined;
  if (seed === undefined) {
    throw new CarkeyError('CK_STORE_CORRUPT', `${path} must hold ${IDENTITY_SEED_LENGTH * 2} hex characters and a newline`, { path });
  }
  return seed;
}

/**
 * Read the seed from `path`. Returns undefined when the file does not exist;
 * throws CK_STORE_INSECURE_PERMISSIONS, CK_STORE_CORRUPT or CK_STORE_IO.
 */
export function readIdentityFile(path: string): Uint8Array | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if (isMissingFileError(error)) return undefined;
    throw storeIoError('cannot open', path, error);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new CarkeyError('CK_STORE_CORRUPT', `${path} is not a regular file`, { path });
    assertPrivateMode(path, stats, 'file');
    const buffer = new Uint8Array(MAX_IDENTITY_FILE_BYTES + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > MAX_IDENTITY_FILE_BYTES) break;
    }
    return decodeIdentityFile(buffer.subarray(0, length), path);
  } catch (error) {
    throw storeIoError('cannot read', path, error);
  } finally {
    closeSync(fd);
  }
}

/** Write `seed` to `path` atomically and durably with mode 0600 (see the module header). */
export function writeIdentityFileAtomic(path: string, seed: Uint8Array): void {
  const contents = encodeIdentityFile(seed);
  const temp = `${path}.tmp`;
  try {
    unlinkSync(temp);
  } catch (error) {
    if (!isMissingFileError(error)) throw storeIoError('cannot remove stale', temp, error);
  }
  try {
    const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, PRIVATE_FILE_MODE);
    try {
      fchmodSync(fd, PRIVATE_FILE_MODE);
      let written = 0;
      while (written < contents.length) written += writeSync(fd, contents, written, contents.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    throw storeIoError('cannot write', path, error);
  }
  fsyncDirectory(dirname(path));
}

export interface LoadIdentityOptions {
  readonly crypto: Crypto;
  /** source of a new seed; omit to forbid creating one */
  readonly random?: RandomSource;
}

export interface LoadedIdentity {
  readonly identity: VehicleIdentity;
  /** true when the file did not exist and a new seed was written */
  readonly created: boolean;
}

/**
 * Load the identity at `path`, creating it from `random` when missing and
 * `random` is given. Without `random` a missing file is CK_STORE_CORRUPT.
 */
export function loadOrCreateIdentity(path: string, options: LoadIdentityOptions): LoadedIdentity {
  const existing = readIdentityFile(path);
  if (existing !== undefined) return { identity: new VehicleIdentity(existing, options.crypto), created: false };
  if (options.random === undefined) throw new CarkeyError('CK_STORE_CORRUPT', `${path} is missing`, { path });
  const seed = options.random(IDENTITY_SEED_LENGTH);
  if (seed.length !== IDENTITY_SEED_LENGTH) throw new CarkeyError('CK_INTERNAL', 'random source returned the wrong number of bytes');
  writeIdentityFileAtomic(path, seed);
  return { identity: new VehicleIdentity(seed, options.crypto), created: true };
}
