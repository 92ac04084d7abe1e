/**
 * carkeyd: the vehicle daemon, wired from its parts.
 *
 * Guarantees:
 * - Entry decisions use only local state: the store (key list, time floor),
 *   the BLE exchange and the hardware. The optional cloud sync worker
 *   (src/vehicle/sync, started only with a `cloud` config section) runs
 *   beside the BLE path, never in it: the link handler and authorizer do not
 *   import it (test/vehicle/no-network.test.ts).
 * - Connection slots: at most `slots` links. Who a newcomer is is unknown at
 *   connect time, so when every slot is taken the newcomer is admitted by
 *   evicting the oldest link that is not an owner's, in this order: links
 *   that have not authenticated, then authenticated non-owner links (grant
 *   holders), then a pairing link. Owner links are never evicted, so an
 *   owner is never refused while any slot is held by a non-owner; only when
 *   every slot holds an owner is the newcomer dropped. A link whose handshake
 *   is in progress (opened or sent its CHALLENGE under HANDSHAKE_GRACE_MS ago,
 *   no REQUEST yet) is not
 *   evicted either: a newcomer finding only such links is refused, so an
 *   owner who got a slot finishes instead of losing the link mid-command.
 * - A link is authenticated only while its credential is valid now
 *   (link-handler.ts); authenticated links are re-checked every second and
 *   on every key-list change, and dropped when their grant has expired or
 *   their key or grant was revoked. At most one link per key: a key that
 *   authenticates on a new link drops its older one.
 * - Disk: refusals to unrecognised peers are counted and written as one
 *   'refusal-summary' entry every `auditSummaryEveryMs` (and at shutdown);
 *   the audit log is pruned to `auditMaxEntries` at start and on the same
 *   period. A failing audit append (full or read-only disk) never stops a
 *   decision, a RESULT, startup or shutdown: it is counted and reported on
 *   /state (`auditFailures`, `auditLastError`) and /metrics.
 * - No timer, event handler or callback body throws past its boundary
 *   (boundary.ts); a failure is logged (throttled) and counted.
 * - Advertising carries the rotating identifier (rotated every epoch and on
 *   pairing-mode changes) and the pairing flag.
 * - The car locks itself only through auto-lock.ts (auto-relock, walk-away
 *   lock; both off unless configured), which observes every actuator call.
 * - `stop()` drops links, stops advertising, closes the status server,
 *   writes a final audit checkpoint and releases the state lock.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { decodeKeyList, type KeyList } from '../core/credentials.js';
import { createCrypto } from '../core/crypto/index.js';
import type { RandomSource } from '../core/crypto/backend.js';
import { ADV_EPOCH_MS, ADV_FLAG_PAIRING, advertisingId, encodeServiceData, keyIdOf, vehicleIdOf } from '../core/identity.js';
import { toCarkeyError } from '../core/errors.js';
import { CarTime } from './car-time.js';
import { toHex } from '../core/bytes.js';
import type { PeripheralLink, PeripheralTransport } from '../transport/types.js';
import type { ActuatorPort, HardwareEvent } from './actuator.js';
import { AuditWriter } from './audit-writer.js';
import { AutoLock } from './auto-lock.js';
import { guarded } from './boundary.js';
import type { DaemonConfig } from './config.js';
import { openHardware } from './hw-driver.js';
import { LinkHandler } from './link-handler.js';
import { DaemonMetrics } from './metrics.js';
import { PairingController, type PairingAction } from './pairing-mode.js';
import { PinGuard } from './pin-guard.js';
import { TokenBucket } from './rate-limit.js';
import { RefusalTally } from './refusal-tally.js';
import { checkStatusPort, startStatusServer, type StatusServer } from './status-server.js';
import { SyncWorker } from './sync/worker.js';
import { VehicleStore } from './store.js';
import { openPeripheral } from './transports.js';

/**
 * How long each handshake step (connect → HELLO, CHALLENGE → REQUEST) keeps a link's slot
 * against newcomers: a phone takes a few connection events per step (under 0.2 s at a 30 ms
 * interval), so 0.5 s protects a genuine handshake, while an attacker that stalls holds a
 * protected slot for at most about twice this long. Longer graces let stalling attackers
 * refuse everyone else more often (measured with test/integration/dos.test.ts churn cases).
 */
export const HANDSHAKE_GRACE_MS = 500;

export interface DaemonDeps {
  readonly logger: Logger;
  readonly random?: RandomSource;
  readonly wallClock?: () => number;
  readonly monotonic?: () => number;
  /** Override the radio (tests); default from config.transport. */
  readonly peripheral?: PeripheralTransport;
  /** Override the hardware (tests); default from config.hardware. */
  readonly actuator?: ActuatorPort;
}

export interface RunningDaemon {
  readonly vehicleKey: Uint8Array;
  readonly vehicleId: Uint8Array;
  readonly statusUrl: string | undefined;
  stop(): Promise<void>;
}

export async function startDaemon(config: DaemonConfig, deps: DaemonDeps): Promise<RunningDaemon> {
  const logger = deps.logger;
  const random = deps.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const wallClock = deps.wallClock ?? (() => Date.now());
  const monotonic = deps.monotonic ?? (() => performance.now());
  const crypto = createCrypto(config.cryptoBackend);
  // Checked before the store opens and the boot entry is audited: a busy port is the operator's to fix, not a crash after boot.
  await checkStatusPort(config.statusHost, config.statusPort);
  // create: false — only `carkeyd init` creates a car identity (a mistyped --state must not cut off every phone).
  const store = VehicleStore.open(config.stateDir, { crypto, now: wallClock, random, checkpointInterval: config.auditCheckpointEvery, create: false });
  const cleanups: (() => Promise<void> | void)[] = [() => store.close()];
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        logger.warn({ err: (error as Error).message }, 'shutdown step failed');
      }
    }
  };
  try {
    const vehicleKey = store.identity.publicKey;
    const vehicleId = vehicleIdOf(crypto, vehicleKey);
    const metrics = new DaemonMetrics();
    const boundary = { onFailure: (where: string) => metrics.callbackFailures.inc({ where }) };
    const audit = new AuditWriter({ store, logger: logger.child({ part: 'audit' }), metrics, now: wallClock });
    if (!store.sharedMemory) logger.warn({ errorCode: 'CK_STORE_IO' }, 'no room for the database shared-memory file (disk full?); running with exclusive locking: `carkeyd audit verify` waits until carkeyd stops');
    let keyList: KeyList | undefined = loadKeyList(store, logger);
    const time = new CarTime({ store, wallClock, monotonic, logger: logger.child({ part: 'time' }) });
    if (keyList !== undefined) {
      try {
        time.observeDocument(keyList.issuedAt);
      } catch (error) {
        logger.warn({ errorCode: toCarkeyError(error).code }, 'could not persist the time floor at boot');
      }
    }
    const now = (): number => time.now();
    audit.append('boot', { vehicle: keyIdOf(crypto, vehicleKey), keyListVersion: keyList?.version ?? 0, transport: config.transport, ...(store.sharedMemory ? {} : { storeMode: 'exclusive' }) });
    const refusals = new RefusalTally();
    // With a cloud, entries it does not hold yet are kept (up to twice the cap); set once the worker runs.
    let uploadedAuditSeq = (): number | undefined => (config.cloud === undefined ? undefined : 0);
    const housekeeping = (): void => {
      refusals.flush((fields) => audit.append('refusal-summary', fields), wallClock());
      const keepAfterSeq = uploadedAuditSeq();
      const pruned = store.pruneAudit(config.auditMaxEntries, keepAfterSeq === undefined ? {} : { keepAfterSeq });
      if (pruned !== undefined) {
        metrics.auditPruned.inc(pruned.deleted);
        logger.info({ fromSeq: pruned.fromSeq, throughSeq: pruned.throughSeq, deleted: pruned.deleted }, 'audit log pruned to its size cap');
      }
    };
    guarded(logger, 'audit housekeeping at boot', housekeeping, boundary)();

    const hardware = deps.actuator ?? (await openHardware(config.hardware, { logger: logger.child({ part: 'hardware' }) }));
    if (deps.actuator === undefined) cleanups.push(() => hardware.close());
    const links = new Set<LinkHandler>();
    // Auto-relock and walk-away lock (both off by default): everyone acts through its observing port.
    const autoLock = new AutoLock({
      autoRelock: config.autoRelock,
      walkAway: config.walkAwayLock,
      hardware,
      audit,
      logger: logger.child({ part: 'auto-lock' }),
      monotonic,
      boundary,
      links: () => [...links].filter((l) => l.state === 'authenticated').map((l) => ({ key: l.peer === undefined ? undefined : keyIdOf(crypto, l.peer.key), rssi: l.link.rssi() })),
    });
    cleanups.push(() => autoLock.stop());
    const actuator = autoLock.port;
    const pairing = new PairingController({ windowMs: config.pairingWindowMs, keycards: config.keycards, isPaired: () => keyList !== undefined });
    const globalLimiter = new TokenBucket(config.globalRate, config.globalBurst, monotonic());
    const pinGuard = new PinGuard();
    const show = (rows: readonly string[]): void => {
      actuator.display(rows.map((row) => row.slice(0, 20))).catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'display failed'));
    };

    const peripheral = deps.peripheral ?? (await openPeripheral(config, logger.child({ part: 'radio' })));
    cleanups.push(() => peripheral.stop());
    let advertisedPairing = false;
    const advertisement = () => {
      advertisedPairing = pairing.isOpen(monotonic());
      return {
        localName: config.localName,
        serviceData: encodeServiceData(advertisedPairing ? ADV_FLAG_PAIRING : 0, advertisingId(crypto, store.advertisingSecret(), now())),
      };
    };
    const refreshAdvertising = (): void => {
      peripheral.setAdvertisement(advertisement()).catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'advertising update failed'));
    };

    // The cloud sync worker (config.cloud only): off the entry path, told about every key-list change.
    let sync: SyncWorker | undefined;
    const onKeyListChanged = (list: KeyList): void => {
      keyList = list;
      sync?.keyListChanged();
      logger.info({ version: list.version, owners: list.owners.length }, 'key list updated');
      // Revocations take effect on open sessions at once, not at their next command.
      for (const link of links) guarded(logger, 'revalidate on key-list change', () => link.revalidate(), boundary)();
      // A pairing re-anchors the trusted clock (and a list can lift it): advertise the id for the new time now.
      refreshAdvertising();
    };

    const applyPairing = (actions: PairingAction[]): void => {
      for (const action of actions) {
        switch (action.kind) {
          case 'opened':
            audit.append('pairing-mode', { opened: true, windowMs: config.pairingWindowMs });
            show(['Pairing mode', 'Open carkey app']);
            refreshAdvertising();
            break;
          case 'confirmed':
            // Pairing mode closed with the confirmation: stop advertising the pairing flag now.
            refreshAdvertising();
            break;
          case 'factory-reset': {
            for (const link of links) void link.drop('factory reset');
            const floor = time.resetCandidate();
            store.factoryReset({ via: 'button+keycard' }, floor);
            time.resetByPresence(floor);
            keyList = undefined;
            sync?.keyListChanged();
            show(['Factory reset', 'done']);
            logger.warn('factory reset by physical presence');
            refreshAdvertising();
            break;
          }
          case 'hint':
            show([action.text]);
            break;
        }
      }
    };
    const unsubscribeHardware = actuator.onEvent(guarded(logger, 'hardware event', (event: HardwareEvent) => applyPairing(pairing.onHardwareEvent(event, monotonic())), boundary));
    cleanups.push(() => unsubscribeHardware());

    const ticker = setInterval(guarded(logger, 'ticker', () => {
      const t = monotonic();
      pairing.tick(t);
      if (advertisedPairing !== pairing.isOpen(t)) refreshAdvertising();
      try {
        time.persist();
      } catch (error) {
        logger.warn({ errorCode: toCarkeyError(error).code }, 'could not persist the time floor');
      }
    }, boundary), 1000);
    ticker.unref();
    cleanups.push(() => clearInterval(ticker));
    const rotation = setInterval(guarded(logger, 'advertising rotation', refreshAdvertising, boundary), Math.min(ADV_EPOCH_MS, 60_000));
    rotation.unref();
    cleanups.push(() => clearInterval(rotation));
    const housekeepingTimer = setInterval(guarded(logger, 'audit housekeeping', housekeeping, boundary), config.auditSummaryEveryMs);
    housekeepingTimer.unref();
    cleanups.push(() => clearInterval(housekeepingTimer));
    // Authenticated links must hold a credential valid now: grants expire while a session sits idle.
    const sweep = setInterval(guarded(logger, 'link sweep', () => {
      for (const link of links) link.revalidate();
    }, boundary), 1000);
    sweep.unref();
    cleanups.push(() => clearInterval(sweep));

    const updateGauges = (): void => {
      const counts = { unauthenticated: 0, pairing: 0, authenticated: 0 };
      for (const link of links) if (link.state !== 'closed') counts[link.state]++;
      for (const [state, count] of Object.entries(counts)) metrics.connections.set({ state }, count);
    };

    /**
     * Eviction order when the slots are full (lower goes first); owner links are never evicted,
     * and neither is a link inside its handshake grace: opened, or sent its CHALLENGE, less than
     * HANDSHAKE_GRACE_MS ago (capped by the challenge's lifetime) with no REQUEST yet. So a phone
     * that is proving who it is finishes instead of losing its link mid-handshake, or after its
     * REQUEST went out ("may or may not have been carried out"); a phone that was denied is not
     * protected. A newcomer that finds every slot protected is refused at once; the phone
     * retries that (a disconnect before any command is transient).
     */
    const graceMs = Math.min(HANDSHAKE_GRACE_MS, config.challengeTtlMs);
    const evictionRank = (l: LinkHandler, now: number): number | undefined => {
      if (l.state === 'unauthenticated') {
        const since = l.handshakePendingSince;
        return since !== undefined && now - since < graceMs ? undefined : 0;
      }
      if (l.state === 'authenticated') return l.isOwnerNow() ? undefined : 1;
      if (l.state === 'pairing') return 2;
      return undefined;
    };
    const admit = (link: PeripheralLink): void => {
      if (links.size >= config.slots) {
        let victim: LinkHandler | undefined;
        let victimRank = Infinity;
        const now = monotonic();
        for (const candidate of links) {
          const rank = evictionRank(candidate, now);
          if (rank === undefined) continue;
          if (rank < victimRank || (rank === victimRank && victim !== undefined && candidate.openedAt < victim.openedAt)) {
            victim = candidate;
            victimRank = rank;
          }
        }
        if (victim === undefined) {
          metrics.connectionsTotal.inc({ event: 'refused-full' });
          logger.warn('every connection slot holds an owner session or a handshake in progress; refusing a new link');
          void link.disconnect().catch(() => undefined);
          return;
        }
        metrics.connectionsTotal.inc({ event: 'evicted' });
        logger.debug({ victim: victim.link.id, state: victim.state }, 'slots full; evicting a non-owner link');
        void victim.drop('evicted for a new link');
        links.delete(victim);
      }
      const handler = new LinkHandler(link, {
        crypto,
        random,
        config,
        store,
        actuator,
        metrics,
        logger,
        pairing,
        globalLimiter,
        pinGuard,
        audit,
        refusals,
        onAuthenticated: (authenticated: LinkHandler) => {
          // One link per key: the newer session replaces the older one.
          const key = authenticated.peer?.keyHex;
          for (const other of links) {
            if (other === authenticated || key === undefined || other.peer?.keyHex !== key) continue;
            metrics.connectionsTotal.inc({ event: 'replaced' });
            void other.drop('replaced by a newer link of the same key');
          }
          if (authenticated.peer !== undefined) autoLock.authenticated(keyIdOf(crypto, authenticated.peer.key), authenticated.link);
          updateGauges();
        },
        vehicleId,
        monotonic,
        wallClock,
        trustedNow: now,
        time,
        keyList: () => keyList,
        onKeyListChanged,
        show,
        onUnlocked: (unlocked: LinkHandler) => {
          if (unlocked.peer !== undefined) autoLock.bleUnlocked(keyIdOf(crypto, unlocked.peer.key), unlocked.link);
        },
      });
      links.add(handler);
      metrics.connectionsTotal.inc({ event: 'accepted' });
      handler.onClosed(() => {
        links.delete(handler);
        updateGauges();
      });
      updateGauges();
    };
    const unsubscribeLinks = peripheral.onLink(guarded(logger, 'new link', admit, boundary));
    cleanups.push(() => unsubscribeLinks());
    cleanups.push(async () => {
      await Promise.all([...links].map((link) => link.drop('shutdown')));
    });
    await peripheral.start(advertisement());

    if (config.cloud !== undefined) {
      const worker = SyncWorker.start({
        cloud: config.cloud,
        relayBoundMs: config.relayBoundMs,
        startPin: config.startPin,
        crypto,
        random,
        store,
        audit,
        actuator,
        time,
        vehicleId,
        keyList: () => keyList,
        onKeyListChanged,
        pinGuard,
        logger: logger.child({ part: 'sync' }),
        monotonic,
        registry: metrics.registry,
      });
      sync = worker;
      uploadedAuditSeq = () => worker.status().auditUploadedSeq ?? 0;
      cleanups.push(() => worker.stop());
    }

    // The state gauges of /metrics, read at scrape time.
    let hardwareUp = true;
    cleanups.push(actuator.onEvent((event: HardwareEvent) => {
      if (event.kind === 'link') hardwareUp = event.state === 'up';
    }));
    metrics.observe({
      paired: () => keyList !== undefined,
      keyListVersion: () => keyList?.version ?? 0,
      hardwareUp: () => hardwareUp,
      auditEntries: () => store.auditEntryCount(),
      auditLastErrorAt: () => audit.lastError?.at,
    });

    let status: StatusServer | undefined;
    if (config.statusPort >= 0) {
      status = await startStatusServer({
        port: config.statusPort,
        host: config.statusHost,
        metrics,
        logger: logger.child({ part: 'status' }),
        state: () => ({
          vehicleKeyId: keyIdOf(crypto, vehicleKey),
          vehicleId: toHex(vehicleId),
          name: config.name,
          transport: config.transport,
          paired: keyList !== undefined,
          keyListVersion: keyList?.version ?? 0,
          owners: keyList?.owners.map((owner) => keyIdOf(crypto, owner)) ?? [],
          revokedSerials: keyList?.revokedSerials.length ?? 0,
          revokedKeys: keyList?.revokedKeys.length ?? 0,
          pairingOpen: pairing.isOpen(monotonic()),
          links: [...links].map((link) => ({ id: link.link.id, state: link.state })),
          slots: config.slots,
          trustedTime: new Date(now()).toISOString(),
          time: time.status(),
          keyListEpoch: store.keyListEpoch(),
          auditLastSeq: store.lastAuditSeq(),
          auditEntries: store.auditEntryCount(),
          auditMaxEntries: config.auditMaxEntries,
          auditFailures: audit.failures,
          auditDegraded: audit.degraded,
          auditLastError: auditErrorView(audit),
          refusalsPending: refusals.pending,
          storeSharedMemory: store.sharedMemory,
          sync: sync?.status() ?? { enabled: false },
          autoLock: autoLock.status(),
        }),
      });
      const server = status;
      cleanups.push(() => server.close());
    }
    cleanups.push(() => {
      time.persist(true);
    });
    cleanups.push(() => {
      refusals.flush((fields) => audit.append('refusal-summary', fields), wallClock());
      audit.append('shutdown', audit.failures > 0 ? { auditFailures: audit.failures } : {});
    });
    logger.info({ vehicle: keyIdOf(crypto, vehicleKey), transport: config.transport, status: status?.url, paired: keyList !== undefined }, 'carkeyd running');
    let stopped = false;
    return {
      vehicleKey,
      vehicleId,
      statusUrl: status?.url,
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

function auditErrorView(audit: AuditWriter): Record<string, string | null> | null {
  const last = audit.lastError;
  if (last === undefined) return null;
  return { code: last.code, sqlite: last.sqlite ?? null, kind: last.kind, at: new Date(last.at).toISOString(), message: last.message };
}

function loadKeyList(store: VehicleStore, logger: Logger): KeyList | undefined {
  const stored = store.keyList();
  if (stored === undefined) return undefined;
  const decoded = decodeKeyList(stored.bytes);
  if (!decoded.ok) {
    logger.error({ errorCode: decoded.error.code }, 'stored key list does not decode; the car stays unpaired until re-paired');
    return undefined;
  }
  return decoded.value;
}
