/**
 * Carrying out an allowed command: actuation through the ActuatorPort, and the
 * key-management commands against the store.
 *
 * Guarantees: runs only after `authorize` allowed the command; a hardware
 * failure becomes a `failed` outcome with the error code as payload (never an
 * exception to the session); a pushed key list is accepted only by the core's
 * `acceptKeyList` (signed by a current owner, right vehicle and epoch, newer
 * by at most MAX_VERSION_STEP) and stored together with its audit entry in
 * one transaction; its signed issue time goes to the trusted clock, which
 * bounds how far it may move the car's time (src/core/time-floor.ts).
 */
import { decodeKeyList, acceptKeyList, type KeyList, type VersionState } from '../core/credentials.js';
import type { Crypto } from '../core/crypto/policy.js';
import { CarkeyError, toCarkeyError } from '../core/errors.js';
import { decodeAuditRead, encodeStatus, encodeVersion, type DoorName } from '../core/payloads.js';
import type { CommandName } from '../core/roles.js';
import { toHex } from '../core/bytes.js';
import { encodeAuditPage } from '../core/audit-page.js';
import { signVehicleStatement } from '../core/vehicle-statement.js';
import type { ActuatorPort } from './actuator.js';
import type { CarTime } from './car-time.js';
import type { AuditFields } from '../core/audit.js';
import type { VehicleStore } from './store.js';

/** Largest audit page payload: leaves room in one 8 KiB message for the envelope. */
const MAX_AUDIT_PAGE_BYTES = 7000;

export type CommandOutcome =
  | { readonly status: 'ok'; readonly payload?: Uint8Array; readonly detail?: Record<string, string | number> }
  | { readonly status: 'failed'; readonly error: CarkeyError };

export interface CommandContext {
  readonly crypto: Crypto;
  readonly store: VehicleStore;
  readonly actuator: ActuatorPort;
  readonly vehicleId: Uint8Array;
  readonly currentKeyList: () => KeyList | undefined;
  readonly trustedNow: () => number;
  readonly time: CarTime;
  /** the car's config sets a start PIN (reported in status) */
  readonly startPinRequired: boolean;
  /** Called after a new key list is stored (refresh caches, advertising). */
  readonly onKeyListChanged: (list: KeyList) => void;
}

export async function executeCommand(context: CommandContext, command: CommandName, args: Uint8Array): Promise<CommandOutcome> {
  try {
    switch (command) {
      case 'unlock':
      case 'passiveUnlock':
        await context.actuator.unlock('all');
        return { status: 'ok' };
      case 'lock':
        await context.actuator.lock('all');
        return { status: 'ok' };
      case 'start':
        await context.actuator.setDrive(true);
        return { status: 'ok' };
      case 'trunk':
        await context.actuator.openTrunk();
        return { status: 'ok' };
      case 'status':
        return { status: 'ok', payload: await statusPayload(context) };
      case 'honk':
        await context.actuator.signal('beep', 1);
        return { status: 'ok' };
      case 'flash':
        await context.actuator.signal('flash', 1);
        return { status: 'ok' };
      case 'keyListGet':
        return { status: 'ok', payload: context.currentKeyList()?.bytes ?? new Uint8Array(0) };
      case 'keyListPush':
        return pushKeyList(context, args);
      case 'auditRead':
        return readAudit(context, args);
      case 'vehicleStatement':
        return { status: 'ok', payload: signVehicleStatement(context.crypto, context.store.identity.exportSeed(), context.trustedNow(), context.currentKeyList()?.bytes ?? new Uint8Array(0)) };
    }
  } catch (error) {
    return { status: 'failed', error: toCarkeyError(error) };
  }
}

async function statusPayload(context: CommandContext): Promise<Uint8Array> {
  const state = await context.actuator.state();
  const fitted = Object.keys(state.doors) as DoorName[];
  return encodeStatus({
    locked: fitted.filter((door) => state.doors[door] === 'locked'),
    doorCount: fitted.length,
    drive: state.drive,
    trunk: state.trunk,
    keyListVersion: context.store.keyListVersion(),
    carTime: context.trustedNow(),
    startNeedsPin: context.startPinRequired,
  });
}

function pushKeyList(context: CommandContext, args: Uint8Array): CommandOutcome {
  const decoded = decodeKeyList(args);
  if (!decoded.ok) return { status: 'failed', error: decoded.error };
  const accepted = acceptKeyList(context.crypto, decoded.value, context.currentKeyList(), context.vehicleId, { state: versionState(context.store) });
  if (!accepted.ok) return { status: 'failed', error: accepted.error };
  const list = accepted.value;
  installKeyList(context.store, list, context.time, context.onKeyListChanged, {
    via: 'ble',
    signer: toHex(list.signer.subarray(0, 8)),
    owners: list.owners.length,
    revokedSerials: list.revokedSerials.length,
    revokedKeys: list.revokedKeys.length,
  });
  return { status: 'ok', payload: encodeVersion(list.version), detail: { version: list.version } };
}

/** The car's version counter as the core's version rule sees it. */
export function versionState(store: VehicleStore): VersionState {
  return { epoch: store.keyListEpoch(), highestVersion: store.keyListVersion() };
}

/**
 * Put an accepted key list in force: store it with its audit entry (one
 * transaction), give its signed issue time to the trusted clock (for a
 * pairing, physical presence vouches for it: the clock re-anchors there), and
 * tell the daemon. The one way a key list becomes current, over BLE or pairing.
 */
export function installKeyList(
  store: VehicleStore,
  list: KeyList,
  time: CarTime,
  onChanged: (list: KeyList) => void,
  fields: AuditFields,
  options: { readonly viaPairing?: boolean } = {},
): void {
  store.replaceKeyList(list.bytes, list.version, fields, list.epoch);
  onChanged(list);
  try {
    if (options.viaPairing === true) time.resetByPresence(list.issuedAt);
    else time.observeDocument(list.issuedAt);
  } catch {
    // The list is in force; a floor that could not be written is rewritten by the next persist.
  }
}

function readAudit(context: CommandContext, args: Uint8Array): CommandOutcome {
  const request = decodeAuditRead(args);
  if (!request.ok) return { status: 'failed', error: request.error };
  const entries = context.store.readAudit({ fromSeq: Math.max(1, request.value.fromSeq), limit: request.value.limit });
  const last = context.store.lastAuditSeq();
  const first = entries[0]?.seq ?? 0;
  const checkpoints = first === 0 ? [] : context.store.checkpoints({ fromSeq: first, limit: entries.length });
  // A page that starts at the first retained entry of a pruned log carries the anchor it follows.
  const storedAnchor = first === 0 ? undefined : context.store.auditAnchor();
  const anchor = storedAnchor !== undefined && storedAnchor.seq + 1 === first ? storedAnchor : undefined;
  // Halve the page until it fits one message (an entry can be a few hundred bytes).
  for (let page = entries; ; page = page.slice(0, Math.ceil(page.length / 2))) {
    const lastInPage = page.at(-1)?.seq ?? 0;
    const bytes = encodeAuditPage({ entries: page, checkpoints: checkpoints.filter((c) => c.seq <= lastInPage), last, anchor });
    if (bytes.length <= MAX_AUDIT_PAGE_BYTES || page.length <= 1) return { status: 'ok', payload: bytes };
  }
}
