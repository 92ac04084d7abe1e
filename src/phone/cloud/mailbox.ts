/**
 * Keys shared at a distance: the share bundle (`carkey1:…`, src/phone/share.ts)
 * travels through the cloud mailbox sealed to the recipient's Ed25519 key
 * (src/core/sealed-box.ts), so the cloud never reads the car's advertising
 * secret, and the recipient opens and checks it exactly like a pasted share.
 *
 * Guarantees:
 * - A posted item expires with the grant, and at most MAX_MAILBOX_LIFETIME_MS
 *   after posting (the cloud's 30-day limit less a margin for clock skew).
 * - `readInbox` never throws for one bad item: a box that does not open, a
 *   share that does not decode or verify (decodeShare: car key, grant bound
 *   to that car, owner signature), one addressed to another key, or one whose
 *   routing vehicle id differs from the grant's, is listed with its error
 *   and never stored. What the cloud says (sender, vehicle id, times) is
 *   routing metadata only; what counts is signed inside the share.
 */
import { equalBytes, toHex } from '../../core/bytes.js';
import type { MailboxItem } from '../../cloud-client/client.js';
import type { Crypto } from '../../core/crypto/index.js';
import { CarkeyError } from '../../core/errors.js';
import { keyIdOf } from '../../core/identity.js';
import { openSealedBox, sealTo } from '../../core/sealed-box.js';
import { decodeShare, MAX_SHARE_TEXT, type ShareBundle } from '../share.js';
import type { PhoneCloudDeps } from './deps.js';

/** The cloud keeps an item at most 30 days; stay 5 minutes inside that (clocks differ by up to the 2-minute replay window). */
export const MAX_MAILBOX_LIFETIME_MS = 30 * 24 * 3600 * 1000 - 5 * 60_000;

export interface PostedShare {
  readonly id: string;
  readonly expiresAt: number;
}

/** Seal `share` (the carkey1: text) to `recipient` and post it for `vehicleId`. */
export async function postShare(deps: PhoneCloudDeps, input: { readonly recipient: Uint8Array; readonly vehicleId: Uint8Array; readonly share: string; readonly notAfter: number }): Promise<PostedShare> {
  const now = deps.clock();
  const expiresAt = Math.min(input.notAfter, now + MAX_MAILBOX_LIFETIME_MS);
  if (expiresAt <= now) throw new CarkeyError('CK_USAGE', 'the grant has already expired; nothing to post');
  const box = sealTo(deps.crypto, deps.random, input.recipient, new TextEncoder().encode(input.share));
  const id = await deps.client.postMailbox(input.recipient, input.vehicleId, box, expiresAt);
  return { id, expiresAt };
}

export interface InboxEntry {
  readonly item: MailboxItem;
  /** the opened, verified share addressed to this phone */
  readonly bundle: ShareBundle | undefined;
  /** the share text (for `accept`), when it opened */
  readonly share: string | undefined;
  /** why it cannot be used */
  readonly error: CarkeyError | undefined;
}

/** Open and check one mailbox item for the phone whose seed is `seed`. Never throws. */
export function openMailboxItem(crypto: Crypto, seed: Uint8Array, item: MailboxItem): InboxEntry {
  const broken = (error: CarkeyError): InboxEntry => ({ item, bundle: undefined, share: undefined, error });
  const opened = openSealedBox(crypto, seed, item.box);
  if (!opened.ok) return broken(new CarkeyError('CK_PHONE_BAD_SHARE', 'the mailbox item does not open with this phone’s key (not sealed to it, or altered)'));
  if (opened.value.length > MAX_SHARE_TEXT) return broken(new CarkeyError('CK_PHONE_BAD_SHARE', 'the mailbox item is too long for a share'));
  let share: string;
  try {
    share = new TextDecoder('utf-8', { fatal: true }).decode(opened.value);
  } catch {
    return broken(new CarkeyError('CK_PHONE_BAD_SHARE', 'the mailbox item is not text'));
  }
  const decoded = decodeShare(crypto, share);
  if (!decoded.ok) return broken(decoded.error);
  const bundle = decoded.value;
  const self = crypto.publicKeyFromSeed(seed);
  if (!equalBytes(bundle.grant.subject, self)) {
    return broken(new CarkeyError('CK_PHONE_SHARE_NOT_FOR_ME', `it names key ${keyIdOf(crypto, bundle.grant.subject)}, yours is ${keyIdOf(crypto, self)}`));
  }
  if (!equalBytes(bundle.grant.vehicleId, item.vehicleId)) {
    return broken(new CarkeyError('CK_PHONE_BAD_SHARE', `the mailbox says vehicle ${toHex(item.vehicleId)}, the grant is for ${toHex(bundle.grant.vehicleId)}`));
  }
  return { item, bundle, share, error: undefined };
}

/** Every unexpired item for this phone, opened and checked. */
export async function readInbox(deps: PhoneCloudDeps, seed: Uint8Array): Promise<InboxEntry[]> {
  const items = await deps.client.listMailbox();
  return items.map((item) => openMailboxItem(deps.crypto, seed, item));
}

/** Acknowledge (delete) an item after it was stored. */
export function acknowledge(deps: PhoneCloudDeps, id: string): Promise<void> {
  return deps.client.ackMailbox(id);
}
