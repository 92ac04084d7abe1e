/**
 * Export and import of the phone's key and cars, for moving to a new phone.
 *
 * File (JSON): { format: "carkey-web-export", version: 1, publicKey, box }
 * where `box` is an EncryptedBlob (secret-box.ts, purpose
 * "carkey/web/export") of { seed: hex, vehicles: [vehicle file JSON, …] }.
 * Only a passphrase key can be exported (a device-bound key cannot leave the
 * browser). Import checks the seed against the stated public key, re-parses
 * every vehicle with the CLI's parser, and writes only onto an app that has
 * no key yet. The seed is re-encrypted for storage under the same passphrase.
 */
import { fromHex, toHex } from '../../core/bytes.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { CarkeyError } from '../../core/errors.js';
import { seedSigner } from '../../core/signer.js';
import { parseVehicleRecord, serializeVehicleRecord } from '../../phone/vehicle-record.js';
import { identityFromSeed, SEED_PURPOSE, type StoredIdentity, type UnlockedKey } from './identity.js';
import { decryptWithPassphrase, encryptWithPassphrase, parseBlob } from './secret-box.js';
import type { WebStore } from './store.js';

export const EXPORT_FORMAT = 'carkey-web-export';
const EXPORT_PURPOSE = 'carkey/web/export';
const MAX_EXPORT_BYTES = 8 * 1024 * 1024;

export async function exportState(crypto: Crypto, store: WebStore, identity: StoredIdentity, seed: Uint8Array, passphrase: string): Promise<string> {
  if (identity.protection !== 'passphrase') throw new CarkeyError('CK_USAGE', 'a device-bound key cannot be exported');
  if (toHex(crypto.publicKeyFromSeed(seed)) !== identity.publicKey) throw new CarkeyError('CK_INTERNAL', 'unlocked seed does not match the identity');
  const inner = JSON.stringify({ seed: toHex(seed), vehicles: store.listVehicles().map(serializeVehicleRecord) });
  const box = await encryptWithPassphrase(new TextEncoder().encode(inner), passphrase, EXPORT_PURPOSE);
  return `${JSON.stringify({ format: EXPORT_FORMAT, version: 1, publicKey: identity.publicKey, box }, null, 2)}\n`;
}

export async function importState(crypto: Crypto, store: WebStore, text: string, passphrase: string): Promise<UnlockedKey> {
  if (text.length > MAX_EXPORT_BYTES) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'export file too large');
  let outer: { format?: unknown; version?: unknown; publicKey?: unknown; box?: unknown };
  try {
    outer = JSON.parse(text) as typeof outer;
  } catch {
    throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'the file is not a carkey export (not JSON)');
  }
  if (outer.format !== EXPORT_FORMAT || outer.version !== 1 || typeof outer.publicKey !== 'string') throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'the file is not a carkey export');
  const plain = await decryptWithPassphrase(parseBlob(outer.box, 'export'), passphrase, EXPORT_PURPOSE);
  let inner: { seed?: unknown; vehicles?: unknown };
  try {
    inner = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain)) as typeof inner;
  } catch {
    throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'export contents');
  }
  const seed = typeof inner.seed === 'string' ? fromHex(inner.seed) : undefined;
  if (seed?.length !== 32 || toHex(crypto.publicKeyFromSeed(seed)) !== outer.publicKey) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'the key in the export does not match its public key');
  if (!Array.isArray(inner.vehicles)) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', 'export vehicles');
  const vehicles = inner.vehicles.map((record: unknown, i: number) => {
    if (typeof record !== 'string') throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `export vehicle ${i}`);
    return parseVehicleRecord(crypto, record, `export vehicle ${i}`);
  });
  const identity = identityFromSeed(crypto, seed, await encryptWithPassphrase(seed, passphrase, SEED_PURPOSE), Date.now());
  await store.importAll(identity, vehicles);
  return { signer: seedSigner(crypto, seed), seed };
}
