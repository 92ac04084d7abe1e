/**
 * The access decision: a pure function of (credential, key list, command,
 * trusted time, proximity facts, local policy) → allow, or deny with a reason
 * from a closed set.
 *
 * Guarantees: no I/O, no clock, no network (DESIGN invariant 1); every path
 * ends in a named reason; reasons map to what the car may reveal on the wire
 * (`revealOf`): nothing for peers it does not recognise (generic refusal),
 * a category for recognised peers.
 */
import { equalBytes, toHex } from './bytes.js';
import { containsKey, verifyGrant, type Grant, type KeyList } from './credentials.js';
import type { Crypto } from './crypto/policy.js';
import { keyIdOf } from './identity.js';
import { COMMAND_PERMISSION, ROLE_MASK, type CommandName, type RoleName } from './roles.js';

export const DENY_REASONS = [
  'not-paired',
  'unknown-key',
  'key-revoked',
  'grant-invalid',
  'grant-wrong-vehicle',
  'grant-wrong-subject',
  'grant-issuer-not-owner',
  'grant-revoked',
  'grant-not-yet-valid',
  'grant-expired',
  'not-permitted',
  'relay-bound',
  'out-of-range',
  'pin-required',
  'pin-wrong',
  'pin-locked-out',
] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

/** What an authenticated, recognised peer is told (wire category codes in messages.ts). */
export type DenyCategory = 'not-permitted' | 'expired' | 'proximity' | 'pin' | 'locked-out';

/** `undefined` means: do not explain, send the generic refusal. */
export function revealOf(reason: DenyReason): DenyCategory | undefined {
  switch (reason) {
    case 'not-paired':
    case 'unknown-key':
    case 'key-revoked':
    case 'grant-invalid':
    case 'grant-wrong-vehicle':
    case 'grant-wrong-subject':
    case 'grant-issuer-not-owner':
    case 'grant-revoked':
      return undefined;
    case 'grant-not-yet-valid':
    case 'grant-expired':
      return 'expired';
    case 'not-permitted':
      return 'not-permitted';
    case 'relay-bound':
    case 'out-of-range':
      return 'proximity';
    case 'pin-required':
    case 'pin-wrong':
      return 'pin';
    case 'pin-locked-out':
      return 'locked-out';
  }
}

export type Credential = { readonly kind: 'owner' } | { readonly kind: 'grant'; readonly grant: Grant };

export interface ProximityFacts {
  /** RSSI in dBm from the link, if the radio reports it. */
  readonly rssi: number | undefined;
  /** Result of the daemon's RSSI hysteresis: is the phone near the car? */
  readonly near: boolean;
  /** Time from CHALLENGE sent to REQUEST received (ms), for the relay bound. */
  readonly responseTimeMs: number;
}

export interface LocalPolicy {
  /** Deny when challenge→request took longer than this (relay bound). */
  readonly relayBoundMs: number;
  /** `start` needs a PIN. */
  readonly startPinRequired: boolean;
}

export interface DecisionInput {
  readonly vehicleId: Uint8Array;
  readonly keyList: KeyList | undefined;
  readonly peerKey: Uint8Array;
  readonly credential: Credential;
  readonly command: CommandName;
  readonly now: number;
  readonly proximity: ProximityFacts;
  readonly policy: LocalPolicy;
  /** PIN check outcome supplied by the daemon: undefined = no PIN given; locked = this key's PIN is locked out (PinGuard), whatever was given. */
  readonly pin: 'ok' | 'wrong' | 'locked' | undefined;
}

export type Decision =
  | { readonly allow: true; readonly role: RoleName; readonly subject: string }
  | { readonly allow: false; readonly reason: DenyReason; readonly subject: string };

function deny(reason: DenyReason, subject: string): Decision {
  return { allow: false, reason, subject };
}

/** Who the peer is, before any command is considered. */
export type Recognition =
  | { readonly recognized: true; readonly role: RoleName; readonly mask: number; readonly subject: string; readonly grant: Grant | undefined }
  | { readonly recognized: false; readonly reason: DenyReason; readonly subject: string };

/**
 * Recognise the peer: a current owner, or the subject of a valid grant from a
 * current owner that is not revoked. Unrecognised peers get only the generic
 * refusal (`revealOf` of every reason here is undefined). Time windows are
 * not checked here: an expired grant still identifies its holder.
 *
 * Revocation wins: a key in `revokedKeys` is refused as a peer and as a
 * grant issuer even if a (hand-made) list also names it as an owner. A grant
 * must name the epoch of the list in force (a factory reset voids grants).
 */
export function recognize(
  crypto: Crypto,
  input: Pick<DecisionInput, 'vehicleId' | 'keyList' | 'peerKey' | 'credential'>,
): Recognition {
  const { keyList, credential, peerKey } = input;
  const subject = credential.kind === 'grant' ? `grant:${toHex(credential.grant.serial)}` : `key:${keyIdOf(crypto, peerKey)}`;
  const no = (reason: DenyReason): Recognition => ({ recognized: false, reason, subject });
  if (keyList === undefined) return no('not-paired');
  if (containsKey(keyList.revokedKeys, peerKey)) return no('key-revoked');
  if (credential.kind === 'owner') {
    if (!containsKey(keyList.owners, peerKey)) return no('unknown-key');
    return { recognized: true, role: 'owner', mask: ROLE_MASK.owner, subject, grant: undefined };
  }
  const grant = credential.grant;
  const valid = verifyGrant(crypto, grant, input.vehicleId);
  if (!valid.ok) return no(valid.error.code === 'CK_CRED_WRONG_VEHICLE' ? 'grant-wrong-vehicle' : 'grant-invalid');
  if (grant.epoch !== keyList.epoch) return no('grant-invalid');
  if (!equalBytes(grant.subject, peerKey)) return no('grant-wrong-subject');
  if (!containsKey(keyList.owners, grant.issuer) || containsKey(keyList.revokedKeys, grant.issuer)) return no('grant-issuer-not-owner');
  if (containsKey(keyList.revokedSerials, grant.serial)) return no('grant-revoked');
  return { recognized: true, role: grant.role, mask: ROLE_MASK[grant.role] & grant.permissions, subject, grant };
}

/**
 * The decision. `recognition` may be passed when the caller already ran
 * `recognize` for this input (the car does, to admit the link), so a grant's
 * signature is not verified twice on the entry path.
 */
export function decide(crypto: Crypto, input: DecisionInput, recognition?: Recognition): Decision {
  const who = recognition ?? recognize(crypto, input);
  if (!who.recognized) return deny(who.reason, who.subject);
  const { subject, grant, role, mask } = who;
  if (grant !== undefined) {
    if (input.now < grant.notBefore) return deny('grant-not-yet-valid', subject);
    if (input.now >= grant.notAfter) return deny('grant-expired', subject);
  }
  const needed = COMMAND_PERMISSION[input.command];
  if ((mask & needed) !== needed) return deny('not-permitted', subject);
  if (input.proximity.responseTimeMs > input.policy.relayBoundMs) return deny('relay-bound', subject);
  if (input.command === 'passiveUnlock' && !input.proximity.near) return deny('out-of-range', subject);
  if (input.command === 'start' && input.policy.startPinRequired) {
    if (input.pin === 'locked') return deny('pin-locked-out', subject);
    if (input.pin === undefined) return deny('pin-required', subject);
    if (input.pin === 'wrong') return deny('pin-wrong', subject);
  }
  return { allow: true, role, subject };
}
