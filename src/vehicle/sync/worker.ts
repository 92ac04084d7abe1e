/**
 * The car's sync worker: keeps the car and carkey-cloud in step, outbound
 * only, off the entry path. Started by daemon.ts only when the config has a
 * `cloud` section.
 *
 * What it does, each in its own loop:
 * - registration: PUT a fresh car-signed vehicle statement (the key list in
 *   force) at start and whenever the car's key list changes (BLE, pairing,
 *   cloud), so the cloud's current list moves forward;
 * - key lists: long-poll (ETag + ?wait), poll, or fetch on an MQTT notice;
 *   every list is verified by src/core and installed by installKeyList
 *   (key-list-sync.ts);
 * - remote commands: fetch, verify, decide with the BLE policy, act, answer
 *   (remote-commands.ts); results wait in the durable outbox until the cloud
 *   acknowledged them (idempotent by command id);
 * - audit upload (optional): pages after the acknowledged seq, cursor in sync.db.
 *
 * Guarantees:
 * - Never on the entry path: nothing in the BLE path imports this (test
 *   test/vehicle/no-network.test.ts and the lint rule). Its own state lives in
 *   sync.db (no lock, transaction or queue shared with state.db's BLE
 *   writes); the event loop is only ever held for bounded, small steps (one
 *   sealed box, one signature, one page of at most 64 entries, one small
 *   fsynced transaction).
 * - Every request has a deadline (the client's timeout plus a long-poll's
 *   wait); failures back off exponentially with full jitter (injected
 *   randomness); repeated outages open one circuit breaker shared by all
 *   loops (injected monotonic clock), so a dead cloud costs one probe per
 *   cool-down, not a storm.
 * - Nothing throws past a boundary: every loop catches each step; every
 *   timer and callback is wrapped; failures are logged with `errorCode` and
 *   counted; `start` never throws (sync.db that cannot be opened, e.g. a
 *   read-only disk, is retried with backoff) and carkeyd runs on.
 * - `stop()` aborts long-polls, waits for the loops a bounded time, and
 *   closes sync.db; whatever was in flight is redone after the next start.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { toHex } from '../../core/bytes.js';
import { signVehicleStatement } from '../../core/vehicle-statement.js';
import type { KeyList } from '../../core/credentials.js';
import type { RandomSource } from '../../core/crypto/backend.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { CarkeyError, toCarkeyError, type ErrorCode } from '../../core/errors.js';
import { CloudClient } from '../../cloud-client/client.js';
import type { ActuatorPort } from '../actuator.js';
import type { AuditWriter } from '../audit-writer.js';
import type { CarTime } from '../car-time.js';
import type { CommandContext } from '../commands.js';
import type { CloudConfig } from '../config.js';
import type { PinGuard } from '../pin-guard.js';
import type { VehicleStore } from '../store.js';
import { nextPage } from './audit-upload.js';
import { Backoff, CircuitBreaker } from './backoff.js';
import { applyCloudKeyList, type KeyListSyncContext } from './key-list-sync.js';
import { SyncMetrics } from './metrics.js';
import { mqttConnector, noticeTopic, type NoticeConnector, type NoticeSubscription } from './mqtt-notices.js';
import { pause, Waker } from './pause.js';
import { answerInterrupted, handleRemoteCommand, type RemoteContext } from './remote-commands.js';
import { SyncDb } from './sync-db.js';

export interface SyncTuning {
  /** backoff after a failed step: base and cap (ms) */
  readonly retryBaseMs: number;
  readonly retryCapMs: number;
  /** consecutive failures that open the circuit, its first and longest cool-down (ms) */
  readonly circuitThreshold: number;
  readonly circuitOpenMs: number;
  readonly circuitMaxOpenMs: number;
  /** least time between the starts of two fetches of one kind (ms): a cloud answering at once cannot make the car spin */
  readonly minFetchIntervalMs: number;
  /** pause after a fetch that brought only commands the car already answered (ms) */
  readonly idlePauseMs: number;
  /** most audit pages uploaded in one round */
  readonly auditPagesPerRound: number;
  /** how long `stop()` waits for the loops (ms) */
  readonly stopWaitMs: number;
}

/**
 * Retry and circuit defaults: a car rejoins a recovered cloud within about a
 * minute (the breaker's longest open time), while full jitter spreads a fleet's
 * retries (1,000,000 cars at a 60 s cap ≈ 17,000 req/s, see docs/scaling.md).
 */
export const SYNC_TUNING: SyncTuning = {
  retryBaseMs: 1000,
  retryCapMs: 60_000,
  circuitThreshold: 5,
  circuitOpenMs: 5_000,
  circuitMaxOpenMs: 60_000,
  minFetchIntervalMs: 500,
  idlePauseMs: 5000,
  auditPagesPerRound: 16,
  stopWaitMs: 1500,
};

export interface SyncWorkerDeps {
  readonly cloud: CloudConfig;
  readonly relayBoundMs: number;
  readonly startPin: string | undefined;
  readonly crypto: Crypto;
  readonly random: RandomSource;
  readonly store: VehicleStore;
  readonly audit: Pick<AuditWriter, 'append'>;
  readonly actuator: ActuatorPort;
  readonly time: CarTime;
  readonly vehicleId: Uint8Array;
  readonly keyList: () => KeyList | undefined;
  /** the daemon's callback, the same the BLE path calls */
  readonly onKeyListChanged: (list: KeyList) => void;
  readonly pinGuard: PinGuard;
  readonly logger: Logger;
  readonly monotonic: () => number;
  /** carkeyd's metrics registry */
  readonly registry?: Registry;
  /** injectable for tests */
  readonly fetch?: typeof fetch;
  /** uniform [0, 1): backoff jitter */
  readonly jitter?: () => number;
  readonly tuning?: Partial<SyncTuning>;
  readonly notices?: NoticeConnector;
}

export interface SyncStatus {
  readonly enabled: true;
  readonly mode: CloudConfig['mode'];
  readonly cloud: string;
  readonly running: boolean;
  readonly registered: boolean;
  readonly lastSuccess: string | null;
  readonly lastError: { readonly code: string; readonly op: string; readonly at: string } | null;
  readonly circuit: string;
  readonly keyListEtag: string | null;
  readonly backlog: { readonly outbox: number | null; readonly audit: number | null };
  readonly auditUploadedSeq: number | null;
  readonly mqttConnected?: boolean;
}

type Op = 'register' | 'key-list' | 'commands' | 'result' | 'audit' | 'time';

/** Errors that say the cloud (or the way to it) is not working, as opposed to a refusal. */
const OUTAGE: ReadonlySet<ErrorCode> = new Set(['CK_CLOUD_UNAVAILABLE', 'CK_CLOUD_TIMEOUT', 'CK_CLOUD_SERVER_ERROR', 'CK_CLOUD_BAD_RESPONSE', 'CK_CLOUD_STORE', 'CK_CLOUD_RATE_LIMITED']);
/** A result the cloud refuses for these will never be taken: stop retrying it. */
const UNDELIVERABLE: ReadonlySet<ErrorCode> = new Set(['CK_CLOUD_BAD_REQUEST', 'CK_CLOUD_CONFLICT']);
/** A result refused with 403 this many times (re-registering in between) is dropped. */
const FORBIDDEN_ATTEMPTS = 3;

function etagOf(list: KeyList | undefined): string | undefined {
  return list === undefined ? undefined : `"${list.epoch}.${list.version}"`;
}

export class SyncWorker {
  private readonly deps: SyncWorkerDeps;
  private readonly tuning: SyncTuning;
  private readonly log: Logger;
  private readonly client: CloudClient;
  private readonly breaker: CircuitBreaker;
  private readonly metrics: SyncMetrics;
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private syncDb: SyncDb | undefined;
  private subscription: NoticeSubscription | undefined;
  private registered = false;
  private registerWanted = true;
  private etag: string | undefined;
  private refusedDigest: string | undefined;
  private lastSuccessAt: number | undefined;
  private lastErrorValue: { code: string; op: Op; at: number } | undefined;
  private skewMs = 0;
  private running = false;
  private readonly wake = { register: new Waker(), registered: new Waker(), keyList: new Waker(), commands: new Waker(), outbox: new Waker(), drained: new Waker(), audit: new Waker() };

  private constructor(deps: SyncWorkerDeps) {
    this.deps = deps;
    this.tuning = { ...SYNC_TUNING, ...deps.tuning };
    this.log = deps.logger;
    this.client = new CloudClient({
      baseUrl: deps.cloud.url,
      crypto: deps.crypto,
      random: deps.random,
      // The request time only serves the cloud's replay window: the trusted time plus the skew the cloud reported.
      clock: () => deps.time.now() + this.skewMs,
      seed: () => deps.store.identity.exportSeed(),
      timeoutMs: deps.cloud.requestTimeoutMs,
      ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
    });
    this.breaker = new CircuitBreaker({ threshold: this.tuning.circuitThreshold, openMs: this.tuning.circuitOpenMs, maxOpenMs: this.tuning.circuitMaxOpenMs, monotonic: deps.monotonic });
    this.metrics = new SyncMetrics(deps.registry, {
      outbox: () => this.syncDb?.outboxSize() ?? 0,
      auditBacklog: () => this.auditBacklog() ?? 0,
      circuit: () => ({ closed: 0, 'half-open': 1, open: 2 })[this.breaker.state],
      lastSuccess: () => (this.lastSuccessAt ?? 0) / 1000,
    });
    this.etag = etagOf(deps.keyList());
  }

  /** Start the loops. Never throws; the worker keeps trying in the background. */
  static start(deps: SyncWorkerDeps): SyncWorker {
    const worker = new SyncWorker(deps);
    worker.running = true;
    worker.spawn('open', () => worker.openLoop());
    return worker;
  }

  /** The car's key list changed (BLE push, pairing, cloud): tell the cloud. */
  keyListChanged(): void {
    this.registerWanted = true;
    this.wake.register.notify();
  }

  status(): SyncStatus {
    const db = this.syncDb;
    let outbox: number | null = null;
    let uploaded: number | null = null;
    try {
      outbox = db?.outboxSize() ?? null;
      uploaded = db?.uploadedSeq() ?? null;
    } catch {
      // sync.db unreadable right now: reported as unknown
    }
    return {
      enabled: true,
      mode: this.deps.cloud.mode,
      cloud: this.client.baseUrl,
      running: this.running,
      registered: this.registered,
      lastSuccess: this.lastSuccessAt === undefined ? null : new Date(this.lastSuccessAt).toISOString(),
      lastError: this.lastErrorValue === undefined ? null : { code: this.lastErrorValue.code, op: this.lastErrorValue.op, at: new Date(this.lastErrorValue.at).toISOString() },
      circuit: this.breaker.state,
      keyListEtag: this.etag ?? null,
      backlog: { outbox, audit: this.auditBacklog() ?? null },
      auditUploadedSeq: uploaded,
      ...(this.deps.cloud.mode === 'mqtt' ? { mqttConnected: this.subscription?.connected() ?? false } : {}),
    };
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.tuning.stopWaitMs);
      timer.unref();
    });
    const subscription = this.subscription;
    await Promise.race([Promise.allSettled([...this.loops, subscription?.close()]), bound]);
    if (timer !== undefined) clearTimeout(timer);
    this.metrics.unregister();
    try {
      this.syncDb?.close();
    } catch (error) {
      this.log.warn({ errorCode: toCarkeyError(error).code }, 'closing sync.db failed');
    }
  }

  // --- plumbing ---------------------------------------------------------------

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private spawn(name: string, loop: () => Promise<void>): void {
    const run = loop().catch((error: unknown) => {
      // A loop's own catch should make this unreachable; never let it escape.
      this.log.error({ errorCode: toCarkeyError(error).code, loop: name }, 'sync loop ended by an error');
    });
    this.loops.push(run);
  }

  private pause(ms: number, ...wakers: Waker[]): Promise<unknown> {
    return pause(ms, this.abort.signal, ...wakers);
  }

  private backoff(): Backoff {
    return new Backoff({ baseMs: this.tuning.retryBaseMs, capMs: this.tuning.retryCapMs, random: this.deps.jitter ?? Math.random });
  }

  /** Pause after a failed step: the circuit's cool-down, or the loop's backoff. */
  private async afterFailure(error: CarkeyError, backoff: Backoff): Promise<void> {
    if (this.stopped) return;
    const jitter = this.deps.jitter ?? Math.random;
    const delay = error.code === 'CK_SYNC_CIRCUIT_OPEN' ? this.breaker.waitMs() + Math.floor(jitter() * this.tuning.retryBaseMs) : backoff.next();
    await this.pause(delay);
  }

  private noteError(op: Op, error: CarkeyError): void {
    this.lastErrorValue = { code: error.code, op, at: this.deps.time.now() };
    this.metrics.requests.inc({ op, result: error.code });
  }

  /** One request through the circuit breaker, with its outcome recorded. */
  private async call<T>(op: Op, request: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.stopped) throw new CarkeyError('CK_INTERNAL', 'the sync worker is stopping');
    if (!this.breaker.allow()) throw new CarkeyError('CK_SYNC_CIRCUIT_OPEN');
    try {
      const value = await request(this.abort.signal);
      this.breaker.success();
      this.lastSuccessAt = this.deps.time.now();
      this.metrics.requests.inc({ op, result: 'ok' });
      return value;
    } catch (thrown) {
      const error = toCarkeyError(thrown);
      if (this.stopped) {
        this.breaker.release();
        throw error;
      }
      if (OUTAGE.has(error.code)) this.breaker.failure();
      else this.breaker.success(); // the cloud answered (with a refusal): it is up
      this.noteError(op, error);
      if (error.code === 'CK_CLOUD_AUTH_STALE' && op !== 'time') await this.resyncClock();
      if (error.code === 'CK_CLOUD_FORBIDDEN' && op !== 'register') this.lostRegistration();
      this.log.warn({ errorCode: error.code, op, err: error.message }, 'cloud request failed');
      throw error;
    }
  }

  /** The cloud refused our request time: learn its clock for signing (never for the trusted clock). */
  private async resyncClock(): Promise<void> {
    try {
      const cloudTime = await this.call('time', () => this.client.time());
      this.skewMs = cloudTime - this.deps.time.now();
      this.log.warn({ skewMs: this.skewMs }, 'signing cloud requests with the cloud clock offset');
    } catch {
      // logged by call()
    }
  }

  private lostRegistration(): void {
    if (!this.registered) return;
    this.registered = false;
    this.registerWanted = true;
    this.wake.register.notify();
  }

  private async untilRegistered(): Promise<void> {
    while (!this.stopped && !this.registered) await this.pause(60_000, this.wake.registered);
  }

  private async spaced(startedAt: number): Promise<void> {
    const wait = this.tuning.minFetchIntervalMs - (this.deps.monotonic() - startedAt);
    if (wait > 0) await this.pause(wait);
  }

  private auditBacklog(): number | undefined {
    try {
      const db = this.syncDb;
      if (db === undefined || !this.deps.cloud.auditUpload) return undefined;
      return Math.max(0, this.deps.store.lastAuditSeq() - db.uploadedSeq());
    } catch {
      return undefined;
    }
  }

  private uploadedSeqOr(db: SyncDb, fallback: number): number {
    try {
      return db.uploadedSeq();
    } catch {
      return fallback;
    }
  }

  private keyListContext(): KeyListSyncContext {
    const deps = this.deps;
    return {
      crypto: deps.crypto,
      store: deps.store,
      audit: deps.audit,
      time: deps.time,
      vehicleId: deps.vehicleId,
      currentKeyList: deps.keyList,
      onKeyListChanged: deps.onKeyListChanged,
      logger: this.log,
    };
  }

  private remoteContext(db: SyncDb): RemoteContext {
    const deps = this.deps;
    return {
      crypto: deps.crypto,
      random: deps.random,
      store: deps.store,
      audit: deps.audit,
      syncDb: db,
      actuator: deps.actuator,
      time: deps.time,
      vehicleId: deps.vehicleId,
      currentKeyList: deps.keyList,
      onKeyListChanged: deps.onKeyListChanged,
      pinGuard: deps.pinGuard,
      monotonic: deps.monotonic,
      remote: deps.cloud.remote,
      relayBoundMs: deps.relayBoundMs,
      startPin: deps.startPin,
      logger: this.log,
    };
  }

  private commandContext(): CommandContext {
    const deps = this.deps;
    return {
      crypto: deps.crypto,
      store: deps.store,
      actuator: deps.actuator,
      vehicleId: deps.vehicleId,
      currentKeyList: deps.keyList,
      trustedNow: () => deps.time.now(),
      time: deps.time,
      startPinRequired: deps.startPin !== undefined,
      onKeyListChanged: deps.onKeyListChanged,
    };
  }

  // --- loops ------------------------------------------------------------------

  /** Open sync.db (retrying: a read-only or full disk must not stop carkeyd), then start the rest. */
  private async openLoop(): Promise<void> {
    const backoff = this.backoff();
    while (!this.stopped) {
      try {
        const db = SyncDb.open(this.deps.store.layout.dir, { outboxMax: this.deps.cloud.outboxMaxEntries });
        this.syncDb = db;
        this.refusedDigest = db.getMeta('keyList.refused');
        const answered = answerInterrupted(this.remoteContext(db));
        if (answered > 0) this.log.warn({ answered }, 'answered remote commands interrupted by a restart');
        break;
      } catch (thrown) {
        const error = toCarkeyError(thrown);
        this.lastErrorValue = { code: error.code, op: 'result', at: this.deps.time.now() };
        this.log.error({ errorCode: error.code, err: error.message }, 'cannot open sync.db; the cloud sync waits (BLE is not affected)');
        await this.afterFailure(error, backoff);
      }
    }
    const db = this.syncDb;
    if (this.stopped || db === undefined) return;
    this.log.info({ mode: this.deps.cloud.mode, cloud: this.client.baseUrl }, 'cloud sync started');
    this.spawn('register', () => this.registerLoop());
    this.spawn('key-list', () => this.keyListLoop());
    this.spawn('commands', () => this.commandsLoop(db));
    this.spawn('outbox', () => this.outboxLoop(db));
    if (this.deps.cloud.auditUpload) this.spawn('audit', () => this.auditLoop(db));
    if (this.deps.cloud.mode === 'mqtt') await this.subscribe();
  }

  private async subscribe(): Promise<void> {
    const url = this.deps.cloud.mqttUrl;
    if (url === undefined) return;
    const connector = this.deps.notices ?? mqttConnector({ logger: this.log.child({ part: 'mqtt' }), connectTimeoutMs: this.deps.cloud.requestTimeoutMs, clientId: `carkeyd-${toHex(this.deps.vehicleId)}-${toHex(this.deps.random(4))}` });
    try {
      const subscription = await connector(url, noticeTopic(toHex(this.deps.vehicleId)), {
        onNotice: (kind) => (kind === 'key-list' ? this.wake.keyList : this.wake.commands).notify(),
        onConnect: () => {
          this.wake.keyList.notify();
          this.wake.commands.notify();
        },
      });
      if (this.stopped) await subscription.close();
      else this.subscription = subscription;
    } catch (thrown) {
      // Notices are an optimisation: the loops still fetch every pollIntervalMs.
      this.log.warn({ errorCode: toCarkeyError(thrown).code }, 'cannot subscribe to mqtt notices; polling only');
    }
  }

  private async registerLoop(): Promise<void> {
    const backoff = this.backoff();
    while (!this.stopped) {
      if (!this.registerWanted) {
        await this.pause(24 * 3600_000, this.wake.register);
        continue;
      }
      const list = this.deps.keyList();
      if (list === undefined) {
        // Unpaired: nothing to register (the cloud needs a key list); pairing calls keyListChanged().
        this.registerWanted = false;
        this.registered = false;
        continue;
      }
      try {
        this.registerWanted = false;
        const statement = signVehicleStatement(this.deps.crypto, this.deps.store.identity.exportSeed(), this.deps.time.now(), list.bytes);
        try {
          const answer = await this.call('register', () => this.client.registerVehicle(this.deps.vehicleId, statement));
          this.log.info({ epoch: answer.epoch, version: answer.version }, 'registered with the cloud');
        } catch (thrown) {
          // The cloud already holds a later list (it moves forward only): registered all the same.
          if (toCarkeyError(thrown).code !== 'CK_CLOUD_CONFLICT') throw thrown;
          this.log.info('the cloud holds a later key list than the car; fetching it');
        }
        backoff.reset();
        this.etag ??= etagOf(list);
        this.registered = true;
        this.wake.registered.notify();
        this.wake.keyList.notify();
      } catch (thrown) {
        this.registerWanted = true;
        await this.afterFailure(toCarkeyError(thrown), backoff);
      }
    }
  }

  private async keyListLoop(): Promise<void> {
    const backoff = this.backoff();
    // After a refused list: ask again (unconditionally) later, so a cloud that stops tampering is heard, never spun on.
    const refusals = this.backoff();
    const mode = this.deps.cloud.mode;
    let first = true;
    while (!this.stopped) {
      await this.untilRegistered();
      if (this.stopped) return;
      if (mode !== 'long-poll' && !first) await this.pause(this.deps.cloud.pollIntervalMs, this.wake.keyList);
      first = false;
      const started = this.deps.monotonic();
      try {
        const longPoll = mode === 'long-poll' && this.etag !== undefined;
        const etag = this.etag;
        const answer = await this.call('key-list', (signal) =>
          this.client.getKeyList(this.deps.vehicleId, { ...(etag === undefined ? {} : { etag }), ...(longPoll ? { waitS: this.deps.cloud.longPollSeconds } : {}), signal }),
        );
        backoff.reset();
        const outcome = answer === 'unchanged' ? 'ok' : this.onKeyList(answer.keyList, answer.etag, answer.epoch, answer.version);
        if (outcome === 'refused') {
          await this.pause(refusals.next(), this.wake.keyList);
          continue;
        }
        refusals.reset();
        // A newly installed list is progress (only owners can sign one): ask again at once.
        if (outcome === 'installed') continue;
      } catch (thrown) {
        await this.afterFailure(toCarkeyError(thrown), backoff);
        continue;
      }
      if (mode === 'long-poll') await this.spaced(started);
    }
  }

  /** Apply a list the cloud sent; 'refused' when the car would not take it. */
  private onKeyList(bytes: Uint8Array, etag: string, epoch: number, version: number): 'installed' | 'ok' | 'refused' {
    const outcome = applyCloudKeyList(this.keyListContext(), bytes, this.refusedDigest);
    const safeEtag = /^"?[0-9]{1,10}\.[0-9]{1,10}"?$/.test(etag) ? etag : `"${epoch}.${version}"`;
    switch (outcome.kind) {
      case 'installed':
        this.metrics.keyLists.inc({ outcome: 'installed', reason: 'none' });
        this.etag = safeEtag;
        this.keyListChanged();
        return 'installed';
      case 'unchanged':
        this.metrics.keyLists.inc({ outcome: 'unchanged', reason: 'none' });
        this.etag = safeEtag;
        return 'ok';
      case 'refused': {
        this.metrics.keyLists.inc({ outcome: 'refused', reason: outcome.code });
        // Keep asking with the car's own state, not the refused document's ETag.
        this.etag = etagOf(this.deps.keyList());
        if (outcome.audited) {
          this.refusedDigest = outcome.digest;
          try {
            this.syncDb?.setMeta('keyList.refused', outcome.digest);
          } catch (error) {
            this.log.warn({ errorCode: toCarkeyError(error).code }, 'could not persist the refused-list cursor');
          }
        }
        // A cloud behind the car (it lost a change, or the car got a list over BLE): move it forward.
        const current = this.deps.keyList();
        if (current !== undefined && (epoch < current.epoch || (epoch === current.epoch && version < current.version))) this.keyListChanged();
        return 'refused';
      }
      case 'failed':
        this.metrics.keyLists.inc({ outcome: 'failed', reason: outcome.code });
        // Keep the old ETag: the list is fetched again after the backoff.
        throw new CarkeyError(outcome.code, 'storing the key list failed');
    }
  }

  private async commandsLoop(db: SyncDb): Promise<void> {
    const backoff = this.backoff();
    const mode = this.deps.cloud.mode;
    const context = this.remoteContext(db);
    let first = true;
    while (!this.stopped) {
      await this.untilRegistered();
      if (this.stopped) return;
      if (mode !== 'long-poll' && !first) await this.pause(this.deps.cloud.pollIntervalMs, this.wake.commands);
      first = false;
      const started = this.deps.monotonic();
      let fresh = 0;
      let held = 0;
      try {
        const commands = await this.call('commands', (signal) =>
          this.client.fetchCommands(this.deps.vehicleId, { ...(mode === 'long-poll' ? { waitS: this.deps.cloud.longPollSeconds } : {}), signal }),
        );
        backoff.reset();
        for (const pending of commands.slice(0, 64)) {
          if (this.stopped) return;
          const outcome = await handleRemoteCommand(context, pending);
          this.metrics.commands.inc({ outcome: outcome.kind === 'decided' ? outcome.status : outcome.kind, command: outcome.kind === 'decided' ? outcome.command : 'n/a' });
          if (outcome.kind === 'decided' || outcome.kind === 'refused') fresh++;
          else {
            held++;
            if (outcome.kind === 'deferred') {
              this.log.warn({ errorCode: outcome.code }, 'remote command left in the cloud for later');
              break;
            }
          }
        }
      } catch (thrown) {
        await this.afterFailure(toCarkeyError(thrown), backoff);
        continue;
      }
      if (fresh > 0) this.wake.outbox.notify();
      // Only commands already answered (their results still on the way): wait for the outbox, not the cloud.
      if (fresh === 0 && held > 0) await this.pause(this.tuning.idlePauseMs, this.wake.drained);
      else if (mode === 'long-poll') await this.spaced(started);
    }
  }

  private async outboxLoop(db: SyncDb): Promise<void> {
    const backoff = this.backoff();
    while (!this.stopped) {
      let entries;
      try {
        entries = db.outbox(16);
      } catch (thrown) {
        await this.afterFailure(toCarkeyError(thrown), backoff);
        continue;
      }
      if (entries.length === 0) {
        await this.pause(60_000, this.wake.outbox);
        continue;
      }
      await this.untilRegistered();
      try {
        for (const entry of entries) {
          if (this.stopped) return;
          try {
            await this.call('result', () => this.client.putResult(this.deps.vehicleId, entry.commandId, entry.box));
            this.metrics.resultsDelivered.inc();
          } catch (thrown) {
            const error = toCarkeyError(thrown);
            // 403 after re-registering: the cloud no longer holds the command (purged); retrying cannot help.
            const gone = error.code === 'CK_CLOUD_FORBIDDEN' && entry.attempts + 1 >= FORBIDDEN_ATTEMPTS;
            if (!UNDELIVERABLE.has(error.code) && !gone) {
              db.noteAttempt(entry.commandId);
              throw error;
            }
            this.log.warn({ errorCode: error.code, commandId: toHex(entry.commandId) }, 'the cloud will not take this remote result; dropping it');
          }
          db.removeResult(entry.commandId);
        }
        backoff.reset();
        this.wake.drained.notify();
      } catch (thrown) {
        await this.afterFailure(toCarkeyError(thrown), backoff);
      }
    }
  }

  private async auditLoop(db: SyncDb): Promise<void> {
    const backoff = this.backoff();
    const context = this.commandContext();
    let first = true;
    while (!this.stopped) {
      if (!first) await this.pause(this.deps.cloud.auditUploadIntervalMs, this.wake.audit);
      first = false;
      await this.untilRegistered();
      try {
        for (let round = 0; round < this.tuning.auditPagesPerRound && !this.stopped; round++) {
          const after = db.uploadedSeq();
          const page = await nextPage(context, after);
          if (page === undefined) break;
          const answer = await this.call('audit', () => this.client.uploadAudit(this.deps.vehicleId, page.json));
          // The cloud's last seq: past the page means it has it all; below `after` means it lost some (send again).
          const cursor = Math.min(answer.lastSeq, page.lastSeq);
          db.setUploadedSeq(cursor);
          if (cursor <= after) break;
        }
        backoff.reset();
      } catch (thrown) {
        const error = toCarkeyError(thrown);
        // The cloud holds less than the cursor says (its database was restored or reset): send again from where it stands.
        const expected = error.details?.expectedSeq;
        if (error.code === 'CK_CLOUD_CONFLICT' && typeof expected === 'number' && Number.isSafeInteger(expected) && expected >= 1 && expected - 1 < this.uploadedSeqOr(db, 0)) {
          this.log.warn({ cursor: this.uploadedSeqOr(db, 0), cloudNext: expected }, 'the cloud lost audit entries; uploading again from where it stands');
          try {
            db.setUploadedSeq(expected - 1);
            first = true;
            continue;
          } catch (writeError) {
            this.log.warn({ errorCode: toCarkeyError(writeError).code }, 'could not rewind the audit cursor');
          }
        }
        if (error.code !== 'CK_SYNC_CIRCUIT_OPEN') this.log.warn({ errorCode: error.code }, 'audit upload failed; trying again later');
        await this.afterFailure(error, backoff);
        first = true; // retry after the backoff, not after a whole interval
      }
    }
  }
}
