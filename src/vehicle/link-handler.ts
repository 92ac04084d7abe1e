/**
 * One BLE connection on the car: framing, the core session machine, the
 * decision, actuation, audit and metrics for everything that link sends.
 *
 * Guarantees:
 * - Unauthenticated peers only ever see CHALLENGE / PAIR_* replies or the one
 *   generic REFUSE, after which the link is dropped; the specific reason goes
 *   to metrics/logs and is counted in the refusal tally (one periodic
 *   'refusal-summary' audit entry, never one row per refusal: keyless peers
 *   cannot grow the disk).
 * - A link is *authenticated* only while it holds a credential valid now: an
 *   owner in the key list, or a recognised grant inside its validity window
 *   at the car's trusted time, not revoked. A recognised peer whose grant is
 *   expired or not yet valid gets its sealed RESULT (denied / expired) and
 *   the link is dropped; so is a session whose credential expires or is
 *   revoked later (at its next command, or by `revalidate`).
 * - A link that has not authenticated within `idleTimeoutMs` is dropped; an
 *   authenticated one after `sessionIdleMs` without an allowed command
 *   (denied commands do not extend it); a link exceeding its rate limit or
 *   the global one is dropped.
 * - Every decision for a recognised peer (allow or deny) is audited with
 *   reason, subject (key id or grant serial), command, RSSI and
 *   challenge→request time, before the RESULT is sent. If the audit append
 *   fails (disk full, read-only), the decision stands and the RESULT is
 *   still sent; the failure is counted (AuditWriter).
 * - The start-PIN lockout is per key (pin-guard.ts).
 * - Messages are processed one at a time per link, in order; no input makes
 *   this throw (errors end the session); no callback or timer body throws
 *   past its boundary.
 */
import type { Logger } from 'pino';
import { recognize, revealOf, type Credential, type Decision, type DenyReason, type Recognition } from '../core/authorize.js';
import { toHex } from '../core/bytes.js';
import { acceptKeyList, containsKey, decodeKeyList, MAX_OWNERS, nextVersion, type Grant, type KeyList } from '../core/credentials.js';
import type { RandomSource } from '../core/crypto/backend.js';
import type { Crypto } from '../core/crypto/policy.js';
import { CarkeyError, toCarkeyError } from '../core/errors.js';
import { keyIdOf } from '../core/identity.js';
import { REFUSE_BYTES, type PairReadyPlain, type PairReadyStatus } from '../core/messages.js';
import { decodePin } from '../core/payloads.js';
import { VehicleSession, type VehicleEvent } from '../core/vehicle-session.js';
import { MessageChannel, peripheralChunks } from '../transport/channel.js';
import type { PeripheralLink } from '../transport/types.js';
import type { ActuatorPort } from './actuator.js';
import type { AuditWriter } from './audit-writer.js';
import { authorize } from './authorizer.js';
import { guarded } from './boundary.js';
import { executeCommand, installKeyList, versionState } from './commands.js';
import type { CarTime } from './car-time.js';
import type { DaemonConfig } from './config.js';
import type { DaemonMetrics } from './metrics.js';
import type { PairingController } from './pairing-mode.js';
import type { PinGuard } from './pin-guard.js';
import { ProximityTracker } from './proximity.js';
import { TokenBucket } from './rate-limit.js';
import type { RefusalTally } from './refusal-tally.js';
import type { VehicleStore } from './store.js';

export interface LinkDeps {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  readonly config: DaemonConfig;
  readonly store: VehicleStore;
  readonly actuator: ActuatorPort;
  readonly metrics: DaemonMetrics;
  readonly logger: Logger;
  readonly pairing: PairingController;
  readonly globalLimiter: TokenBucket;
  readonly pinGuard: PinGuard;
  /** Audit appends that never throw (decisions, pairing-mode events). */
  readonly audit: AuditWriter;
  /** Counts refusals to unrecognised peers (written as periodic summaries). */
  readonly refusals: RefusalTally;
  /** Called when this link becomes authenticated (the daemon drops older links of the same key). */
  readonly onAuthenticated: (link: LinkHandler) => void;
  readonly vehicleId: Uint8Array;
  /** Monotonic ms (timeouts, response time). */
  readonly monotonic: () => number;
  /** System wall clock ms (before the trusted floor). */
  readonly wallClock: () => number;
  readonly trustedNow: () => number;
  readonly time: CarTime;
  readonly keyList: () => KeyList | undefined;
  readonly onKeyListChanged: (list: KeyList) => void;
  /** Show the pairing code / messages on the car's display. */
  readonly show: (rows: readonly string[]) => void;
  /** Called after this link's unlock or passiveUnlock was carried out (walk-away lock watches that phone). */
  readonly onUnlocked?: (link: LinkHandler) => void;
}

export type LinkState = 'unauthenticated' | 'pairing' | 'authenticated' | 'closed';

/** The credential an authenticated link holds. */
export interface LinkPeer {
  readonly key: Uint8Array;
  /** public key hex: the identity for "one link per key" and the PIN guard */
  readonly keyHex: string;
  readonly credential: Credential;
  readonly grant: Grant | undefined;
}

/** Denials that mean the credential is not valid now: answer, then drop the link. */
const NOT_VALID_NOW: ReadonlySet<DenyReason> = new Set<DenyReason>(['grant-expired', 'grant-not-yet-valid']);

/** The grant's window at trusted time `now` (decide() applies the same rule). */
function windowDenial(grant: Grant | undefined, now: number): DenyReason | undefined {
  if (grant === undefined) return undefined;
  if (now < grant.notBefore) return 'grant-not-yet-valid';
  if (now >= grant.notAfter) return 'grant-expired';
  return undefined;
}

export class LinkHandler {
  readonly openedAt: number;
  private readonly session: VehicleSession;
  private readonly channel: MessageChannel;
  private readonly limiter: TokenBucket;
  private readonly proximity: ProximityTracker;
  private queue: Promise<void> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | undefined;
  private stateValue: LinkState = 'unauthenticated';
  private peerValue: LinkPeer | undefined;
  /** key list the peer was last recognised against (revalidate re-runs recognize when it changes) */
  private recognisedAgainst: KeyList | undefined;
  private readonly log: Logger;
  private readonly closeHandlers: (() => void)[] = [];
  private pairingCode: string | undefined;
  private challengedAtValue: number | undefined;
  private requestArrived = false;

  constructor(
    readonly link: PeripheralLink,
    private readonly deps: LinkDeps,
  ) {
    this.openedAt = deps.monotonic();
    this.log = deps.logger.child({ link: link.id });
    this.session = new VehicleSession({ crypto: deps.crypto, identitySeed: deps.store.identity.exportSeed(), random: deps.random, challengeTtlMs: deps.config.challengeTtlMs });
    this.channel = new MessageChannel(peripheralChunks(link));
    this.limiter = new TokenBucket(deps.config.perLinkRate, deps.config.perLinkBurst, this.openedAt);
    this.proximity = new ProximityTracker({ enterRssi: deps.config.passiveEnterRssi, exitRssi: deps.config.passiveExitRssi });
    const boundary = { onFailure: (where: string) => deps.metrics.callbackFailures.inc({ where }) };
    this.channel.onMessage(
      guarded(this.log, 'link message', (message: Uint8Array) => {
        this.queue = this.queue.then(() => this.onMessage(message)).catch((error: unknown) => this.fatal(toCarkeyError(error)));
      }, boundary),
    );
    this.channel.onError(
      guarded(this.log, 'link framing error', (error: CarkeyError) => {
        this.log.debug({ errorCode: error.code }, 'framing error');
        if (this.stateValue === 'unauthenticated') return this.drop('framing');
        return undefined;
      }, boundary),
    );
    link.onClose(
      guarded(this.log, 'link close', (reason: unknown) => {
        this.log.debug({ reason }, 'link closed');
        this.finish();
      }, boundary),
    );
    this.armIdle(deps.config.idleTimeoutMs);
  }

  get state(): LinkState {
    return this.stateValue;
  }

  /**
   * While this link's handshake is still to finish (no REQUEST has arrived yet): when its last
   * step happened, the CHALLENGE going out or else the link opening (monotonic ms). Undefined
   * once a REQUEST has arrived.
   */
  get handshakePendingSince(): number | undefined {
    return this.requestArrived ? undefined : (this.challengedAtValue ?? this.openedAt);
  }

  /** The credential this link authenticated with (undefined unless authenticated). */
  get peer(): LinkPeer | undefined {
    return this.stateValue === 'authenticated' ? this.peerValue : undefined;
  }

  /** Authenticated as an owner of the current key list (owner links are never evicted). */
  isOwnerNow(): boolean {
    const peer = this.peer;
    const list = this.deps.keyList();
    return peer !== undefined && peer.credential.kind === 'owner' && list !== undefined && containsKey(list.owners, peer.key) && !containsKey(list.revokedKeys, peer.key);
  }

  /**
   * Drop an authenticated link whose credential is no longer valid now
   * (grant window passed, revoked, owner removed). Runs after the message
   * being processed, if any (so a RESULT in flight is sent first).
   * Re-verifies the recognition only when the key list changed since it was
   * last checked; otherwise only the time window (no signature work).
   */
  revalidate(): void {
    if (this.peer === undefined) return;
    this.queue = this.queue.then(() => this.revalidateNow()).catch((error: unknown) => this.fatal(toCarkeyError(error)));
  }

  private async revalidateNow(): Promise<void> {
    const peer = this.peer;
    if (peer === undefined) return;
    const list = this.deps.keyList();
    let reason: DenyReason | undefined;
    if (list !== this.recognisedAgainst) {
      const who = recognize(this.deps.crypto, { vehicleId: this.deps.vehicleId, keyList: list, peerKey: peer.key, credential: peer.credential });
      this.recognisedAgainst = list;
      if (!who.recognized) reason = who.reason;
    }
    reason ??= windowDenial(peer.grant, this.deps.trustedNow());
    if (reason === undefined) return;
    this.deps.metrics.connectionsTotal.inc({ event: 'credential-dropped' });
    this.log.info({ reason }, 'credential no longer valid; dropping the link');
    await this.drop(`credential no longer valid (${reason})`);
  }

  onClosed(handler: () => void): void {
    this.closeHandlers.push(handler);
  }

  /** Drop the link (eviction, shutdown, idle). Never rejects. */
  async drop(why: string): Promise<void> {
    if (this.stateValue === 'closed') return;
    try {
      this.log.debug({ why }, 'dropping link');
      this.finish();
    } catch (error) {
      this.deps.metrics.callbackFailures.inc({ where: 'link drop' });
      this.log.error({ errorCode: toCarkeyError(error).code, err: toCarkeyError(error).message }, 'closing the link failed');
    }
    await this.link.disconnect().catch(() => undefined);
  }

  private finish(): void {
    if (this.stateValue === 'closed') return;
    this.stateValue = 'closed';
    this.deps.pairing.release(this.link.id);
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.channel.close();
    for (const handler of this.closeHandlers.splice(0)) guarded(this.log, 'link closed handler', handler)();
  }

  private armIdle(ms: number): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(
      guarded(this.log, 'link idle timer', () => {
        this.deps.metrics.connectionsTotal.inc({ event: 'idle-dropped' });
        return this.drop(`idle (${this.stateValue})`);
      }),
      ms,
    );
    this.idleTimer.unref();
  }

  /** The first REQUEST carried a credential valid now: the link holds a session. */
  private authenticate(peerKey: Uint8Array, credential: Credential, recognition: Recognition & { recognized: true }): void {
    this.stateValue = 'authenticated';
    this.peerValue = { key: peerKey, keyHex: toHex(peerKey), credential, grant: recognition.grant };
    this.recognisedAgainst = this.deps.keyList();
    this.armIdle(this.deps.config.sessionIdleMs);
    this.deps.onAuthenticated(this);
  }

  private async onMessage(message: Uint8Array): Promise<void> {
    if (this.stateValue === 'closed') return;
    const now = this.deps.monotonic();
    if (!this.limiter.take(now) || !this.deps.globalLimiter.take(now)) {
      this.deps.metrics.connectionsTotal.inc({ event: 'rate-dropped' });
      this.log.warn('rate limit exceeded; dropping link');
      await this.drop('rate limit');
      return;
    }
    this.proximity.observe(this.link.rssi());
    const stage = this.session.stateName;
    const event = this.session.handle(message, {
      now,
      carTime: this.deps.trustedNow(),
      keyListVersion: this.deps.store.keyListVersion(),
      pairingOpen: this.deps.pairing.isOpen(now),
      pairReady: this.pairReadyFacts(stage, now),
    });
    await this.onEvent(event, stage);
  }

  /**
   * What PAIR_READY says. Only a PAIR_REVEAL (state pair-challenged) claims
   * the window's one pairing; every precondition is checked here, before the
   * person is asked to compare codes or press anything.
   */
  private pairReadyFacts(stage: string, now: number): PairReadyPlain {
    const deps = this.deps;
    const current = deps.keyList();
    const keyList = current?.bytes ?? new Uint8Array(0);
    const epoch = deps.store.keyListEpoch();
    const next = nextVersion(deps.store.keyListVersion());
    const requiredVersion = next.ok ? next.value : 0;
    if (stage !== 'pair-challenged' || !deps.pairing.isOpen(now)) return { status: 'ready', epoch, requiredVersion, keyList };
    let status: PairReadyStatus = 'ready';
    if (!next.ok) status = 'versionExhausted';
    else if (current !== undefined && current.owners.length >= MAX_OWNERS) status = 'ownersFull';
    else if (!deps.pairing.claim(this.link.id, now)) status = 'busy';
    return { status, epoch, requiredVersion, keyList };
  }

  private async onEvent(event: VehicleEvent, stage: string): Promise<void> {
    switch (event.kind) {
      case 'reply':
        if (this.session.stateName === 'challenged' && this.challengedAtValue === undefined) this.challengedAtValue = this.deps.monotonic();
        if (this.session.stateName === 'pair-challenged') {
          this.stateValue = 'pairing';
          this.armIdle(this.deps.config.pairingWindowMs);
        }
        await this.send(event.reply);
        return;
      case 'refuse':
        await this.refuse(event.error, stage === 'challenged');
        return;
      case 'request':
        // The handshake is over once a REQUEST arrives: onRequest recognises the key before its
        // first await, so a phone that proved a credential valid now is authenticated (and kept
        // by the slot rules) and any other link is displaceable while its answer goes out.
        this.requestArrived = true;
        await this.onRequest(event);
        return;
      case 'pair-code':
        if (event.status !== 'ready') {
          this.log.info({ status: event.status }, 'pairing refused before the code comparison');
          this.deps.metrics.refusals.inc({ code: `pairing-${event.status}` });
          await this.send(event.reply);
          await this.drop(`pairing ${event.status}`);
          return;
        }
        this.pairingCode = event.code;
        this.deps.show(['Pairing code', event.code]);
        this.log.info('pairing code shown on the display');
        await this.send(event.reply);
        return;
      case 'pair-confirm':
        await this.onPairConfirm(event);
        return;
    }
  }

  private async onRequest(event: VehicleEvent & { kind: 'request' }): Promise<void> {
    const started = this.deps.monotonic();
    const deps = this.deps;
    const rssi = this.link.rssi();
    const keyId = keyIdOf(deps.crypto, event.peerKey);
    let recognition: Recognition | undefined;
    if (event.first) {
      // A valid signature only proves a key; the link counts as authenticated
      // (a session, longer idle time) once that key holds a credential valid now.
      const who = recognize(deps.crypto, { vehicleId: deps.vehicleId, keyList: deps.keyList(), peerKey: event.peerKey, credential: event.credential });
      if (!who.recognized) {
        // Unrecognised: counted, not audited one by one (keyless peers must not grow the disk).
        deps.refusals.record(who.reason, deps.wallClock());
        deps.metrics.decisions.inc({ result: 'deny', reason: who.reason, command: event.command ?? 'unknown' });
        await this.refuse(new CarkeyError('CK_DENIED', who.reason), false);
        return;
      }
      recognition = who;
      deps.metrics.responseTime.observe(event.responseTimeMs / 1000);
      const notValidNow = windowDenial(who.grant, deps.trustedNow());
      if (notValidNow !== undefined) {
        // Recognised but expired / not yet valid: tell the phone (sealed), then free the slot.
        deps.audit.append('decision', { result: 'deny', reason: notValidNow, command: event.command ?? 'unknown', key: keyId, subject: who.subject, rssi: rssi ?? null, responseMs: Math.round(event.responseTimeMs * 10) / 10, firstInSession: true });
        deps.metrics.decisions.inc({ result: 'deny', reason: notValidNow, command: event.command ?? 'unknown' });
        this.log.info({ reason: notValidNow, subject: who.subject }, 'denied; credential not valid now, dropping the link');
        await this.send(this.session.respond(event.seq, { status: 'denied', category: 'expired' }));
        await this.drop('credential not valid now');
        return;
      }
      this.authenticate(event.peerKey, event.credential, who);
    }
    const command = event.command;
    if (command === undefined) {
      deps.audit.append('decision', { result: 'deny', reason: 'unknown-command', key: keyId, rssi: rssi ?? null });
      await this.send(this.session.respond(event.seq, { status: 'denied', category: 'not-permitted' }));
      return;
    }
    const pin = command === 'start' ? decodePin(event.args) : { ok: true as const, value: undefined };
    // Per key: another key's wrong PINs never lock this one out. Only owner credentials count as owners
    // here; a claimed owner key that is not one is refused by the decision before the PIN matters.
    const pinSubject = { key: toHex(event.peerKey), owner: event.credential.kind === 'owner' };
    const pinLockedMs = command === 'start' ? deps.pinGuard.lockedFor(pinSubject, started) : 0;
    const pinLocked = pinLockedMs > 0;
    const decision: Decision = authorize(deps.crypto, { relayBoundMs: deps.config.relayBoundMs, startPin: deps.config.startPin }, {
      vehicleId: deps.vehicleId,
      keyList: deps.keyList(),
      trustedNow: deps.trustedNow(),
      peerKey: event.peerKey,
      credential: event.credential,
      command,
      proximity: { rssi, near: this.proximity.near, responseTimeMs: event.responseTimeMs },
      // A malformed PIN is a wrong PIN (it can never equal a valid configured one);
      // while the guard is locked, every PIN is refused as locked out (and the phone is told for how long).
      pin: pinLocked ? '' : pin.ok ? pin.value : '',
      pinLocked,
    }, recognition);
    if (command === 'start' && deps.config.startPin !== undefined && !pinLocked) {
      if (decision.allow) deps.pinGuard.record(pinSubject, 'ok', started);
      else if (decision.reason === 'pin-wrong') deps.pinGuard.record(pinSubject, 'wrong', started);
    }
    const audit = {
      ...(pinLocked ? { pinLocked: true } : {}),
      command,
      key: keyId,
      subject: decision.subject,
      rssi: rssi ?? null,
      responseMs: Math.round(event.responseTimeMs * 10) / 10,
      firstInSession: event.first,
    };
    if (!decision.allow) {
      // A denied command does not extend the session's idle time.
      deps.audit.append('decision', { ...audit, result: 'deny', reason: decision.reason });
      deps.metrics.decisions.inc({ result: 'deny', reason: decision.reason, command });
      this.log.info({ command, reason: decision.reason, subject: decision.subject }, 'denied');
      const category = revealOf(decision.reason);
      if (category === undefined) {
        await this.refuse(new CarkeyError('CK_DENIED', decision.reason), false);
        return;
      }
      await this.send(this.session.respond(event.seq, category === 'locked-out' ? { status: 'denied', category, retryAfterSeconds: Math.ceil(pinLockedMs / 1000) } : { status: 'denied', category }));
      if (NOT_VALID_NOW.has(decision.reason)) {
        deps.metrics.connectionsTotal.inc({ event: 'credential-dropped' });
        await this.drop('credential expired during the session');
      }
      return;
    }
    if (!event.first) this.armIdle(deps.config.sessionIdleMs);
    const outcome = await executeCommand(
      {
        crypto: deps.crypto,
        store: deps.store,
        actuator: deps.actuator,
        vehicleId: deps.vehicleId,
        currentKeyList: deps.keyList,
        trustedNow: deps.trustedNow,
        time: deps.time,
        startPinRequired: deps.config.startPin !== undefined,
        onKeyListChanged: deps.onKeyListChanged,
      },
      command,
      event.args,
    );
    // The decision is made and carried out; a failing audit append (full disk) is counted, never blocks the RESULT.
    if (outcome.status === 'ok') {
      deps.audit.append('decision', { ...audit, result: 'allow', role: decision.role, ...(outcome.detail ?? {}) });
      deps.metrics.decisions.inc({ result: 'allow', reason: 'none', command });
      this.log.info({ command, subject: decision.subject, role: decision.role }, 'allowed');
      if (command === 'unlock' || command === 'passiveUnlock') guarded(this.log, 'unlocked handler', () => deps.onUnlocked?.(this))();
      await this.send(this.session.respond(event.seq, { status: 'ok', payload: outcome.payload ?? new Uint8Array(0) }));
    } else {
      deps.audit.append('decision', { ...audit, result: 'allow', role: decision.role, failed: outcome.error.code });
      deps.metrics.decisions.inc({ result: 'failed', reason: outcome.error.code, command });
      this.log.warn({ command, errorCode: outcome.error.code, err: outcome.error.message }, 'allowed but failed');
      await this.send(this.session.respond(event.seq, { status: 'failed', payload: new TextEncoder().encode(outcome.error.code) }));
    }
    deps.metrics.unlockLatency.observe({ command }, (deps.monotonic() - started) / 1000);
  }

  private async onPairConfirm(event: VehicleEvent & { kind: 'pair-confirm' }): Promise<void> {
    const deps = this.deps;
    const decoded = decodeKeyList(event.keyList);
    const accepted = decoded.ok ? acceptKeyList(deps.crypto, decoded.value, deps.keyList(), deps.vehicleId, { viaPairing: true, state: versionState(deps.store) }) : decoded;
    const keyId = keyIdOf(deps.crypto, event.peerKey);
    if (!accepted.ok || !containsKey(accepted.value.owners, event.peerKey)) {
      const error = accepted.ok ? new CarkeyError('CK_KEYLIST_NOT_OWNER', 'the pairing phone must be an owner in its key list') : accepted.error;
      deps.audit.append('pairing', { result: 'refused', key: keyId, reason: error.code });
      await this.send(this.session.finishPairing({ accepted: false, error }));
      await this.drop('pairing refused');
      return;
    }
    // The person confirms what they compared: the code (and the phone's key id), not a name the phone chose.
    deps.show([`Code ${this.pairingCode ?? '??????'} ${keyId.slice(0, 8)}`.slice(0, 20), 'Hold button to OK']);
    const confirmed = await deps.pairing.awaitConfirmation(deps.monotonic());
    if (!confirmed || this.stateValue === 'closed') {
      deps.audit.append('pairing', { result: 'not-confirmed', key: keyId });
      deps.show(['Pairing cancelled']);
      if (this.stateValue !== 'closed') await this.send(this.session.finishPairing({ accepted: false, error: new CarkeyError('CK_PROTO_PAIRING_NOT_CONFIRMED') }));
      await this.drop('pairing not confirmed');
      return;
    }
    const list = accepted.value;
    installKeyList(deps.store, list, deps.time, deps.onKeyListChanged, { via: 'pairing', owner: keyId, name: event.name, owners: list.owners.length }, { viaPairing: true });
    deps.show(['Paired', event.name.slice(0, 20)]);
    this.log.info({ owner: keyId }, 'owner paired');
    await this.send(this.session.finishPairing({ accepted: true, advSecret: deps.store.advertisingSecret(), vehicleName: deps.config.name }));
  }

  /**
   * End the session with the generic refusal on the wire and drop the link.
   * The REFUSE reaches the phone: `send` resolves once its chunks were handed
   * to the link, and `PeripheralLink.disconnect` (via `drop`) flushes handed
   * notifications to the controller before the link goes (bounded, 500 ms).
   * `tallied`: count it in the refusal summary (a REQUEST-stage refusal of a
   * peer nobody recognised; no audit row of its own).
   */
  private async refuse(error: CarkeyError, tallied: boolean): Promise<void> {
    this.session.refuse(error);
    this.deps.metrics.refusals.inc({ code: error.code });
    this.log.info({ errorCode: error.code }, 'refused');
    if (tallied) this.deps.refusals.record(error.code, this.deps.wallClock());
    await this.send(REFUSE_BYTES);
    await this.drop('refused');
  }

  private async send(message: Uint8Array): Promise<void> {
    if (this.stateValue === 'closed') return;
    try {
      await this.channel.send(message);
    } catch (error) {
      this.log.debug({ errorCode: toCarkeyError(error).code }, 'send failed');
      await this.drop('send failed');
    }
  }

  private fatal(error: CarkeyError): void {
    guarded(this.log, 'link handler error', () => {
      this.log.error({ errorCode: error.code, err: error.message }, 'link handler error');
      return this.drop('internal error');
    })();
  }
}
