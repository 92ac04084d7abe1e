/**
 * Passphrase protection of the phone's Ed25519 seed.
 *
 * Construction (fixed; the parameters are stored next to the box so they can
 * be raised later without breaking old files):
 *   key = scrypt(passphrase as NFC UTF-8, salt 16 bytes, N = 2^15, r = 8, p = 1, 32 bytes)
 *   box = XSalsa20-Poly1305 secretbox(seed, nonce 24 bytes, key)   (core Crypto)
 *
 * Guarantees: a wrong passphrase (or a tampered box) is CK_PHONE_BAD_PASSPHRASE,
 * never a wrong seed; stored parameters are range-checked before scrypt runs
 * (CK_PHONE_STORE_CORRUPT), so a crafted file cannot make us burn gigabytes.
 * Salt and nonce come from the injected RNG.
 */
import { scrypt } from 'node:crypto';
import { fromHex, toHex } from '../core/bytes.js';
import type { Crypto, RandomSource } from '../core/crypto/index.js';
import { CarkeyError } from '../core/errors.js';

export const SCRYPT_N = 2 ** 15;
export const SCRYPT_R = 8;
export const SCRYPT_P = 1;
export const SCRYPT_SALT_LENGTH = 16;
export const SCRYPT_KEY_LENGTH = 32;
const MIN_LOG2_N = 14;
const MAX_LOG2_N = 20;
const MAX_P = 4;

export interface EncryptedSeed {
  readonly kdf: 'scrypt';
  readonly n: number;
  readonly r: number;
  readonly p: number;
  readonly salt: string;
  readonly cipher: 'xsalsa20-poly1305';
  readonly nonce: string;
  readonly box: string;
}

function deriveKey(passphrase: string, salt: Uint8Array, n: number, r: number, p: number): Promise<Uint8Array> {
  const maxmem = 256 * n * r + 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(Buffer.from(passphrase.normalize('NFC'), 'utf8'), salt, SCRYPT_KEY_LENGTH, { N: n, r, p, maxmem }, (error, key) => {
      if (error === null) resolve(new Uint8Array(key));
      else reject(new CarkeyError('CK_INTERNAL', `scrypt failed: ${error.message}`, undefined, { cause: error }));
    });
  });
}

export async function encryptSeed(crypto: Crypto, random: RandomSource, seed: Uint8Array, passphrase: string): Promise<EncryptedSeed> {
  if (passphrase.length === 0) throw new CarkeyError('CK_USAGE', 'the passphrase must not be empty');
  const salt = random(SCRYPT_SALT_LENGTH);
  const nonce = random(24);
  const key = await deriveKey(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P);
  const box = crypto.seal(seed, nonce, key);
  key.fill(0);
  return { kdf: 'scrypt', n: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P, salt: toHex(salt), cipher: 'xsalsa20-poly1305', nonce: toHex(nonce), box: toHex(box) };
}

function corrupt(path: string, detail: string): CarkeyError {
  return new CarkeyError('CK_PHONE_STORE_CORRUPT', `${path}: ${detail}`, { path });
}

/** Check the stored parameters of an encrypted seed (shape only, no crypto). */
export function parseEncryptedSeed(value: Record<string, unknown>, path: string): EncryptedSeed {
  const { kdf, n, r, p, salt, cipher, nonce, box } = value;
  if (kdf !== 'scrypt' || cipher !== 'xsalsa20-poly1305') throw corrupt(path, 'unknown key encryption');
  if (typeof n !== 'number' || !Number.isInteger(Math.log2(n)) || Math.log2(n) < MIN_LOG2_N || Math.log2(n) > MAX_LOG2_N) throw corrupt(path, 'scrypt N out of range');
  if (r !== SCRYPT_R) throw corrupt(path, 'scrypt r must be 8');
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > MAX_P) throw corrupt(path, 'scrypt p out of range');
  const hexOf = (field: unknown, length: number, what: string): string => {
    if (typeof field !== 'string' || fromHex(field)?.length !== length) throw corrupt(path, `${what} must be ${length} bytes of hex`);
    return field;
  };
  return {
    kdf,
    n,
    r,
    p,
    salt: hexOf(salt, SCRYPT_SALT_LENGTH, 'salt'),
    cipher,
    nonce: hexOf(nonce, 24, 'nonce'),
    box: hexOf(box, 32 + 16, 'box'),
  };
}

/** Open the box; CK_PHONE_BAD_PASSPHRASE when the passphrase is wrong. */
export async function decryptSeed(crypto: Crypto, encrypted: EncryptedSeed, passphrase: string): Promise<Uint8Array> {
  const salt = fromHex(encrypted.salt);
  const nonce = fromHex(encrypted.nonce);
  const box = fromHex(encrypted.box);
  if (salt === undefined || nonce === undefined || box === undefined) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'encrypted key is not hex');
  const key = await deriveKey(passphrase, salt, encrypted.n, encrypted.r, encrypted.p);
  const opened = crypto.open(box, nonce, key);
  key.fill(0);
  if (!opened.ok) throw new CarkeyError('CK_PHONE_BAD_PASSPHRASE');
  return opened.value;
}
