/**
 * The web app's phone: pairing, commands, sharing, revocation and the audit
 * log over a chosen car, with `src/core` for every message and decision and
 * the CLI client's rules (src/phone/client.ts) for choosing a credential,
 * retrying and wording refusals; queued key lists are delivered by the same
 * code as the CLI's (src/phone/pending-delivery.ts).
 *
 * Differences from the CLI client, both forced by the browser:
 * - The person picks the car in the browser's chooser (no scanning from a
 *   page), so the car is recognised by its CHALLENGE signature under the
 *   pinned key; a device that is not this car fails with
 *   CK_PROTO_BAD_CAR_SIGNATURE and the person chooses again.
 * - Signing goes through an async Signer (a non-extractable WebCrypto key
 *   where available), via core's `…With` variants.
 *
 * Guarantees (as the CLI): nothing is retried once a REQUEST or COMMAND may
 * have reached the car (CK_PROTO_NO_ANSWER is reported as such); a refusal is
 * CK_PROTO_REFUSED with the CLI's text; pairing stores nothing unless the
 * person confirmed the code and the car accepted; an owner's queued key
 * lists are delivered first on every connection and dequeued only once the
 * car confirms the version in force; a revocation made out of range stays
 * queued. Every BLE action works with no network at all.
 */
import { equalBytes, toHex } from '../../core/bytes.js';
import { AuditCollector } from '../../core/audit-page.js';
import type { AuditEntry, AuditVerification } from '../../core/audit.js';
import { signGrantWith, signKeyListWith, type Grant, type KeyList } from '../../core/credentials.js';
import type { Clock, RandomSource } from '../../core/crypto/backend.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { CarkeyError, isCarkeyError, toCarkeyError, type ErrorCode, type Result } from '../../core/errors.js';
import { keyIdOf, vehicleIdOf } from '../../core/identity.js';
import { decodeStatus, decodeVersion, encodeAuditRead, encodePin, MAX_AUDIT_PAGE, type StatusPayload } from '../../core/payloads.js';
import { decodeAuditPage } from '../../core/audit-page.js';
import { PhonePairing, PhoneSession, type ChallengeInfo, type PhoneCredential } from '../../core/phone-session.js';
import { ROLE_MASK, type CommandName, type RoleName } from '../../core/roles.js';
import type { Signer } from '../../core/signer.js';
import { chooseCredential, DEFAULT_TIMEOUTS, failureReason, isTransient, REFUSED_KEY_TEXT, type Outcome, type ProgressEvent } from '../../phone/client.js';
import { deliverPending, type DeliveryReport } from '../../phone/pending-delivery.js';
import { checkCarKeyList, checkPairingRequirement, isCoveredBy, latestKnownKeyList, pairingKeyListBody, pendingAfterDelivery, revocationBody, type RevocationTarget } from '../../phone/key-lists.js';
import { checkLabel } from '../../phone/grant-label.js';
import { decodeShare, encodeShare } from '../../phone/share.js';
import { checkName, isValidName, MAX_ISSUED_GRANTS, uniqueName, type VehicleRecord } from '../../phone/vehicle-record.js';
import { centralChunks, MessageChannel } from '../../transport/channel.js';
import type { CentralLink } from '../../transport/types.js';
import type { DeviceLike, WebBluetoothTransport } from './bluetooth.js';
import type { WebStore } from './store.js';

/** The CLI's wording for a key the car refuses (src/phone/client.ts; the e2e browser test compares the two). */
export { REFUSED_KEY_TEXT } from '../../phone/client.js';

export type WebProgress = ProgressEvent | { readonly kind: 'choosing' } | { readonly kind: 'signing' } | { readonly kind: 'sending'; readonly command: CommandName };

export interface WebPhoneDeps {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  readonly clock: Clock;
  readonly store: WebStore;
  readonly transport: () => WebBluetoothTransport;
  /** this phone's signer (after the passphrase, for passphrase keys) */
  readonly signer: () => Promise<Signer>;
  readonly progress: (event: WebProgress) => void;
}

/** Failures after which a revocation simply stays queued (as `carkey revoke`). */
const UNREACHABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CK_TRANSPORT_NOT_FOUND',
  'CK_TRANSPORT_TIMEOUT',
  'CK_TRANSPORT_CONNECT_FAILED',
  'CK_TRANSPORT_DISCONNECTED',
  'CK_TRANSPORT_RADIO_UNAVAILABLE',
  'CK_TRANSPORT_NO_ADAPTER',
  'CK_FRAME_TIMEOUT',
  'CK_PROTO_NO_ANSWER',
]);

function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw result.error;
  return result.value;
}

/** The CLI's `expectOk`: denied → CK_DENIED with the category, failed → CK_PHONE_COMMAND_FAILED. */
export function expectOk<T>(outcome: Outcome<T>, command: string): T {
  if (outcome.status === 'ok') return outcome.value;
  if (outcome.status === 'denied') throw new CarkeyError('CK_DENIED', `${command}: ${outcome.category}`, { command, category: outcome.category });
  throw new CarkeyError('CK_PHONE_COMMAND_FAILED', `${command}: ${outcome.reason}`, { command });
}

class Link {
  private closed = false;
  constructor(
    private readonly link: CentralLink,
    private readonly channel: MessageChannel,
  ) {
    link.onClose((reason) => channel.close(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `the car closed the link (${reason})`)));
  }

  async exchange(message: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    await this.channel.send(message);
    return this.channel.next(timeoutMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channel.close(new CarkeyError('CK_PROTO_SESSION_CLOSED', 'closed by this phone'));
    await this.link.disconnect().catch(() => undefined);
  }
}

/** One authenticated session with a car. */
export class WebConnection {
  private requested = false;
  private ended = false;
  private credential: PhoneCredential | undefined;

  constructor(
    private readonly link: Link,
    private readonly session: PhoneSession,
    private record: VehicleRecord,
    readonly challenge: ChallengeInfo,
    private readonly clock: Clock,
    private readonly progress: (event: WebProgress) => void,
  ) {}

  get vehicle(): VehicleRecord {
    return this.record;
  }

  replaceRecord(record: VehicleRecord): void {
    this.record = record;
  }

  async command(command: CommandName, args: Uint8Array = new Uint8Array(0)): Promise<Outcome<Uint8Array>> {
    if (this.ended) throw new CarkeyError('CK_PROTO_SESSION_CLOSED');
    let message: Uint8Array;
    if (!this.requested) {
      this.credential ??= chooseCredential(this.record, command, this.clock());
      this.progress({ kind: 'signing' });
      message = await this.session.requestWith(this.credential, command, args);
      this.requested = true;
    } else {
      message = this.session.command(command, args);
    }
    this.progress({ kind: 'sending', command });
    let answer: Uint8Array;
    try {
      answer = await this.link.exchange(message, DEFAULT_TIMEOUTS.answerMs);
    } catch (error) {
      this.ended = true;
      if (isCarkeyError(error, 'CK_TRANSPORT_DISCONNECTED')) throw this.session.onLinkClosed(`no RESULT for "${command}"`);
      throw error;
    }
    const result = this.session.onResult(answer);
    if (!result.ok) {
      this.ended = true;
      if (result.error.code === 'CK_PROTO_REFUSED') throw new CarkeyError('CK_PROTO_REFUSED', REFUSED_KEY_TEXT);
      throw result.error;
    }
    const value = result.value;
    if (value.status === 'ok') return { status: 'ok', value: value.payload };
    if (value.status === 'denied') return { status: 'denied', category: value.category };
    return { status: 'failed', reason: failureReason(value.payload) };
  }

  async run<T>(command: CommandName, args: Uint8Array, decode: (payload: Uint8Array) => Result<T>): Promise<Outcome<T>> {
    const outcome = await this.command(command, args);
    if (outcome.status !== 'ok') return outcome;
    return { status: 'ok', value: unwrap(decode(outcome.value)) };
  }

  keyListGet(crypto: Crypto): Promise<Outcome<KeyList | undefined>> {
    return this.run('keyListGet', new Uint8Array(0), (payload) => checkCarKeyList(crypto, payload, this.record.vehicleId));
  }

  keyListPush(list: KeyList): Promise<Outcome<number>> {
    return this.run('keyListPush', list.bytes, decodeVersion);
  }

  close(): Promise<void> {
    this.ended = true;
    return this.link.close();
  }
}

export interface ShareRequest {
  readonly subject: Uint8Array;
  readonly role: Exclude<RoleName, 'owner'>;
  readonly notBefore: number;
  readonly notAfter: number;
  /** this phone's note on the grant (grant-label.ts); kept here, never put in the share */
  readonly label?: string | undefined;
}

export interface AuditReport {
  readonly entries: readonly AuditEntry[];
  readonly verification: Result<AuditVerification>;
}

export class WebPhone {
  /** the device chosen last (reused for retries within one action) */
  private device: DeviceLike | undefined;

  constructor(private readonly deps: WebPhoneDeps) {}

  private async choose(): Promise<DeviceLike> {
    this.deps.progress({ kind: 'choosing' });
    const device = await this.deps.transport().chooseCar();
    this.device = device;
    return device;
  }

  private async open(device: DeviceLike, attempt: number): Promise<Link> {
    this.deps.progress({ kind: 'connecting', address: device.name ?? device.id, attempt });
    const link = await this.deps.transport().connect(device, DEFAULT_TIMEOUTS.connectMs);
    return new Link(link, new MessageChannel(centralChunks(link)));
  }

  private async withRetries<T>(run: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run(attempt);
      } catch (thrown) {
        const error = toCarkeyError(thrown);
        if (attempt >= DEFAULT_TIMEOUTS.attempts || !isTransient(error)) throw error;
        const delayMs = DEFAULT_TIMEOUTS.backoffMs * 2 ** (attempt - 1);
        this.deps.progress({ kind: 'retrying', attempt: attempt + 1, delayMs, error });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  /** Choose the car, authenticate it by its pinned key, deliver queued key lists, run `use`, disconnect. */
  async withConnection<T>(record: VehicleRecord, use: (connection: WebConnection, delivery: DeliveryReport) => Promise<T>): Promise<T> {
    const { crypto, random, clock } = this.deps;
    const signer = await this.deps.signer();
    const device = await this.choose();
    const { link, session, challenge } = await this.withRetries(async (attempt) => {
      const opened = await this.open(device, attempt);
      try {
        const phone = new PhoneSession({ crypto, random, signer, carIdentityKey: record.carIdentityKey });
        const info = unwrap(phone.onChallenge(await opened.exchange(phone.start(), DEFAULT_TIMEOUTS.answerMs)));
        return { link: opened, session: phone, challenge: info };
      } catch (error) {
        await opened.close();
        if (isCarkeyError(error, 'CK_PROTO_BAD_CAR_SIGNATURE')) throw new CarkeyError('CK_PROTO_BAD_CAR_SIGNATURE', `the device you chose is not "${record.name}"; choose the right car`);
        throw error;
      }
    });
    this.deps.progress({ kind: 'connected', keyListVersion: challenge.keyListVersion });
    const connection = new WebConnection(link, session, record, challenge, clock, this.deps.progress);
    try {
      const delivery = await deliverPending({ crypto, clock, store: this.deps.store, progress: this.deps.progress }, connection, signer);
      return await use(connection, delivery);
    } finally {
      await connection.close();
    }
  }

  async command(record: VehicleRecord, command: 'unlock' | 'lock' | 'trunk'): Promise<void> {
    await this.withConnection(record, async (connection) => {
      expectOk(await connection.command(command), command);
    });
  }

  async start(record: VehicleRecord, pin: string | undefined): Promise<void> {
    await this.withConnection(record, async (connection) => {
      expectOk(await connection.command('start', pin === undefined ? new Uint8Array(0) : encodePin(pin)), 'start');
    });
  }

  status(record: VehicleRecord): Promise<StatusPayload> {
    return this.withConnection(record, async (connection) => expectOk(await connection.run('status', new Uint8Array(0), decodeStatus), 'status'));
  }

  /** The car-signed vehicle statement (for registering with the cloud; the caller checks it). */
  vehicleStatement(record: VehicleRecord): Promise<Uint8Array> {
    return this.withConnection(record, async (connection) => expectOk(await connection.command('vehicleStatement'), 'vehicleStatement'));
  }

  audit(record: VehicleRecord): Promise<AuditReport> {
    if (!record.owner) throw new CarkeyError('CK_PHONE_NOT_OWNER', 'reading the audit log needs an owner key');
    return this.withConnection(record, async (connection) => {
      const collector = new AuditCollector(1);
      for (let page = 0; page < 10_000; page++) {
        const read = expectOk(await connection.run('auditRead', encodeAuditRead({ fromSeq: collector.nextSeq, limit: MAX_AUDIT_PAGE }), decodeAuditPage), 'auditRead');
        if (!collector.add(read)) break;
      }
      return { entries: collector.all, verification: collector.verify(this.deps.crypto, record.carIdentityKey) };
    });
  }

  /** Owner pairing with a car in pairing mode (the CLI's runPairing). */
  async pair(phoneName: string, confirmCode: (code: string) => Promise<boolean>): Promise<VehicleRecord> {
    const name = checkName(phoneName, 'phone name');
    const { crypto, random, clock, store } = this.deps;
    const signer = await this.deps.signer();
    const device = await this.choose();
    const link = await this.withRetries((attempt) => this.open(device, attempt));
    try {
      const pairing = new PhonePairing({ crypto, random, signer });
      const { carIdentityKey } = unwrap(pairing.onChallenge(await link.exchange(pairing.start(), DEFAULT_TIMEOUTS.answerMs)));
      const vehicleId = vehicleIdOf(crypto, carIdentityKey);
      const others = store.listVehicles().filter((record) => !equalBytes(record.vehicleId, vehicleId));
      const reveal = unwrap(pairing.reveal());
      const ready = unwrap(pairing.onReady(await link.exchange(reveal.message, DEFAULT_TIMEOUTS.answerMs)));
      const current = unwrap(checkCarKeyList(crypto, ready.keyList, vehicleId));
      unwrap(checkPairingRequirement(current, ready.epoch, ready.requiredVersion));
      this.deps.progress({ kind: 'pair-code', code: reveal.code });
      if (!(await confirmCode(reveal.code))) {
        throw new CarkeyError('CK_PROTO_PAIRING_NOT_CONFIRMED', 'you said the codes differ; nothing was stored (someone nearby may be interfering: try again elsewhere)');
      }
      const list = await signKeyListWith(crypto, signer, pairingKeyListBody(signer.publicKey, { vehicleId, current, epoch: ready.epoch, requiredVersion: ready.requiredVersion, issuedAt: clock() }));
      this.deps.progress({ kind: 'waiting-for-car', timeoutMs: DEFAULT_TIMEOUTS.pairConfirmMs });
      const answer = await link.exchange(await pairing.confirmWith(list.bytes, name), DEFAULT_TIMEOUTS.pairConfirmMs);
      const outcome = unwrap(pairing.onResult(answer));
      const vehicleName = isValidName(outcome.vehicleName) ? outcome.vehicleName : 'car';
      const defaultName = uniqueName(vehicleName, new Set(others.map((record) => record.name)));
      const now = clock();
      return await store.updateVehicle(vehicleId, (stored) => ({
        name: stored?.name ?? defaultName,
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
    } finally {
      await link.close();
    }
  }

  /** Accept a `carkey1:` share addressed to this phone (the CLI's accept). */
  async accept(text: string): Promise<{ record: VehicleRecord; grant: Grant }> {
    const { crypto, clock, store } = this.deps;
    const bundle = unwrap(decodeShare(crypto, text));
    const self = (await this.deps.signer()).publicKey;
    if (!equalBytes(bundle.grant.subject, self)) {
      throw new CarkeyError('CK_PHONE_SHARE_NOT_FOR_ME', `it names key ${keyIdOf(crypto, bundle.grant.subject)}, yours is ${keyIdOf(crypto, self)}`);
    }
    const now = clock();
    const taken = new Set(store.listVehicles().filter((record) => !equalBytes(record.vehicleId, bundle.grant.vehicleId)).map((record) => record.name));
    const serialHex = toHex(bundle.grant.serial);
    const record = await store.updateVehicle(bundle.grant.vehicleId, (current) => {
      const grants = (current?.grants ?? []).filter((grant) => !equalBytes(grant.serial, bundle.grant.serial));
      // The sharer's label (unsigned, display only; share format 2) replaces an earlier one for this serial.
      const sharerLabels = Object.fromEntries(Object.entries(current?.sharerLabels ?? {}).filter(([serial]) => serial !== serialHex));
      if (bundle.sharerLabel !== undefined) sharerLabels[serialHex] = bundle.sharerLabel;
      return {
        name: current?.name ?? uniqueName(bundle.vehicleName, taken),
        vehicleName: current?.vehicleName ?? bundle.vehicleName,
        carIdentityKey: bundle.carIdentityKey,
        vehicleId: bundle.grant.vehicleId,
        advSecret: current?.owner === true ? current.advSecret : bundle.advSecret,
        owner: current?.owner ?? false,
        grants: [...grants, bundle.grant],
        issued: current?.issued ?? [],
        keyList: current?.keyList,
        pending: current?.pending ?? [],
        addedAt: current?.addedAt ?? now,
        sharerLabels,
      };
    });
    return { record, grant: bundle.grant };
  }

  /** Sign a time-boxed grant and return the `carkey1:` text (the CLI's share). */
  async share(record: VehicleRecord, request: ShareRequest): Promise<{ share: string; grant: Grant }> {
    if (!record.owner) throw new CarkeyError('CK_PHONE_NOT_OWNER', 'only an owner can share keys');
    const { crypto, clock, random, store } = this.deps;
    const signer = await this.deps.signer();
    if (equalBytes(request.subject, signer.publicKey)) throw new CarkeyError('CK_USAGE', 'that is your own key; owners need no grant');
    if (!crypto.checkPublicKey(request.subject).ok) throw new CarkeyError('CK_USAGE', 'that is not a valid public key (64 hex digits)');
    const label = request.label === undefined ? undefined : unwrap(checkLabel(request.label));
    const epoch = latestKnownKeyList(record)?.epoch ?? 0;
    const grant = await signGrantWith(crypto, signer, {
      vehicleId: record.vehicleId,
      epoch,
      serial: random(8),
      subject: request.subject,
      role: request.role,
      permissions: ROLE_MASK[request.role],
      notBefore: request.notBefore,
      notAfter: request.notAfter,
    });
    const now = clock();
    await store.updateVehicle(record.vehicleId, (current) => {
      const base = current ?? record;
      return { ...base, issued: [...base.issued, { grant, issuedAt: now, ...(label === undefined ? {} : { label }) }].slice(-MAX_ISSUED_GRANTS) };
    });
    return { share: encodeShare({ grant, carIdentityKey: record.carIdentityKey, advSecret: record.advSecret, vehicleName: record.vehicleName }), grant };
  }

  /**
   * Revoke a grant serial or a key: queue the signed list, then try to
   * deliver it. Out of range it stays queued (delivered: false).
   */
  async revoke(record: VehicleRecord, target: RevocationTarget): Promise<{ version: number; delivered: boolean; reason: string | undefined }> {
    if (!record.owner) throw new CarkeyError('CK_PHONE_NOT_OWNER', 'only an owner can revoke keys');
    const { crypto, clock, store } = this.deps;
    const signer = await this.deps.signer();
    const latest = latestKnownKeyList(record);
    if (latest === undefined) throw new CarkeyError('CK_PHONE_NOT_OWNER', `no key list known for ${record.name}; pair again`);
    const list = await signKeyListWith(crypto, signer, revocationBody(crypto, signer.publicKey, latest, target, clock()));
    const updated = await store.updateVehicle(record.vehicleId, (current) => {
      const base = current ?? record;
      const newest = latestKnownKeyList(base);
      if (newest !== undefined && newest.version >= list.version && !equalBytes(newest.bytes, latest.bytes)) throw new CarkeyError('CK_PHONE_STORE_BUSY', 'the key list changed meanwhile; try again');
      return { ...base, pending: [...base.pending.filter((pending) => !isCoveredBy(pending, list)), list] };
    });
    let delivery: DeliveryReport;
    try {
      delivery = await this.withConnection(updated, (_connection, report) => Promise.resolve(report));
    } catch (error) {
      const failure = toCarkeyError(error);
      if (UNREACHABLE.has(failure.code)) return { version: list.version, delivered: false, reason: failure.message };
      throw failure;
    }
    if (delivery.failure !== undefined) throw new CarkeyError('CK_PHONE_DELIVERY_FAILED', delivery.failure);
    const inForce = delivery.delivered ?? 0;
    if (inForce < list.version) throw new CarkeyError('CK_PHONE_DELIVERY_FAILED', `the car reports key list version ${inForce}`);
    return { version: inForce, delivered: true, reason: undefined };
  }

  /** For display: the last device chosen. */
  get lastDevice(): string | undefined {
    return this.device?.name ?? this.device?.id;
  }
}

export function shortKey(crypto: Crypto, key: Uint8Array): string {
  return `${keyIdOf(crypto, key)} (${toHex(key).slice(0, 8)}…)`;
}
