/**
 * The share bundle an owner gives a friend: everything the friend's phone
 * needs to find and open the car with the grant, in one string.
 *
 * Binary bundle: format u8 = 1 ‖ grant (172 bytes) ‖ car identity key 32 ‖
 *   advertising secret 32 ‖ vehicle name (u16 length ‖ UTF-8, ≤ 32 bytes).
 * Text form: "carkey1:" ‖ base64url(bundle) without padding.
 *
 * Guarantees: `decodeShare` never throws; it checks every length, decodes the
 * grant, checks the car key (canonical, not small order), that the grant
 * belongs to that car (vehicle id), and the owner's signature on the grant.
 * Whether the grant is addressed to this phone is the caller's check (it
 * knows its own key). The bundle carries no private key; it does carry the
 * advertising secret, which lets its holder recognise the car's broadcasts,
 * so it should be sent privately.
 */
import { fromBase64Url, toBase64Url } from '../core/bytes.js';
import { Writer, decodeWith } from '../core/codec.js';
import { decodeGrant, GRANT_LENGTH, verifyGrant, type Grant } from '../core/credentials.js';
import type { Crypto } from '../core/crypto/index.js';
import { CarkeyError, fail, ok, type Result } from '../core/errors.js';
import { ADV_SECRET_LENGTH, vehicleIdOf } from '../core/identity.js';
import { MAX_NAME_BYTES } from '../core/messages.js';

export const SHARE_PREFIX = 'carkey1:';
export const SHARE_FORMAT = 1;
/** Longest text a valid share can have (prefix + base64url of the largest bundle). */
export const MAX_SHARE_TEXT = SHARE_PREFIX.length + Math.ceil(((1 + GRANT_LENGTH + 32 + ADV_SECRET_LENGTH + 2 + MAX_NAME_BYTES) * 4) / 3);

export interface ShareBundle {
  readonly grant: Grant;
  readonly carIdentityKey: Uint8Array;
  readonly advSecret: Uint8Array;
  readonly vehicleName: string;
}

export function encodeShareBytes(bundle: ShareBundle): Uint8Array {
  return new Writer()
    .u8(SHARE_FORMAT)
    .fixed(bundle.grant.bytes, GRANT_LENGTH, 'grant')
    .fixed(bundle.carIdentityKey, 32, 'car identity key')
    .fixed(bundle.advSecret, ADV_SECRET_LENGTH, 'advertising secret')
    .vbytes(new TextEncoder().encode(bundle.vehicleName), MAX_NAME_BYTES, 'vehicle name')
    .finish();
}

export function encodeShare(bundle: ShareBundle): string {
  return SHARE_PREFIX + toBase64Url(encodeShareBytes(bundle));
}

function decodeShareBytes(crypto: Crypto, bytes: Uint8Array): Result<ShareBundle> {
  const parsed = decodeWith(bytes, (r) => {
    const format = r.u8('format');
    if (format !== SHARE_FORMAT) throw new CarkeyError('CK_PHONE_BAD_SHARE', `format ${format} (made by a newer carkey?)`);
    const grantBytes = r.bytesOf(GRANT_LENGTH, 'grant');
    const carIdentityKey = r.bytesOf(32, 'car identity key');
    const advSecret = r.bytesOf(ADV_SECRET_LENGTH, 'advertising secret');
    const nameBytes = r.vbytes(MAX_NAME_BYTES, 'vehicle name');
    let vehicleName: string;
    try {
      vehicleName = new TextDecoder('utf-8', { fatal: true }).decode(nameBytes);
    } catch {
      throw new CarkeyError('CK_PHONE_BAD_SHARE', 'vehicle name is not UTF-8');
    }
    return { grantBytes, carIdentityKey, advSecret, vehicleName };
  });
  if (!parsed.ok) return parsed.error.code === 'CK_PHONE_BAD_SHARE' ? parsed : fail('CK_PHONE_BAD_SHARE', parsed.error.message);
  const { grantBytes, carIdentityKey, advSecret, vehicleName } = parsed.value;
  if (vehicleName.trim() === '') return fail('CK_PHONE_BAD_SHARE', 'empty vehicle name');
  const grant = decodeGrant(grantBytes);
  if (!grant.ok) return fail('CK_PHONE_BAD_SHARE', grant.error.message);
  const keyCheck = crypto.checkPublicKey(carIdentityKey);
  if (!keyCheck.ok) return fail('CK_PHONE_BAD_SHARE', `car key: ${keyCheck.error.message}`);
  const verified = verifyGrant(crypto, grant.value, vehicleIdOf(crypto, carIdentityKey));
  if (!verified.ok) return fail('CK_PHONE_BAD_SHARE', verified.error.message);
  return ok({ grant: grant.value, carIdentityKey, advSecret, vehicleName });
}

/** Decode the text form (surrounding whitespace is ignored). Never throws. */
export function decodeShare(crypto: Crypto, text: string): Result<ShareBundle> {
  const trimmed = text.trim();
  if (trimmed.length > MAX_SHARE_TEXT) return fail('CK_PHONE_BAD_SHARE', 'too long');
  if (!trimmed.startsWith(SHARE_PREFIX)) return fail('CK_PHONE_BAD_SHARE', `it does not start with ${SHARE_PREFIX}`);
  const payload = trimmed.slice(SHARE_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(payload)) return fail('CK_PHONE_BAD_SHARE', 'not base64url');
  const bytes = fromBase64Url(payload);
  if (bytes === undefined) return fail('CK_PHONE_BAD_SHARE', 'not canonical base64url (truncated or altered?)');
  return decodeShareBytes(crypto, bytes);
}
