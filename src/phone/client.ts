/**
 * CarkeyClient: the phone's side of carkey over any CentralTransport, for the
 * `carkey` CLI and any other front end.
 *
 * What it does: scan for a known car by its rotating advertising id (or for a
 * car in pairing mode), connect, run HELLO/CHALLENGE/REQUEST/RESULT through
 * the core PhoneSession, send further commands on the same session
 * (`VehicleConnection.command`), pair through PhonePairing, and deliver this
 * phone's queued key lists.
 *
 * Guarantees:
 * - Everything it depends on is injected: transport factory, crypto, RNG,
 *   wall clock, sleep, key store, progress callback. No globals.
 * - Scanning, connecting and every answer have deadlines (CK_TRANSPORT_NOT_FOUND,
 *   CK_TRANSPORT_TIMEOUT). Transient transport failures before any command
 *   was sent are retried with exponential backoff; refusals and denials never
 *   are, and nothing is retried once a command may have reached the car.
 * - Command answers are typed: ok (with the decoded payload), denied (with
 *   the category the car revealed) or failed. A generic refusal (unknown or
 *   revoked key, tampering, expired challenge) is CK_PROTO_REFUSED. A link
 *   that closes after a REQUEST/COMMAND was sent and before its RESULT is
 *   CK_PROTO_NO_ANSWER (the car may have acted; never retried), distinct from
 *   a link lost before anything was asked (CK_TRANSPORT_DISCONNECTED, retried).
 * - An owner's queued key lists are delivered first thing on every
 *   connection (keyListPush as the signed REQUEST) and dequeued only after
 *   the car confirmed the version in force; when another owner device moved
 *   the car's list on, the queued revocations are re-applied on top of the
 *   car's list rather than lost or rolled back.
 * - Pairing stores nothing unless the person confirmed the 6-digit code and
 *   the car accepted; the car's key is pinned from the signed pairing challenge.
 * - `close()` always disconnects the link and releases the radio.
 */
import { noTrace, type PhaseTrace } from '../common/phase-trace.js';
import { equalBytes, toHex } from '../core/bytes.js';
import type { Grant, KeyList } from '../core/credentials.js';
import type { Clock, Crypto, RandomSource } from '../core/crypto/index.js';
import { CarkeyError, isCarkeyError, toCarkeyError, type ErrorCode, type Result } from '../core/errors.js';
import { decodeServiceData, matchesAdvertisingId, PHONE_BEHIND_EPOCHS, vehicleIdOf } from '../core/identity.js';
import { decodeStatus, decodeVersion, encodeAuditRead, encodePin, MAX_AUDIT_PAGE, type StatusPayload } from '../core/payloads.js';
import { PhonePairing, PhoneSession, type ChallengeInfo, type PhoneCredential } from '../core/phone-session.js';
import { COMMAND_PERMISSION, ROLE_MASK, type CommandName } from '../core/roles.js';
import { centralChunks, MessageChannel } from '../transport/channel.js';
import type { CentralLink, CentralTransport, Discovery } from '../transport/types.js';
import { decodeAuditPage, type AuditPage } from '../core/audit-page.js';
import { seedSigner } from '../core/signer.js';
import type { AddressHints } from './address-hints.js';
import { buildPairingKeyList, checkCarKeyList, checkPairingRequirement, pendingAfterDelivery } from './key-lists.js';
import { deliverPending, type DeliveryReport, type Outcome } from './pending-delivery.js';
import { checkName, isValidName, uniqueName, type VehicleRecord } from './vehicle-record.js';

/** What the client needs from a key store (KeyStore implements it). */
export interface VehicleStore {
  updateVehicle(vehicleId: Uint8Array, change: (current: VehicleRecord | undefined) => VehicleRecord): Promise<VehicleRecord>;
  listVehicles(): VehicleRecord[];
}

export type ProgressEvent =
  | { readonly kind: 'scanning'; readonly target: string; readonly timeoutMs: number }
  | { readonly kind: 'found'; readonly address: string; readonly rssi: number | undefined }
  /** the car was recognised by its signed CHALLENGE, not its advertising id: its clock is far from this phone's */
  | { readonly kind: 'found-by-signature'; readonly address: string }
  | { readonly kind: 'connecting'; readonly address: string; readonly attempt: number }
  | { readonly kind: 'retrying'; readonly attempt: number; readonly delayMs: number; readonly error: CarkeyError }
  | { readonly kind: 'connected'; readonly keyListVersion: number }
  | { readonly kind: 'delivering'; readonly version: number }
  | { readonly kind: 'delivered'; readonly version: number }
  | { readonly kind: 'delivery-failed'; readonly version: number; readonly reason: string }
  | { readonly kind: 'pair-code'; readonly code: string }
  | { readonly kind: 'waiting-for-car'; readonly timeoutMs: number };

export interface ClientDeps {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  /** wall clock (ms since the Unix epoch): advertising-id epochs, key-list timestamps */
  readonly clock: Clock;
  readonly sleep: (ms: number) => Promise<void>;
  /** opens the radio; called once per operation, closed at its end */
  readonly openTransport: () => Promise<CentralTransport>;
  readonly store: VehicleStore;
  readonly progress?: (event: ProgressEvent) => void;
  /** phase marks for performance work: hello, challenge, request, result (src/common/phase-trace.ts) */
  readonly trace?: PhaseTrace;
  /**
   * Where each car was last reached, for a transport that can connect to an address it has not
   * scanned yet (the sim radio; noble cannot): the connection to the remembered address is then
   * started together with the scan and completes at the car's first advertising event, not at
   * the one after the scan heard it. Still used only if the scan sees the car's rotating id at
   * that address; the CHALLENGE signature is checked as always.
   */
  readonly addressHints?: AddressHints;
}

export interface ClientTimeouts {
  /** how long to scan for the car */
  readonly scanMs: number;
  /** connect + MTU + discovery + subscription */
  readonly connectMs: number;
  /** each answer from the car */
  readonly answerMs: number;
  /** pairing: how long to wait for the confirmation on the car */
  readonly pairConfirmMs: number;
  /** attempts for transient failures without a deadline (1 = no retry); with deadlineMs, retries run until it */
  readonly attempts: number;
  /** first backoff delay; doubles per retry */
  readonly backoffMs: number;
  /**
   * A deadline for the whole operation (scans, connects, retries, every answer), in ms from the
   * client's creation: each step gets at most what is left, and nothing is sent once it has passed.
   * The wait for a person to confirm pairing on the car (pairConfirmMs) is not counted. Default: none.
   */
  readonly deadlineMs?: number;
}

/**
 * A carkey advertiser whose rotating id matches none of this phone's cars
 * for this long is tried by its signed CHALLENGE instead: a car whose clock
 * is far off (no RTC, a bad NTP answer) advertises ids for another time, but
 * it still signs with the pinned key (docs/protocol.md §14).
 */
export const SIGNATURE_FALLBACK_AFTER_MS = 1500;
/** At most this many unmatched advertisers are tried per connection attempt. */
export const SIGNATURE_FALLBACK_MAX = 4;

/** Longest wait between two attempts (the backoff doubles up to this). */
export const MAX_BACKOFF_MS = 1000;

export const DEFAULT_TIMEOUTS: ClientTimeouts = { scanMs: 10_000, connectMs: 10_000, answerMs: 5_000, pairConfirmMs: 120_000, attempts: 3, backoffMs: 250 };

/** Transport failures worth another attempt before any command was sent. */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['CK_TRANSPORT_CONNECT_FAILED', 'CK_TRANSPORT_DISCONNECTED', 'CK_TRANSPORT_TIMEOUT', 'CK_FRAME_TIMEOUT']);

/**
 * `carkey pair` found carkey advertisers, none with the pairing flag: the car is there but not
 * in pairing mode (say that, not "move closer"). Cars that are not carkey cars are not counted.
 */
export function notInPairingMode(seen: readonly Discovery[]): CarkeyError | undefined {
  const cars = seen.filter((discovery) => decodeServiceData(discovery.serviceData) !== undefined).length;
  if (cars === 0) return undefined;
  const what = cars === 1 ? 'a car is nearby but not in pairing mode' : `${cars} cars are nearby but none is in pairing mode`;
  return new CarkeyError('CK_PAIRING_NOT_ACTIVE', what, { carsNearby: cars });
}

export function isTransient(error: CarkeyError): boolean {
  return TRANSIENT.has(error.code);
}

/** Outcome (a typed answer to one command) and DeliveryReport live with the shared delivery code. */
export type { DeliveryReport, Outcome } from './pending-delivery.js';
export { describeOutcome } from './pending-delivery.js';

export interface ScanEntry {
  readonly discovery: Discovery;
  readonly pairing: boolean;
  /** local name of the stored vehicle whose advertising id matches */
  readonly vehicle: string | undefined;
}

/** Pick the credential for `command`: owner, else a held grant allowing it (valid now first). */
export function chooseCredential(record: VehicleRecord, command: CommandName, now: number): PhoneCredential {
  if (record.owner) return { kind: 'owner' };
  const needed = COMMAND_PERMISSION[command];
  const allowing = record.grants.filter((grant) => (ROLE_MASK[grant.role] & grant.permissions & needed) === needed);
  if (allowing.length === 0) {
    const detail = record.grants.length === 0 ? 'no key has been accepted for it' : `no key you hold allows "${command}"`;
    throw new CarkeyError('CK_PHONE_NO_CREDENTIAL', `${record.name}: ${detail}`);
  }
  const validNow = (grant: Grant): boolean => grant.notBefore <= now && now < grant.notAfter;
  const chosen = allowing.find(validNow) ?? allowing.sort((a, b) => b.notAfter - a.notAfter)[0];
  if (chosen === undefined) throw new CarkeyError('CK_PHONE_NO_CREDENTIAL', record.name);
  return { kind: 'grant', bytes: chosen.bytes };
}

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw result.error;
  return result.value;
}

/** What a phone is told when the car refuses its key (CLI and web app say the same). */
export const REFUSED_KEY_TEXT = 'the car does not accept this key (revoked, replaced, or the car was reset); ask an owner';

/** The reason text of a failed RESULT (or remote result), printable and bounded. */
export function failureReason(payload: Uint8Array): string {
  if (payload.length === 0) return 'no reason given';
  try {
    // eslint-disable-next-line no-control-regex
    return new TextDecoder('utf-8', { fatal: true }).decode(payload).replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 200);
  } catch {
    return `${payload.length} bytes of binary detail`;
  }
}

/** One connected link with its message channel. */
class Link {
  private closed = false;

  constructor(
    private readonly link: CentralLink,
    private readonly channel: MessageChannel,
    private readonly answerMs: number,
    /** bounds each answer's wait by the client's deadline (throws once it has passed) */
    private readonly within: (ms: number) => number = (ms) => ms,
  ) {
    link.onClose((reason) => channel.close(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `the car closed the link (${reason})`)));
  }

  /** Send and wait for the answer; `bounded` false only for waits on a person (pairing confirmation). */
  async exchange(message: Uint8Array, timeoutMs = this.answerMs, bounded = true): Promise<Uint8Array> {
    const waitMs = bounded ? this.within(timeoutMs) : timeoutMs;
    await this.channel.send(message);
    return this.channel.next(waitMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channel.close(new CarkeyError('CK_PROTO_SESSION_CLOSED', 'closed by this phone'));
    try {
      await this.link.disconnect();
    } catch {
      // the link may already be gone; closing is best effort
    }
  }
}

/** An authenticated session with one car. Obtain with `CarkeyClient.connect`. */
export class VehicleConnection {
  private requested = false;
  private ended = false;
  private disposed = false;
  private credential: PhoneCredential | undefined;

  constructor(
    private readonly link: Link,
    private readonly session: PhoneSession,
    private record: VehicleRecord,
    /** what the car said in its CHALLENGE */
    readonly challenge: ChallengeInfo,
    private readonly clock: Clock,
    private readonly onClose: () => Promise<void>,
    private readonly trace: PhaseTrace = noTrace,
  ) {}

  get vehicle(): VehicleRecord {
    return this.record;
  }

  /** Send one command (the first one is the signed REQUEST) and open the RESULT. */
  async command(command: CommandName, args: Uint8Array = new Uint8Array(0)): Promise<Outcome<Uint8Array>> {
    if (this.ended || this.disposed) throw new CarkeyError('CK_PROTO_SESSION_CLOSED');
    let message: Uint8Array;
    this.trace(this.requested ? 'command' : 'request', { command });
    if (!this.requested) {
      this.credential ??= chooseCredential(this.record, command, this.clock());
      message = this.session.request(this.credential, command, args);
      this.requested = true;
    } else {
      message = this.session.command(command, args);
    }
    let answer: Uint8Array;
    try {
      answer = await this.link.exchange(message);
      this.trace('result');
    } catch (error) {
      this.ended = true; // no answer: the session's state is unknown, so it cannot carry another command
      if (isCarkeyError(error, 'CK_TRANSPORT_DISCONNECTED')) throw this.session.onLinkClosed(`no RESULT for "${command}"`);
      throw error;
    }
    const result = this.session.onResult(answer);
    if (!result.ok) {
      this.ended = true;
      if (result.error.code === 'CK_PROTO_REFUSED') {
        throw new CarkeyError('CK_PROTO_REFUSED', REFUSED_KEY_TEXT);
      }
      throw result.error;
    }
    const value = result.value;
    if (value.status === 'ok') return { status: 'ok', value: value.payload };
    if (value.status === 'denied') return value.retryAfterSeconds === undefined ? { status: 'denied', category: value.category } : { status: 'denied', category: value.category, retryAfterSeconds: value.retryAfterSeconds };
    return { status: 'failed', reason: failureReason(value.payload) };
  }

  /** Send a command and decode its ok payload. */
  async run<T>(command: CommandName, args: Uint8Array, decode: (payload: Uint8Array) => Result<T>): Promise<Outcome<T>> {
    const outcome = await this.command(command, args);
    if (outcome.status !== 'ok') return outcome;
    return { status: 'ok', value: unwrap(decode(outcome.value)) };
  }

  unlock(): Promise<Outcome<Uint8Array>> {
    return this.command('unlock');
  }

  lock(): Promise<Outcome<Uint8Array>> {
    return this.command('lock');
  }

  trunk(): Promise<Outcome<Uint8Array>> {
    return this.command('trunk');
  }

  start(pin?: string): Promise<Outcome<Uint8Array>> {
    return this.command('start', pin === undefined ? new Uint8Array(0) : encodePin(pin));
  }

  status(): Promise<Outcome<StatusPayload>> {
    return this.run('status', new Uint8Array(0), decodeStatus);
  }

  /** The car's current key list, checked (vehicle, owner signature). */
  async keyListGet(crypto: Crypto): Promise<Outcome<KeyList | undefined>> {
    return this.run('keyListGet', new Uint8Array(0), (payload) => checkCarKeyList(crypto, payload, this.record.vehicleId));
  }

  /** Deliver a key list; ok carries the version the car has in force afterwards. */
  keyListPush(list: KeyList): Promise<Outcome<number>> {
    return this.run('keyListPush', list.bytes, decodeVersion);
  }

  auditRead(fromSeq: number, limit = MAX_AUDIT_PAGE): Promise<Outcome<AuditPage>> {
    return this.run('auditRead', encodeAuditRead({ fromSeq, limit }), decodeAuditPage);
  }

  /** Update the record this connection works with (after the store changed it). */
  replaceRecord(record: VehicleRecord): void {
    this.record = record;
  }

  /** Disconnect and release the radio. Idempotent. */
  async close(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.link.close();
    await this.onClose();
  }
}

export interface PairingRequest {
  /** this phone's seed (unlocked) */
  readonly seed: Uint8Array;
  /** the name the car shows for this phone (1..32 bytes) */
  readonly phoneName: string;
  /** local name for the vehicle; default: the name the car reports */
  readonly localName?: string;
  /** show the code and ask the person whether the car shows the same */
  readonly confirmCode: (code: string) => Promise<boolean>;
}

export class CarkeyClient {
  private readonly timeouts: ClientTimeouts;
  private readonly deadlineAt: number | undefined;

  constructor(
    private readonly deps: ClientDeps,
    timeouts: Partial<ClientTimeouts> = {},
  ) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
    this.deadlineAt = this.timeouts.deadlineMs === undefined ? undefined : performance.now() + this.timeouts.deadlineMs;
  }

  /** Time left before the deadline (Infinity without one). */
  private left(): number {
    return this.deadlineAt === undefined ? Infinity : Math.floor(this.deadlineAt - performance.now());
  }

  /** At most `stepMs`, and no more than is left of the deadline; throws CK_TRANSPORT_TIMEOUT once it has passed. */
  private readonly within = (stepMs: number): number => {
    const left = this.left();
    if (left <= 0) throw new CarkeyError('CK_TRANSPORT_TIMEOUT', `the deadline for the whole command (${this.timeouts.deadlineMs ?? 0} ms) has passed`);
    return Math.min(stepMs, left);
  };

  private progress(event: ProgressEvent): void {
    this.deps.progress?.(event);
  }

  /** Every carkey car advertising within the scan time, matched against stored vehicles. */
  async scan(timeoutMs = this.timeouts.scanMs): Promise<ScanEntry[]> {
    const { crypto, clock } = this.deps;
    const vehicles = this.deps.store.listVehicles();
    const transport = await this.deps.openTransport();
    try {
      this.progress({ kind: 'scanning', target: 'carkey cars', timeoutMs });
      const { seen } = await transport.scan({ timeoutMs });
      const now = clock();
      return seen.map((discovery) => {
        const data = decodeServiceData(discovery.serviceData);
        const vehicle = data === undefined ? undefined : vehicles.find((record) => matchesAdvertisingId(crypto, record.advSecret, data.advId, now, PHONE_BEHIND_EPOCHS));
        return { discovery, pairing: data?.pairing ?? false, vehicle: vehicle?.name };
      });
    } finally {
      await transport.close();
    }
  }

  /**
   * Connect to `record`'s car and authenticate it (pinned key). An owner's
   * queued key lists are delivered before this resolves; see `delivery`.
   */
  async connect(record: VehicleRecord, seed: Uint8Array): Promise<{ connection: VehicleConnection; delivery: DeliveryReport }> {
    const { crypto, clock } = this.deps;
    const transport = await this.deps.openTransport();
    try {
      const tried = new Set<string>();
      const { link, session, challenge, address } = await this.withRetries(async (attempt) => {
        for (;;) {
          const { link: opened, matched, address } = await this.openCarLink(transport, attempt, record, tried);
          try {
            const phone = new PhoneSession({ crypto, random: this.deps.random, identitySeed: seed, carIdentityKey: record.carIdentityKey });
            const trace = this.deps.trace ?? noTrace;
            trace('hello');
            const challengeBytes = await opened.exchange(phone.start());
            trace('challenge');
            const info = phone.onChallenge(challengeBytes);
            if (!info.ok && !matched && info.error.code === 'CK_PROTO_BAD_CAR_SIGNATURE' && tried.size < SIGNATURE_FALLBACK_MAX) {
              // Not our car (another carkey car nearby): try the next unmatched advertiser.
              tried.add(address);
              await opened.close();
              continue;
            }
            const value = unwrap(info);
            if (!matched) this.progress({ kind: 'found-by-signature', address });
            return { link: opened, session: phone, challenge: value, address };
          } catch (error) {
            await opened.close();
            throw error;
          }
        }
      });
      this.progress({ kind: 'connected', keyListVersion: challenge.keyListVersion });
      // The car proved itself (signed CHALLENGE) at `address`: remember it for the next connection,
      // when this one closes, so writing the hint never delays a REQUEST (the car times CHALLENGE → REQUEST).
      const onClose = async (): Promise<void> => {
        this.deps.addressHints?.set(toHex(record.vehicleId), address);
        await transport.close();
      };
      const connection = new VehicleConnection(link, session, record, challenge, clock, onClose, this.deps.trace);
      try {
        const delivery = await this.deliverPending(connection, seed);
        return { connection, delivery };
      } catch (error) {
        await connection.close();
        throw error;
      }
    } catch (error) {
      await transport.close();
      throw error;
    }
  }

  /** Connect, run `use`, always disconnect. */
  async withConnection<T>(record: VehicleRecord, seed: Uint8Array, use: (connection: VehicleConnection, delivery: DeliveryReport) => Promise<T>): Promise<T> {
    const { connection, delivery } = await this.connect(record, seed);
    try {
      return await use(connection, delivery);
    } finally {
      await connection.close();
    }
  }

  /** Owner pairing with a car in pairing mode. Returns the stored record. */
  async pair(request: PairingRequest): Promise<VehicleRecord> {
    const phoneName = checkName(request.phoneName, 'phone name');
    const localName = request.localName === undefined ? undefined : checkName(request.localName, 'vehicle name');
    const transport = await this.deps.openTransport();
    try {
      const link = await this.withRetries((attempt) =>
        this.openLink(transport, attempt, 'a car in pairing mode', (discovery) => decodeServiceData(discovery.serviceData)?.pairing ?? false, notInPairingMode),
      );
      try {
        return await this.runPairing(link, request.seed, request.confirmCode, phoneName, localName);
      } finally {
        await link.close();
      }
    } finally {
      await transport.close();
    }
  }

  private async runPairing(
    link: Link,
    seed: Uint8Array,
    confirmCode: (code: string) => Promise<boolean>,
    phoneName: string,
    localName: string | undefined,
  ): Promise<VehicleRecord> {
    const { crypto, clock, store } = this.deps;
    const pairing = new PhonePairing({ crypto, random: this.deps.random, identitySeed: seed });
    const { carIdentityKey } = unwrap(pairing.onChallenge(await link.exchange(pairing.start())));
    const vehicleId = vehicleIdOf(crypto, carIdentityKey);
    const others = store.listVehicles().filter((record) => !equalBytes(record.vehicleId, vehicleId));
    if (localName !== undefined && others.some((record) => record.name === localName)) throw new CarkeyError('CK_PHONE_VEHICLE_EXISTS', `"${localName}"`);
    const reveal = unwrap(pairing.reveal());
    const ready = unwrap(pairing.onReady(await link.exchange(reveal.message)));
    const current = unwrap(checkCarKeyList(crypto, ready.keyList, vehicleId));
    unwrap(checkPairingRequirement(current, ready.epoch, ready.requiredVersion));
    this.progress({ kind: 'pair-code', code: reveal.code });
    if (!(await confirmCode(reveal.code))) {
      throw new CarkeyError('CK_PROTO_PAIRING_NOT_CONFIRMED', 'you said the codes differ; nothing was stored (someone nearby may be interfering: try again elsewhere)');
    }
    const list = buildPairingKeyList(crypto, seed, { vehicleId, current, epoch: ready.epoch, requiredVersion: ready.requiredVersion, issuedAt: clock() });
    this.progress({ kind: 'waiting-for-car', timeoutMs: this.timeouts.pairConfirmMs });
    const answer = await link.exchange(pairing.confirm(list.bytes, phoneName), this.timeouts.pairConfirmMs, false);
    const outcome = unwrap(pairing.onResult(answer));
    const vehicleName = isValidName(outcome.vehicleName) ? outcome.vehicleName : 'car';
    const defaultName = uniqueName(vehicleName, new Set(others.map((record) => record.name)));
    const now = clock();
    return store.updateVehicle(vehicleId, (stored) => ({
      name: localName ?? stored?.name ?? defaultName,
      vehicleName,
      carIdentityKey,
      vehicleId,
      advSecret: outcome.advSecret,
      owner: true,
      grants: stored?.grants ?? [],
      issued: stored?.issued ?? [],
      keyList: list,
      pending: stored === undefined ? [] : pendingAfterDelivery(stored.pending, list),
      addedAt: stored?.addedAt ?? now,
    }));
  }

  private async openLink(transport: CentralTransport, attempt: number, target: string, accept: (discovery: Discovery) => boolean, miss?: (seen: readonly Discovery[]) => CarkeyError | undefined): Promise<Link> {
    return (await this.scanAndConnect(transport, attempt, target, accept, miss)).link;
  }

  /**
   * Find `record`'s car by its advertising id; failing that, after
   * SIGNATURE_FALLBACK_AFTER_MS, take a carkey advertiser not yet `tried`
   * (the caller checks its CHALLENGE signature against the pinned key).
   */
  private async openCarLink(transport: CentralTransport, attempt: number, record: VehicleRecord, tried: ReadonlySet<string>): Promise<{ link: Link; matched: boolean; address: string }> {
    const { crypto, clock } = this.deps;
    const { connectMs, answerMs } = this.timeouts;
    const scanMs = this.within(this.timeouts.scanMs);
    const matches = (discovery: Discovery): boolean => {
      const data = decodeServiceData(discovery.serviceData);
      return data !== undefined && matchesAdvertisingId(crypto, record.advSecret, data.advId, clock(), PHONE_BEHIND_EPOCHS);
    };
    const untried = (discovery: Discovery): boolean => !tried.has(discovery.address) && decodeServiceData(discovery.serviceData) !== undefined;
    const target = `"${record.name}"`;
    const early = this.earlyConnect(transport, record, tried);
    this.progress({ kind: 'scanning', target, timeoutMs: scanMs });
    // First look for the rotating id; a car whose clock is far off advertises another one, so
    // after SIGNATURE_FALLBACK_AFTER_MS take an unmatched carkey advertiser (some stacks report
    // an advertiser once per scan, so the candidate comes from what the first scan saw).
    const firstMs = Math.min(scanMs, SIGNATURE_FALLBACK_AFTER_MS);
    const first = await transport.scan({ timeoutMs: firstMs, accept: matches });
    let chosen = first.match ?? first.seen.find(untried);
    let seen = first.seen.length;
    if (chosen === undefined && scanMs > firstMs) {
      const rest = await transport.scan({ timeoutMs: scanMs - firstMs, accept: (discovery) => matches(discovery) || untried(discovery) });
      chosen = rest.match;
      seen = Math.max(seen, rest.seen.length);
    }
    if (chosen === undefined) {
      early?.abandon();
      const detail =
        seen === 0
          ? `no carkey car seen within ${scanMs} ms`
          : `${seen} carkey car(s) nearby, but none is ${target} (none answered with its signature): if ${target} was factory-reset, pair again with \`carkey pair\`; otherwise move closer`;
      throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', detail);
    }
    if (!matches(chosen) && this.left() <= 0) {
      early?.abandon();
      // Only an unverified candidate, and no time left to check its signature: the car was not found in time.
      throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', `${seen} carkey car(s) nearby, but none showed it is ${target} within the command's deadline (${this.timeouts.deadlineMs ?? 0} ms): if ${target} was factory-reset, pair again with \`carkey pair\`; otherwise move closer or allow more time (--timeout)`);
    }
    this.progress({ kind: 'found', address: chosen.address, rssi: chosen.rssi });
    this.progress({ kind: 'connecting', address: chosen.address, attempt });
    const link = (await early?.take(chosen.address)) ?? (await transport.connect(chosen, { timeoutMs: this.within(connectMs) }));
    return { link: new Link(link, new MessageChannel(centralChunks(link)), answerMs, this.within), matched: matches(chosen), address: chosen.address };
  }

  /**
   * The connection to the car's remembered address, started before the scan (first try of a
   * connection only, transports that support it). `take(address)` gives its link when the scan
   * chose that address (undefined if it failed: connect normally); otherwise, and on `abandon`,
   * a link it opens later is closed at once.
   */
  private earlyConnect(transport: CentralTransport, record: VehicleRecord, tried: ReadonlySet<string>): { take: (address: string) => Promise<CentralLink | undefined>; abandon: () => void } | undefined {
    const hint = tried.size === 0 ? this.deps.addressHints?.get(toHex(record.vehicleId)) : undefined;
    if (hint === undefined) return undefined;
    const pending = transport.connect({ address: hint, localName: undefined, serviceData: undefined, rssi: undefined }, { timeoutMs: this.within(this.timeouts.connectMs) });
    pending.catch(() => undefined); // a failure is seen in `take` (or never matters)
    const abandon = (): void => {
      pending.then((link) => link.disconnect(), () => undefined).catch(() => undefined);
    };
    return {
      take: async (address) => {
        if (address !== hint) {
          abandon();
          return undefined;
        }
        return pending.catch(() => undefined);
      },
      abandon,
    };
  }

  private async scanAndConnect(
    transport: CentralTransport,
    attempt: number,
    target: string,
    accept: (discovery: Discovery) => boolean,
    miss?: (seen: readonly Discovery[]) => CarkeyError | undefined,
  ): Promise<{ link: Link; discovery: Discovery }> {
    const { connectMs, answerMs } = this.timeouts;
    const scanMs = this.within(this.timeouts.scanMs);
    this.progress({ kind: 'scanning', target, timeoutMs: scanMs });
    const { match, seen } = await transport.scan({ timeoutMs: scanMs, accept });
    if (match === undefined) {
      const explained = miss?.(seen);
      if (explained !== undefined) throw explained;
      const detail = seen.length === 0 ? `no carkey car seen within ${scanMs} ms` : `${seen.length} carkey car(s) seen, none is ${target}`;
      throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', detail);
    }
    this.progress({ kind: 'found', address: match.address, rssi: match.rssi });
    this.progress({ kind: 'connecting', address: match.address, attempt });
    const link = await transport.connect(match, { timeoutMs: this.within(connectMs) });
    return { link: new Link(link, new MessageChannel(centralChunks(link)), answerMs, this.within), discovery: match };
  }

  private async withRetries<T>(attempt: (n: number) => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt(n);
      } catch (thrown) {
        const error = toCarkeyError(thrown);
        // With a deadline, transient failures before any command was sent are retried for as
        // long as it allows (a car whose slots are busy, docs/threat-model.md); without one,
        // `attempts` bounds them.
        if (!isTransient(error) || (this.timeouts.deadlineMs === undefined && n >= this.timeouts.attempts)) throw error;
        const delayMs = Math.min(this.timeouts.backoffMs * 2 ** (n - 1), MAX_BACKOFF_MS);
        // No retry that could not even start before the deadline: report what failed.
        if (delayMs >= this.left()) throw error;
        this.progress({ kind: 'retrying', attempt: n + 1, delayMs, error });
        await this.deps.sleep(delayMs);
      }
    }
  }

  /** See the module header: deliver, or rebase then deliver, the owner's queue (src/phone/pending-delivery.ts). */
  private deliverPending(connection: VehicleConnection, seed: Uint8Array): Promise<DeliveryReport> {
    return deliverPending({ ...this.deps, progress: (event) => this.progress(event) }, connection, seedSigner(this.deps.crypto, seed));
  }
}
