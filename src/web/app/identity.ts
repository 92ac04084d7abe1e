/**
 * This phone's key in the browser, and how it is protected.
 *
 * - device-bound: an Ed25519 key made by WebCrypto with `extractable: false`.
 *   Page script (ours included) can ask the browser to sign with it but can
 *   never read it; the CryptoKey object is stored in IndexedDB as is. It
 *   cannot be exported, so it cannot move to another phone (pair the new
 *   phone as another owner instead).
 * - passphrase: a 32-byte Ed25519 seed from the browser's RNG, kept only
 *   encrypted (secret-box.ts) and signed with through tweetnacl after the
 *   person types the passphrase; it can be exported (encrypted) and moved.
 *
 * The app offers device-bound where the browser supports WebCrypto Ed25519
 * (checked by making a key, signing and verifying the signature with core's
 * strict verify) and says on screen which protection is in force.
 */
import { fromHex, toHex } from '../../core/bytes.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { CarkeyError } from '../../core/errors.js';
import { seedSigner, type Signer } from '../../core/signer.js';
import { decryptWithPassphrase, encryptWithPassphrase, type EncryptedBlob } from './secret-box.js';

export type Protection = 'device-bound' | 'passphrase';

export const SEED_PURPOSE = 'carkey/web/identity-seed';

export type StoredIdentity =
  | { readonly format: 1; readonly publicKey: string; readonly createdAt: number; readonly protection: 'device-bound'; readonly privateKey: CryptoKey }
  | { readonly format: 1; readonly publicKey: string; readonly createdAt: number; readonly protection: 'passphrase'; readonly encryptedSeed: EncryptedBlob };

export const PROTECTION_TEXT: Readonly<Record<Protection, string>> = {
  'device-bound': 'Device-bound key: the browser keeps it non-extractable; no page script can read it. It cannot be exported to another phone.',
  passphrase: 'Passphrase key: stored encrypted (PBKDF2 + AES-GCM); unlocked in memory while the app is open. It can be exported, encrypted.',
};

async function rawPublicKey(key: CryptoKey): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.exportKey('raw', key));
}

function webCryptoSigner(publicKey: Uint8Array, privateKey: CryptoKey): Signer {
  return {
    publicKey,
    sign: async (message) => new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, privateKey, Uint8Array.from(message))),
  };
}

/** Does this browser make non-extractable Ed25519 keys whose signatures core accepts? */
export async function deviceBoundSupported(core: Crypto): Promise<boolean> {
  try {
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const publicKey = await rawPublicKey(pair.publicKey);
    const message = Uint8Array.of(1, 2, 3);
    const signature = await webCryptoSigner(publicKey, pair.privateKey).sign(message);
    return core.verify(publicKey, message, signature).ok && !pair.privateKey.extractable;
  } catch {
    return false;
  }
}

export async function createIdentity(core: Crypto, protection: Protection, now: number, passphrase?: string): Promise<StoredIdentity> {
  if (protection === 'device-bound') {
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const publicKey = await rawPublicKey(pair.publicKey);
    if (!core.checkPublicKey(publicKey).ok) throw new CarkeyError('CK_CRYPTO_BAD_SIGNATURE', 'the browser made an invalid Ed25519 key');
    return { format: 1, publicKey: toHex(publicKey), createdAt: now, protection, privateKey: pair.privateKey };
  }
  if (passphrase === undefined) throw new CarkeyError('CK_PHONE_NEED_PASSPHRASE');
  const seed = crypto.getRandomValues(new Uint8Array(32));
  try {
    const publicKey = core.publicKeyFromSeed(seed);
    return { format: 1, publicKey: toHex(publicKey), createdAt: now, protection, encryptedSeed: await encryptWithPassphrase(seed, passphrase, SEED_PURPOSE) };
  } finally {
    seed.fill(0);
  }
}

/** An identity that was moved here in an export: same seed, encrypted under the same passphrase. */
export function identityFromSeed(core: Crypto, seed: Uint8Array, encryptedSeed: EncryptedBlob, now: number): StoredIdentity {
  return { format: 1, publicKey: toHex(core.publicKeyFromSeed(seed)), createdAt: now, protection: 'passphrase', encryptedSeed };
}

/** Unlocked identity: the signer and, for passphrase keys, the seed (for export; wiped by `lock`). */
export interface UnlockedKey {
  readonly signer: Signer;
  readonly seed: Uint8Array | undefined;
}

export async function unlockIdentity(core: Crypto, identity: StoredIdentity, passphrase?: string): Promise<UnlockedKey> {
  const publicKey = fromHex(identity.publicKey);
  if (publicKey === undefined || publicKey.length !== 32) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'stored public key');
  if (identity.protection === 'device-bound') return { signer: webCryptoSigner(publicKey, identity.privateKey), seed: undefined };
  if (passphrase === undefined) throw new CarkeyError('CK_PHONE_NEED_PASSPHRASE');
  const seed = await decryptWithPassphrase(identity.encryptedSeed, passphrase, SEED_PURPOSE);
  if (seed.length !== 32 || toHex(core.publicKeyFromSeed(seed)) !== identity.publicKey) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'the decrypted key does not match the stored public key');
  return { signer: seedSigner(core, seed), seed };
}
