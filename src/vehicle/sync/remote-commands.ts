/**
 * One remote command relayed by the cloud: opened, verified, decided and
 * carried out by the car exactly as a BLE request would be, answered with a
 * car-signed result sealed to the phone that signed the command.
 *
 * Guarantees:
 * - Verified by src/core before anything else: `openSealedBox` with the car
 *   seed, `verifyRemoteCommand` (phone signature, this vehicle, lifetime,
 *   expiry against the car's trusted time). The cloud's routing id must be
 *   the signed one. A command that fails any check is refused, audited
 *   (kind 'sync') and answered "failed" with the code, never decided.
 * - Single use: the command id is claimed in sync.db (fsynced) before the
 *   car acts; a claimed id is never acted on again, also after a restart.
 *   A claim whose result was never stored (the process died while acting)
 *   is answered CK_REMOTE_INTERRUPTED ("may or may not have happened").
 * - The decision is the SAME `authorize()` as over BLE (owner or grant,
 *   revocation, validity, role mask, start PIN with the shared PinGuard),
 *   with proximity "not near" and no relay time; then the car's remote
 *   policy: a command not enabled in config.cloud.remote (and always
 *   passiveUnlock and key management) is denied not-permitted. A peer the
 *   car does not recognise learns nothing more than "denied".
 * - Every remote decision is audited (kind 'decision', origin 'cloud') in
 *   the store before the result is queued; actuation is `executeCommand`.
 * - The result goes to the durable outbox in one transaction with the claim
 *   being marked done; delivering it is the worker's job (idempotent by id).
 * - Never throws: every failure is an outcome.
 */
import type { Logger } from 'pino';
import { equalBytes, toHex, utf8 } from '../../core/bytes.js';
import { revealOf, type Credential, type Decision, type DenyReason } from '../../core/authorize.js';
import { signRemoteResult, verifyRemoteCommand, type RemoteCommand } from '../../core/cloud-docs.js';
import { decodeGrant, type KeyList } from '../../core/credentials.js';
import type { RandomSource } from '../../core/crypto/backend.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { toCarkeyError, type ErrorCode } from '../../core/errors.js';
import { keyIdOf } from '../../core/identity.js';
import { CredentialKind, DenyCategoryCode, encodeLockoutPayload, ResultStatus } from '../../core/messages.js';
import { decodePin } from '../../core/payloads.js';
import { commandName, type CommandName } from '../../core/roles.js';
import { openSealedBox, sealTo } from '../../core/sealed-box.js';
import type { PendingCommand as CloudPendingCommand } from '../../cloud-client/client.js';
import type { ActuatorPort } from '../actuator.js';
import type { AuditWriter } from '../audit-writer.js';
import { authorize } from '../authorizer.js';
import type { CarTime } from '../car-time.js';
import { executeCommand } from '../commands.js';
import { REMOTE_COMMANDS, type RemoteCommandName } from '../config.js';
import type { PinGuard } from '../pin-guard.js';
import type { VehicleStore } from '../store.js';
import type { SyncDb } from './sync-db.js';

export interface RemoteContext {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  readonly store: VehicleStore;
  /** the daemon's audit appends (a full disk degrades audit, never the decision) */
  readonly audit: Pick<AuditWriter, 'append'>;
  readonly syncDb: SyncDb;
  readonly actuator: ActuatorPort;
  readonly time: CarTime;
  readonly vehicleId: Uint8Array;
  readonly currentKeyList: () => KeyList | undefined;
  readonly onKeyListChanged: (list: KeyList) => void;
  readonly pinGuard: PinGuard;
  readonly monotonic: () => number;
  readonly remote: Readonly<Record<RemoteCommandName, boolean>>;
  readonly relayBoundMs: number;
  readonly startPin: string | undefined;
  readonly logger: Logger;
}

export type RemoteOutcome =
  /** decided (allowed, denied or failed) and the result queued */
  | { readonly kind: 'decided'; readonly status: 'ok' | 'denied' | 'failed'; readonly command: string; readonly reason?: string }
  /** refused before any decision (and answered with the code) */
  | { readonly kind: 'refused'; readonly code: ErrorCode }
  /** already taken: its result is queued or was delivered */
  | { readonly kind: 'seen'; readonly queued: boolean }
  /** not taken now (outbox full, disk failing): it stays pending in the cloud */
  | { readonly kind: 'deferred'; readonly code: ErrorCode };

interface ResultBody {
  readonly status: number;
  readonly category: number;
  readonly payload: Uint8Array;
}

const NO_PROXIMITY = { rssi: undefined, near: false, responseTimeMs: 0 } as const;

function isRemoteCommand(name: CommandName): name is RemoteCommandName {
  return (REMOTE_COMMANDS as readonly string[]).includes(name);
}

function failedBody(code: ErrorCode): ResultBody {
  return { status: ResultStatus.failed, category: DenyCategoryCode.none, payload: utf8(code) };
}

function sealedResult(context: RemoteContext, commandId: Uint8Array, recipient: Uint8Array, body: ResultBody): Uint8Array {
  const signed = signRemoteResult(context.crypto, context.store.identity.exportSeed(), { vehicleId: context.vehicleId, commandId, time: context.time.now(), ...body });
  return sealTo(context.crypto, context.random, recipient, signed);
}

/** Claim the id; on a claim, answer and mark done. Returns undefined when claimed and queued. */
function claim(context: RemoteContext, commandId: Uint8Array, caller: Uint8Array, expiresAt: number): RemoteOutcome | undefined {
  try {
    const claimed = context.syncDb.claimCommand(commandId, caller, expiresAt, context.time.now());
    if (claimed === 'full') return { kind: 'deferred', code: 'CK_SYNC_OUTBOX_FULL' };
    if (claimed === 'seen') return { kind: 'seen', queued: context.syncDb.hasResult(commandId) };
    return undefined;
  } catch (error) {
    return { kind: 'deferred', code: toCarkeyError(error).code };
  }
}

function queue(context: RemoteContext, commandId: Uint8Array, recipient: Uint8Array, body: ResultBody): ErrorCode | undefined {
  try {
    context.syncDb.completeCommand(commandId, sealedResult(context, commandId, recipient, body), context.time.now());
    return undefined;
  } catch (error) {
    const code = toCarkeyError(error).code;
    context.logger.error({ errorCode: code, commandId: toHex(commandId) }, 'could not queue a remote result; it is answered as interrupted after a restart');
    return code;
  }
}

function auditSafely(context: RemoteContext, kind: 'sync' | 'decision', fields: Record<string, string | number | boolean | null>): void {
  context.audit.append(kind, fields);
}

/** Refuse before deciding: audit, claim the routing id, answer "failed" with the code. */
function refuseUndecided(context: RemoteContext, pending: CloudPendingCommand, recipient: Uint8Array, expiresAt: number, code: ErrorCode): RemoteOutcome {
  const claimed = claim(context, pending.commandId, recipient, expiresAt);
  if (claimed !== undefined) return claimed;
  context.logger.warn({ errorCode: code, commandId: toHex(pending.commandId) }, 'remote command refused before a decision');
  auditSafely(context, 'sync', { what: 'command', result: 'refused', reason: code, commandId: toHex(pending.commandId), origin: 'cloud' });
  const failed = queue(context, pending.commandId, recipient, failedBody(code));
  return failed === undefined ? { kind: 'refused', code } : { kind: 'deferred', code: failed };
}

function validRecipient(context: RemoteContext, key: Uint8Array): boolean {
  return key.length === 32 && context.crypto.checkPublicKey(key).ok;
}

export async function handleRemoteCommand(context: RemoteContext, pending: CloudPendingCommand): Promise<RemoteOutcome> {
  const opened = openSealedBox(context.crypto, context.store.identity.exportSeed(), pending.box);
  const verified = opened.ok ? verifyRemoteCommand(context.crypto, opened.value, context.vehicleId, context.time.now()) : opened;
  if (!verified.ok) {
    // Answer to the key the cloud names (its only claim we can use); nothing is decided.
    if (!validRecipient(context, pending.caller)) {
      context.logger.warn({ errorCode: verified.error.code }, 'remote command refused; the cloud names no usable caller key');
      return { kind: 'refused', code: verified.error.code };
    }
    return refuseUndecided(context, pending, pending.caller, pending.expiresAt, verified.error.code);
  }
  const command = verified.value;
  if (!equalBytes(command.commandId, pending.commandId)) return refuseUndecided(context, pending, command.identity, command.expiresAt, 'CK_CLOUD_BAD_RESPONSE');
  const claimed = claim(context, command.commandId, command.identity, command.expiresAt);
  if (claimed !== undefined) return claimed;
  return decideAndAct(context, command);
}

async function decideAndAct(context: RemoteContext, command: RemoteCommand): Promise<RemoteOutcome> {
  const name = commandName(command.command);
  const keyId = keyIdOf(context.crypto, command.identity);
  const base = { origin: 'cloud', commandId: toHex(command.commandId), key: keyId, command: name ?? 'unknown' };
  let credential: Credential | undefined;
  if (command.credentialKind === CredentialKind.owner) credential = { kind: 'owner' };
  else {
    const grant = decodeGrant(command.credential);
    if (grant.ok) credential = { kind: 'grant', grant: grant.value };
  }
  let decision: Decision;
  let pinLocked = false;
  let pinLockedMs = 0;
  const enabled = name !== undefined && isRemoteCommand(name) && context.remote[name];
  if (name === undefined || credential === undefined) {
    decision = { allow: false, reason: name === undefined ? 'not-permitted' : 'grant-invalid', subject: `key:${keyId}` };
  } else {
    const started = context.monotonic();
    // Per key, as over BLE: another key's wrong PINs never lock this one out.
    const pinSubject = { key: toHex(command.identity), owner: credential.kind === 'owner' };
    pinLockedMs = enabled && name === 'start' ? context.pinGuard.lockedFor(pinSubject, started) : 0;
    pinLocked = pinLockedMs > 0;
    const pin = name === 'start' && enabled ? decodePin(command.args) : { ok: true as const, value: undefined };
    decision = authorize(context.crypto, { relayBoundMs: context.relayBoundMs, startPin: context.startPin }, {
      vehicleId: context.vehicleId,
      keyList: context.currentKeyList(),
      trustedNow: context.time.now(),
      peerKey: command.identity,
      credential,
      command: name,
      proximity: NO_PROXIMITY,
      // As over BLE: a malformed PIN is a wrong one; while the guard is locked, the phone is told for how long.
      pin: pinLocked ? '' : pin.ok ? pin.value : '',
      pinLocked,
    });
    if (enabled && name === 'start' && context.startPin !== undefined && !pinLocked) {
      if (decision.allow) context.pinGuard.record(pinSubject, 'ok', started);
      else if (decision.reason === 'pin-wrong') context.pinGuard.record(pinSubject, 'wrong', started);
    }
    // The car's remote policy, after recognition: a recognised peer is told "not permitted".
    const recognised = decision.allow || revealOf(decision.reason) !== undefined;
    if (!enabled && recognised) decision = { allow: false, reason: 'not-permitted', subject: decision.subject };
  }
  const audit = { ...base, subject: decision.subject, ...(pinLocked ? { pinLocked: true } : {}), ...(enabled ? {} : { remoteDisabled: true }) };
  if (!decision.allow || name === undefined) {
    const reason: DenyReason = decision.allow ? 'not-permitted' : decision.reason;
    auditSafely(context, 'decision', { ...audit, result: 'deny', reason });
    context.logger.info({ command: name ?? 'unknown', reason, subject: decision.subject, origin: 'cloud' }, 'remote command denied');
    const category = revealOf(reason);
    const payload = category === 'locked-out' ? encodeLockoutPayload(Math.ceil(pinLockedMs / 1000)) : new Uint8Array(0);
    const failed = queue(context, command.commandId, command.identity, { status: ResultStatus.denied, category: category === undefined ? DenyCategoryCode.none : DenyCategoryCode[category], payload });
    return failed === undefined ? { kind: 'decided', status: 'denied', command: name ?? 'unknown', reason } : { kind: 'deferred', code: failed };
  }
  const outcome = await executeCommand(
    {
      crypto: context.crypto,
      store: context.store,
      actuator: context.actuator,
      vehicleId: context.vehicleId,
      currentKeyList: context.currentKeyList,
      trustedNow: () => context.time.now(),
      time: context.time,
      startPinRequired: context.startPin !== undefined,
      onKeyListChanged: context.onKeyListChanged,
    },
    name,
    command.args,
  );
  let body: ResultBody;
  if (outcome.status === 'ok') {
    auditSafely(context, 'decision', { ...audit, result: 'allow', role: decision.role, ...(outcome.detail ?? {}) });
    context.logger.info({ command: name, subject: decision.subject, role: decision.role, origin: 'cloud' }, 'remote command allowed');
    body = { status: ResultStatus.ok, category: DenyCategoryCode.none, payload: outcome.payload ?? new Uint8Array(0) };
  } else {
    auditSafely(context, 'decision', { ...audit, result: 'allow', role: decision.role, failed: outcome.error.code });
    context.logger.warn({ command: name, errorCode: outcome.error.code, origin: 'cloud' }, 'remote command allowed but failed');
    body = failedBody(outcome.error.code);
  }
  const failed = queue(context, command.commandId, command.identity, body);
  if (failed !== undefined) return { kind: 'deferred', code: failed };
  return { kind: 'decided', status: outcome.status, command: name };
}

/** After a restart: answer every claim left without a result (the car may or may not have acted). */
export function answerInterrupted(context: RemoteContext): number {
  let answered = 0;
  for (const claimed of context.syncDb.interruptedCommands()) {
    auditSafely(context, 'sync', { what: 'command', result: 'interrupted', commandId: toHex(claimed.commandId), origin: 'cloud' });
    if (queue(context, claimed.commandId, claimed.caller, failedBody('CK_REMOTE_INTERRUPTED')) === undefined) answered++;
  }
  return answered;
}
