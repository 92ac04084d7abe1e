/**
 * A key list that came from the cloud: verified by src/core exactly as one
 * pushed over BLE, then put in force by the one `installKeyList`.
 *
 * Guarantees (DESIGN invariant 2, the cloud is untrusted):
 * - Nothing is stored unless `decodeKeyList` and `acceptKeyList` (against
 *   the car's current list and its version state: right vehicle and epoch,
 *   signed by a current, unrevoked owner, version above the highest accepted
 *   by 1..MAX_VERSION_STEP) accept it. A forged, foreign, rolled-back,
 *   version-jumping, wrong-epoch, replayed or tampered list is refused with
 *   the core's code and audited (kind 'sync'), once per distinct document,
 *   so a cloud serving the same bad list on every poll cannot flood the log.
 * - The exact bytes of the current list again: a no-op (no audit, no write).
 * - Check and install run in one synchronous step (no await between them),
 *   so a list the car received over BLE meanwhile is never overtaken.
 * - `installKeyList` gives the list's signed issue time to the trusted clock,
 *   which bounds how far it may move time; the daemon is told through the
 *   same onKeyListChanged callback as for BLE.
 * - Never throws: a store failure (full or read-only disk) is an outcome.
 */
import type { Logger } from 'pino';
import { equalBytes, toHex } from '../../core/bytes.js';
import { acceptKeyList, decodeKeyList, type KeyList } from '../../core/credentials.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { toCarkeyError, type ErrorCode } from '../../core/errors.js';
import type { AuditWriter } from '../audit-writer.js';
import { installKeyList, versionState } from '../commands.js';
import type { CarTime } from '../car-time.js';
import type { VehicleStore } from '../store.js';

export interface KeyListSyncContext {
  readonly crypto: Crypto;
  readonly store: VehicleStore;
  /** the daemon's audit appends, for refusals (an install audits with the list, in one transaction) */
  readonly audit: Pick<AuditWriter, 'append'>;
  readonly time: CarTime;
  readonly vehicleId: Uint8Array;
  readonly currentKeyList: () => KeyList | undefined;
  readonly onKeyListChanged: (list: KeyList) => void;
  readonly logger: Logger;
}

export type KeyListOutcome =
  | { readonly kind: 'installed'; readonly epoch: number; readonly version: number }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'refused'; readonly code: ErrorCode; readonly digest: string; readonly audited: boolean }
  | { readonly kind: 'failed'; readonly code: ErrorCode };

/** Short digest naming a document in logs and the dedup cursor. */
export function documentDigest(crypto: Crypto, bytes: Uint8Array): string {
  return toHex(crypto.hash(bytes).subarray(0, 16));
}

/**
 * Verify and, when it is the next list, install `bytes`.
 * `refusedBefore`: digest of the last document refused (not audited again).
 */
export function applyCloudKeyList(context: KeyListSyncContext, bytes: Uint8Array, refusedBefore: string | undefined): KeyListOutcome {
  try {
    return apply(context, bytes, refusedBefore);
  } catch (error) {
    // e.g. the store's version state unreadable (I/O error): nothing was installed
    const failure = toCarkeyError(error);
    context.logger.warn({ errorCode: failure.code }, 'could not check the key list from the cloud; will try again');
    return { kind: 'failed', code: failure.code };
  }
}

function apply(context: KeyListSyncContext, bytes: Uint8Array, refusedBefore: string | undefined): KeyListOutcome {
  const current = context.currentKeyList();
  if (current !== undefined && equalBytes(current.bytes, bytes)) return { kind: 'unchanged' };
  const decoded = decodeKeyList(bytes);
  let code: ErrorCode;
  let list: KeyList | undefined;
  if (!decoded.ok) {
    code = decoded.error.code;
  } else {
    const accepted = acceptKeyList(context.crypto, decoded.value, current, context.vehicleId, { state: versionState(context.store) });
    if (accepted.ok) list = accepted.value;
    code = accepted.ok ? 'CK_INTERNAL' : accepted.error.code;
  }
  if (list === undefined) return refuse(context, bytes, code, decoded.ok ? decoded.value : undefined, refusedBefore);
  try {
    installKeyList(context.store, list, context.time, context.onKeyListChanged, {
      via: 'cloud',
      signer: toHex(list.signer.subarray(0, 8)),
      owners: list.owners.length,
      revokedSerials: list.revokedSerials.length,
      revokedKeys: list.revokedKeys.length,
    });
  } catch (error) {
    const failure = toCarkeyError(error);
    context.logger.warn({ errorCode: failure.code, version: list.version }, 'could not store the key list from the cloud; will try again');
    return { kind: 'failed', code: failure.code };
  }
  context.logger.info({ version: list.version, epoch: list.epoch }, 'key list from the cloud installed');
  return { kind: 'installed', epoch: list.epoch, version: list.version };
}

function refuse(context: KeyListSyncContext, bytes: Uint8Array, code: ErrorCode, decoded: KeyList | undefined, refusedBefore: string | undefined): KeyListOutcome {
  const digest = documentDigest(context.crypto, bytes);
  const repeat = digest === refusedBefore;
  context.logger.warn({ errorCode: code, version: decoded?.version, epoch: decoded?.epoch, digest, repeat }, 'key list from the cloud refused');
  if (repeat) return { kind: 'refused', code, digest, audited: false };
  const entry = context.audit.append('sync', {
    what: 'key-list',
    result: 'refused',
    reason: code,
    digest,
    size: bytes.length,
    ...(decoded === undefined ? {} : { version: decoded.version, epoch: decoded.epoch, signer: toHex(decoded.signer.subarray(0, 8)) }),
  });
  return { kind: 'refused', code, digest, audited: entry !== undefined };
}
