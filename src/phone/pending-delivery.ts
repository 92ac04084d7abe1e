/**
 * Delivery of an owner's queued key lists over an authenticated connection:
 * the one implementation behind the CLI client (src/phone/client.ts) and
 * the web app (src/web/app/phone.ts). It signs through a `Signer`, so the
 * CLI passes a seed signer and the web app its non-extractable WebCrypto key.
 *
 * Guarantees:
 * - Nothing is pushed for a non-owner or an empty queue.
 * - When the car still has the version this phone last saw in force, the
 *   newest queued list is pushed as is; otherwise the car's list is read
 *   (checked: vehicle, owner signature) and the queued revocations are
 *   re-applied on top of it (`rebaseBody`, newly signed), so a list another
 *   owner device delivered meanwhile is neither rolled back nor lost.
 * - A list is dequeued only once the car confirms that version in force;
 *   any refusal or mismatch leaves the queue as it was and is reported as
 *   `failure` (with a `delivery-failed` progress event), never thrown.
 * - Browser-safe: core and src/phone modules without Node APIs only.
 */
import { signKeyListWith, type KeyList } from '../core/credentials.js';
import type { Clock, Crypto } from '../core/crypto/index.js';
import type { ChallengeInfo } from '../core/phone-session.js';
import type { Signer } from '../core/signer.js';
import type { DenyCategoryName } from '../core/messages.js';
import { latestKnownKeyList, pendingAfterDelivery, rebaseBody } from './key-lists.js';
import type { VehicleRecord } from './vehicle-record.js';

/** A typed answer to one command. */
export type Outcome<T> =
  | { readonly status: 'ok'; readonly value: T }
  | { readonly status: 'denied'; readonly category: DenyCategoryName; readonly retryAfterSeconds?: number }
  | { readonly status: 'failed'; readonly reason: string };

export interface DeliveryReport {
  /** version now confirmed in force on the car, when a queued list was delivered */
  readonly delivered: number | undefined;
  /** lists still queued after this connection */
  readonly stillQueued: number;
  /** why delivery did not happen, if it was attempted and failed */
  readonly failure: string | undefined;
}

export type DeliveryProgress =
  | { readonly kind: 'delivering'; readonly version: number }
  | { readonly kind: 'delivered'; readonly version: number }
  | { readonly kind: 'delivery-failed'; readonly version: number; readonly reason: string };

/** What delivery needs of a connection (the CLI's VehicleConnection and the web app's WebConnection). */
export interface DeliveryConnection {
  readonly vehicle: VehicleRecord;
  readonly challenge: ChallengeInfo;
  /** the car's key list, checked for this vehicle (undefined: the car has none) */
  keyListGet(crypto: Crypto): Promise<Outcome<KeyList | undefined>>;
  /** ok carries the version in force on the car afterwards */
  keyListPush(list: KeyList): Promise<Outcome<number>>;
  replaceRecord(record: VehicleRecord): void;
}

export interface DeliveryDeps {
  readonly crypto: Crypto;
  readonly clock: Clock;
  readonly store: { updateVehicle(vehicleId: Uint8Array, change: (current: VehicleRecord | undefined) => VehicleRecord): Promise<VehicleRecord> };
  readonly progress?: (event: DeliveryProgress) => void;
}

export function describeOutcome(outcome: Outcome<unknown>): string {
  if (outcome.status === 'denied') return `denied (${outcome.category})`;
  if (outcome.status === 'failed') return `failed: ${outcome.reason}`;
  return 'ok';
}

/** See the module header: deliver, or rebase then deliver, the owner's queue. */
export async function deliverPending(deps: DeliveryDeps, connection: DeliveryConnection, signer: Signer): Promise<DeliveryReport> {
  const { crypto, clock, store } = deps;
  const record = connection.vehicle;
  const newest = latestKnownKeyList({ keyList: undefined, pending: record.pending });
  if (!record.owner || newest === undefined) return { delivered: undefined, stillQueued: record.pending.length, failure: undefined };
  const failed = (list: KeyList, reason: string): DeliveryReport => {
    deps.progress?.({ kind: 'delivery-failed', version: list.version, reason });
    return { delivered: undefined, stillQueued: record.pending.length, failure: reason };
  };
  const carVersion = connection.challenge.keyListVersion;
  const confirmedVersion = record.keyList?.version ?? 0;

  let toPush: KeyList | undefined;
  let confirmed: KeyList | undefined;
  if (newest.version > carVersion && carVersion === confirmedVersion) {
    toPush = newest;
  } else {
    const fetched = await connection.keyListGet(crypto);
    if (fetched.status !== 'ok') return failed(newest, describeOutcome(fetched));
    const carList = fetched.value;
    if (carList === undefined) return failed(newest, 'the car has no key list (was it reset? pair again)');
    const rebased = rebaseBody(carList, record.pending, clock());
    if (rebased === undefined) confirmed = carList;
    else toPush = await signKeyListWith(crypto, signer, rebased);
  }
  if (toPush !== undefined) {
    deps.progress?.({ kind: 'delivering', version: toPush.version });
    const pushed = await connection.keyListPush(toPush);
    if (pushed.status !== 'ok') return failed(toPush, describeOutcome(pushed));
    if (pushed.value !== toPush.version) return failed(toPush, `the car reports version ${pushed.value} in force`);
    confirmed = toPush;
    deps.progress?.({ kind: 'delivered', version: toPush.version });
  }
  if (confirmed === undefined) return { delivered: undefined, stillQueued: record.pending.length, failure: undefined };
  const inForce = confirmed;
  const updated = await store.updateVehicle(record.vehicleId, (current) => {
    const base = current ?? record;
    const keyList = base.keyList === undefined || inForce.version > base.keyList.version ? inForce : base.keyList;
    return { ...base, keyList, pending: pendingAfterDelivery(base.pending, inForce) };
  });
  connection.replaceRecord(updated);
  return { delivered: inForce.version, stillQueued: updated.pending.length, failure: undefined };
}
