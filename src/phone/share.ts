/**
 * The share bundle an owner gives a friend: everything the friend's phone
 * needs to find and open the car with the grant, in one string.
 *
 * Binary bundle: format u8 ‖ grant (176 bytes) ‖ car identity key 32 ‖
 *   advertising secret 32 ‖ vehicle name (u16 length ‖ UTF-8, ≤ 32 bytes)
 *   and, for format 2 only, ‖ sharer label (u16 length ‖ UTF-8, ≤ 256 bytes).
 * Format 1 carries no label; format 2 is written only when the sharer chose
 * to send the grant's label (grant-label.ts), so a share without one stays
 * readable by every carkey. The label is NOT covered by the grant's
 * signature: anyone who handles the share could change it, so the recipient
 * shows it as "label from the sharer" and never uses it for a decision.
 * Text form: "carkey1:" ‖ base64url(bundle) without padding.
 *
 * Guarantees: `decodeShare` never throws; it checks every length, decodes the
 * grant, checks the car key (canonical, not small order), that the grant
 * belongs to that car (vehicle id), and the owner's signature on the grant;
 * a format-2 label must be a valid, normalised label (checkLabel).
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
import { checkLabel, MAX_LABEL_BYTES } from './grant-label.js';

export const SHARE_PREFIX = 'carkey1:';
/** The format without a label. */
export const SHARE_FORMAT = 1;
/** The format with the sharer's label after the vehicle name. */
export const SHARE_FORMAT_LABELLED = 2;
/** Longest text a valid share can have (prefix + base64url of the largest bundle). */
export const MAX_SHARE_TEXT = SHARE_PREFIX.length + Math.ceil(((1 + GRANT_LENGTH + 32 + ADV_SECRET_LENGTH + 2 + MAX_NAME_BYTES + 2 + MAX_LABEL_BYTES) * 4) / 3);

export interface ShareBundle {
  readonly grant: Grant;
  readonly carIdentityKey: Uint8Array;
  readonly advSecret: Uint8Array;
  readonly vehicleName: string;
  /** the label the sharer sent (unsigned, display only); undefined: none sent */
  readonly sharerLabel?: string | undefined;
}

/** Throws CK_PHONE_BAD_LABEL for a label that is not valid and normalised. */
export function encodeShareBytes(bundle: ShareBundle): Uint8Array {
  const label = bundle.sharerLabel;
  if (label !== undefined) {
    const checked = checkLabel(label);
    if (!checked.ok) throw checked.error;
    if (checked.value !== label) throw new CarkeyError('CK_PHONE_BAD_LABEL', 'it is not trimmed and normalised (pass it through checkLabel first)');
  }
  const writer = new Writer()
    .u8(label === undefined ? SHARE_FORMAT : SHARE_FORMAT_LABELLED)
    .fixed(bundle.grant.bytes, GRANT_LENGTH, 'grant')
    .fixed(bundle.carIdentityKey, 32, 'car identity key')
    .fixed(bundle.advSecret, ADV_SECRET_LENGTH, 'advertising secret')
    .vbytes(new TextEncoder().encode(bundle.vehicleName), MAX_NAME_BYTES, 'vehicle name');
  if (label !== undefined) writer.vbytes(new TextEncoder().encode(label), MAX_LABEL_BYTES, 'sharer label');
  return writer.finish();
}

function utf8Text(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CarkeyError('CK_PHONE_BAD_SHARE', `${what} is not UTF-8`);
  }
}

export function encodeShare(bundle: ShareBundle): string {
  return SHARE_PREFIX + toBase64Url(encodeShareBytes(bundle));
}

function decodeShareBytes(crypto: Crypto, bytes: Uint8Array): Result<ShareBundle> {
  const parsed = decodeWith(bytes, (r) => {
    const format = r.u8('format');
    if (format !== SHARE_FORMAT && format !== SHARE_FORMAT_LABELLED) throw new CarkeyError('CK_PHONE_BAD_SHARE', `format ${format} (made by a newer carkey?)`);
    const grantBytes = r.bytesOf(GRANT_LENGTH, 'grant');
    const carIdentityKey = r.bytesOf(32, 'car identity key');
    const advSecret = r.bytesOf(ADV_SECRET_LENGTH, 'advertising secret');
    const vehicleName = utf8Text(r.vbytes(MAX_NAME_BYTES, 'vehicle name'), 'vehicle name');
    const sharerLabel = format === SHARE_FORMAT_LABELLED ? utf8Text(r.vbytes(MAX_LABEL_BYTES, 'sharer label'), 'sharer label') : undefined;
    return { grantBytes, carIdentityKey, advSecret, vehicleName, sharerLabel };
  });
  if (!parsed.ok) return parsed.error.code === 'CK_PHONE_BAD_SHARE' ? parsed : fail('CK_PHONE_BAD_SHARE', parsed.error.message);
  const { grantBytes, carIdentityKey, advSecret, vehicleName, sharerLabel } = parsed.value;
  if (vehicleName.trim() === '') return fail('CK_PHONE_BAD_SHARE', 'empty vehicle name');
  if (sharerLabel !== undefined) {
    const label = checkLabel(sharerLabel);
    if (!label.ok) return fail('CK_PHONE_BAD_SHARE', `sharer label: ${label.error.message}`);
    if (label.value !== sharerLabel) return fail('CK_PHONE_BAD_SHARE', 'sharer label is not trimmed and normalised');
  }
  const grant = decodeGrant(grantBytes);
  if (!grant.ok) return fail('CK_PHONE_BAD_SHARE', grant.error.message);
  const keyCheck = crypto.checkPublicKey(carIdentityKey);
  if (!keyCheck.ok) return fail('CK_PHONE_BAD_SHARE', `car key: ${keyCheck.error.message}`);
  const verified = verifyGrant(crypto, grant.value, vehicleIdOf(crypto, carIdentityKey));
  if (!verified.ok) return fail('CK_PHONE_BAD_SHARE', verified.error.message);
  return ok(sharerLabel === undefined ? { grant: grant.value, carIdentityKey, advSecret, vehicleName } : { grant: grant.value, carIdentityKey, advSecret, vehicleName, sharerLabel });
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
