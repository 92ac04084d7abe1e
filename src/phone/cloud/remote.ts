/**
 * Remote commands through carkey-cloud, phone side (docs/protocol.md §17.4):
 * build and sign a remote command with the credential the phone would use
 * over BLE (`chooseCredential`), seal it to the pinned car key, post it,
 * long-poll for the car's answer, open it with the phone's seed and verify it
 * with the pinned car key for the command id that was sent.
 *
 * Guarantees:
 * - Every command has a fresh random 16-byte id (single use: the car refuses
 *   one it has seen) and an expiry (default 2 minutes, at most core's
 *   10-minute lifetime); after it the car will not carry it out.
 * - The wait is bounded (`waitMs`); reading the result is idempotent, so a
 *   cloud that is briefly unreachable while the phone waits is retried with
 *   backoff inside that bound. Posting is never retried. When the wait ends
 *   without an answer: CK_CLOUD_TIMEOUT with the command id and expiry.
 * - The cloud is untrusted: a result that does not open with this phone's
 *   seed, is not signed by the pinned car key, or answers another command is
 *   CK_CLOUD_BAD_RESPONSE (nothing is reported as done).
 * - The answer is the same typed Outcome as over BLE (ok / denied with the
 *   category / failed with the car's reason), so the CLI reports both paths
 *   with the same code.
 */
import { toHex } from '../../core/bytes.js';
import { COMMAND_ID_LENGTH, MAX_REMOTE_COMMAND_LIFETIME_MS, signRemoteCommand, verifyRemoteResult } from '../../core/cloud-docs.js';
import { CarkeyError, isCarkeyError, toCarkeyError } from '../../core/errors.js';
import { CredentialKind, DenyCategoryCode, ResultStatus, type DenyCategoryName } from '../../core/messages.js';
import { Command } from '../../core/roles.js';
import { openSealedBox, sealTo } from '../../core/sealed-box.js';
import { chooseCredential, failureReason, type Outcome } from '../client.js';
import type { VehicleRecord } from '../vehicle-record.js';
import { isCloudTransient, type PhoneCloudDeps } from './deps.js';

/** What a phone may ask through the cloud (the car's own config decides which it carries out). */
export const REMOTE_COMMAND_NAMES = ['lock', 'unlock', 'status', 'start', 'trunk'] as const;
export type RemoteCommandName = (typeof REMOTE_COMMAND_NAMES)[number];

export const DEFAULT_REMOTE_EXPIRY_MS = 2 * 60_000;
/** One long-poll of the result (the cloud holds at most 60 s; stay well inside proxies' idle limits). */
const POLL_SLICE_S = 25;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;
/** At most one result read per this long, whatever the cloud does with the long-poll. */
const MIN_POLL_MS = 1000;

export function isRemoteCommandName(value: string): value is RemoteCommandName {
  return (REMOTE_COMMAND_NAMES as readonly string[]).includes(value);
}

export interface RemoteRequest {
  readonly record: VehicleRecord;
  readonly command: RemoteCommandName;
  readonly args: Uint8Array;
  /** how long the command stays valid (ms, 1 s .. 10 min) */
  readonly expiresInMs: number;
  /** how long to wait for the car's answer (ms) */
  readonly waitMs: number;
}

export interface RemoteAnswer {
  readonly commandId: string;
  readonly expiresAt: number;
  /** the car's trusted time when it answered */
  readonly carTime: number;
  readonly outcome: Outcome<Uint8Array>;
}

function categoryName(code: number): DenyCategoryName {
  const entry = (Object.entries(DenyCategoryCode) as [DenyCategoryName, number][]).find(([, value]) => value === code);
  return entry === undefined ? 'none' : entry[0];
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Sign, seal, post, wait, open, verify (see the module header). */
export async function sendRemoteCommand(deps: PhoneCloudDeps, seed: Uint8Array, request: RemoteRequest): Promise<RemoteAnswer> {
  const { crypto, random, clock, client } = deps;
  const { record } = request;
  if (request.expiresInMs < 1000 || request.expiresInMs > MAX_REMOTE_COMMAND_LIFETIME_MS) {
    throw new CarkeyError('CK_USAGE', `a remote command expires 1 s to ${MAX_REMOTE_COMMAND_LIFETIME_MS / 60_000} minutes after it is sent`);
  }
  const credential = chooseCredential(record, request.command, clock());
  const commandId = random(COMMAND_ID_LENGTH);
  const issuedAt = clock();
  const expiresAt = issuedAt + request.expiresInMs;
  const signed = signRemoteCommand(crypto, seed, {
    vehicleId: record.vehicleId,
    commandId,
    issuedAt,
    expiresAt,
    credentialKind: credential.kind === 'owner' ? CredentialKind.owner : CredentialKind.grant,
    credential: credential.kind === 'owner' ? new Uint8Array(0) : credential.bytes,
    command: Command[request.command],
    args: request.args,
  });
  const box = sealTo(crypto, random, record.carIdentityKey, signed);
  const idText = toHex(commandId);
  const context = { commandId: idText, expiresAt: iso(expiresAt) };
  try {
    await client.postCommand(record.vehicleId, commandId, expiresAt, box);
  } catch (error) {
    if (isCarkeyError(error, 'CK_CLOUD_TIMEOUT')) {
      throw new CarkeyError('CK_CLOUD_TIMEOUT', `posting "${request.command}" got no answer; it may have reached the cloud, and the car may still carry it out until ${iso(expiresAt)}`, context);
    }
    throw error;
  }
  deps.progress?.(`sent "${request.command}" to ${record.name} through the cloud (command ${idText}, expires ${iso(expiresAt)})`);

  const started = clock();
  const deadline = started + request.waitMs;
  let retryMs = RETRY_FIRST_MS;
  let sealedResult: Uint8Array | undefined;
  while (sealedResult === undefined) {
    const remaining = deadline - clock();
    if (remaining <= 0) {
      throw new CarkeyError(
        'CK_CLOUD_TIMEOUT',
        `no answer from ${record.name} within ${Math.round(request.waitMs / 1000)} s; the car may be offline, and it will not carry the command out after ${iso(expiresAt)}`,
        context,
      );
    }
    deps.progress?.(`waiting for the car… (up to ${Math.ceil(remaining / 1000)} s more)`);
    const asked = clock();
    try {
      sealedResult = await client.getResult(record.vehicleId, commandId, { waitS: Math.max(1, Math.min(POLL_SLICE_S, Math.ceil(remaining / 1000))) });
      retryMs = RETRY_FIRST_MS;
      // A cloud that does not hold the long-poll is not asked in a tight loop.
      if (sealedResult === undefined && clock() - asked < MIN_POLL_MS) await deps.sleep(Math.min(MIN_POLL_MS, Math.max(0, deadline - clock())));
    } catch (thrown) {
      const error = toCarkeyError(thrown);
      if (!isCloudTransient(error)) throw error;
      const pause = Math.min(retryMs, Math.max(0, deadline - clock()));
      deps.progress?.(`${error.message}; asking again in ${pause} ms`);
      await deps.sleep(pause);
      retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    }
  }

  const opened = openSealedBox(crypto, seed, sealedResult);
  if (!opened.ok) throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', 'the result does not open with this phone’s key (altered on the way?); nothing is known about the command', { ...context, reason: opened.error.code });
  const verified = verifyRemoteResult(crypto, opened.value, record.carIdentityKey, commandId);
  if (!verified.ok) {
    throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', `the result is not the car's answer to this command (${verified.error.message}); nothing is known about the command`, { ...context, reason: verified.error.code });
  }
  const result = verified.value;
  let outcome: Outcome<Uint8Array>;
  if (result.status === ResultStatus.ok) outcome = { status: 'ok', value: result.payload };
  else if (result.status === ResultStatus.denied) outcome = { status: 'denied', category: categoryName(result.category) };
  else outcome = { status: 'failed', reason: failureReason(result.payload) };
  return { commandId: idText, expiresAt, carTime: result.time, outcome };
}
