/**
 * Passphrase encryption for the browser: PBKDF2-SHA-256 (600 000 rounds) to
 * an AES-256-GCM key, both WebCrypto. Used for a passphrase-protected phone
 * key at rest and for the export file.
 *
 * Format (JSON-safe): { kdf: "PBKDF2-SHA-256", iterations, salt, cipher:
 * "AES-256-GCM", iv, ciphertext } with base64url fields; `aad` binds a
 * purpose label so a key blob cannot be passed off as an export or back.
 * Guarantees: a wrong passphrase or any altered byte is CK_PHONE_BAD_PASSPHRASE;
 * a malformed blob is CK_PHONE_STORE_CORRUPT. Never logs or returns the key.
 */
import { fromBase64Url, toBase64Url, utf8 } from '../../core/bytes.js';
import { CarkeyError } from '../../core/errors.js';

export const PBKDF2_ITERATIONS = 600_000;

export interface EncryptedBlob {
  readonly kdf: 'PBKDF2-SHA-256';
  readonly iterations: number;
  readonly salt: string;
  readonly cipher: 'AES-256-GCM';
  readonly iv: string;
  readonly ciphertext: string;
}

async function deriveKey(passphrase: string, salt: Uint8Array<ArrayBuffer>, iterations: number): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', utf8(passphrase) as Uint8Array<ArrayBuffer>, 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

export async function encryptWithPassphrase(plaintext: Uint8Array, passphrase: string, purpose: string): Promise<EncryptedBlob> {
  if (passphrase.length < 8) throw new CarkeyError('CK_USAGE', 'the passphrase must have at least 8 characters');
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await deriveKey(passphrase, salt, PBKDF2_ITERATIONS);
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: utf8(purpose) as Uint8Array<ArrayBuffer> }, key, Uint8Array.from(plaintext));
  return { kdf: 'PBKDF2-SHA-256', iterations: PBKDF2_ITERATIONS, salt: toBase64Url(salt), cipher: 'AES-256-GCM', iv: toBase64Url(iv), ciphertext: toBase64Url(new Uint8Array(sealed)) };
}

export function parseBlob(value: unknown, what: string): EncryptedBlob {
  const blob = value as Partial<EncryptedBlob> | null;
  const ok =
    typeof blob === 'object' && blob !== null && blob.kdf === 'PBKDF2-SHA-256' && blob.cipher === 'AES-256-GCM' &&
    typeof blob.iterations === 'number' && Number.isInteger(blob.iterations) && blob.iterations >= 100_000 && blob.iterations <= 10_000_000 &&
    typeof blob.salt === 'string' && typeof blob.iv === 'string' && typeof blob.ciphertext === 'string';
  if (!ok) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `${what}: not an encrypted carkey blob`);
  return blob as EncryptedBlob;
}

export async function decryptWithPassphrase(blob: EncryptedBlob, passphrase: string, purpose: string): Promise<Uint8Array> {
  const salt = fromBase64Url(blob.salt);
  const iv = fromBase64Url(blob.iv);
  const ciphertext = fromBase64Url(blob.ciphertext);
  if (salt === undefined || iv === undefined || iv.length !== 12 || ciphertext === undefined) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'encrypted blob fields');
  const key = await deriveKey(passphrase, Uint8Array.from(salt), blob.iterations);
  try {
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: Uint8Array.from(iv), additionalData: utf8(purpose) as Uint8Array<ArrayBuffer> }, key, Uint8Array.from(ciphertext));
    return new Uint8Array(plain);
  } catch {
    throw new CarkeyError('CK_PHONE_BAD_PASSPHRASE');
  }
}
