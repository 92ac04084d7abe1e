/**
 * carkeyd: the vehicle daemon, wired from its parts.
 *
 * Guarantees:
 * - Entry decisions use only local state: the store (key list, time floor),
 *   the BLE exchange and the hardware. Nothing here imports cloud code.
 * - Connection slots: at most `slots` links; when full, the oldest link that
 *   has not authenticated is evicted to admit a new one, so attackers holding
 *   unauthenticated links cannot keep the owner out; if every slot is
 *   authenticated the newcomer is dropped.
 * - Advertising carries the rotating identifier (rotated every epoch and on
 *   pairing-mode changes) and the pairing flag.
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
import type { DaemonConfig } from './config.js';
import { openHardware } from './hw-driver.js';
import { LinkHandler } from './link-handler.js';
import { DaemonMetrics } from './metrics.js';
import { PairingController, type PairingAction } from './pairing-mode.js';
import { PinGuard } from './pin-guard.js';
import { TokenBucket } from './rate-limit.js';
import { startStatusServer, type StatusServer } from './status-server.js';
import { VehicleStore } from './store.js';
import { openPeripheral } from './transports.js';

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
  const store = VehicleStore.open(config.stateDir, { crypto, now: wallClock, random, checkpointInterval: config.auditCheckpointEvery });
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
    store.appendAudit('boot', { vehicle: keyIdOf(crypto, vehicleKey), keyListVersion: keyList?.version ?? 0, transport: config.transport });

    const actuator = deps.actuator ?? (await openHardware(config.hardware, { logger: logger.child({ part: 'hardware' }) }));
    if (deps.actuator === undefined) cleanups.push(() => actuator.close());
    const metrics = new DaemonMetrics();
    const pairing = new PairingController({ windowMs: config.pairingWindowMs, keycards: config.keycards, isPaired: () => keyList !== undefined });
    const globalLimiter = new TokenBucket(config.globalRate, config.globalBurst, monotonic());
    const links = new Set<LinkHandler>();
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

    const onKeyListChanged = (list: KeyList): void => {
      keyList = list;
      logger.info({ version: list.version, owners: list.owners.length }, 'key list updated');
    };

    const applyPairing = (actions: PairingAction[]): void => {
      for (const action of actions) {
        switch (action.kind) {
          case 'opened':
            store.appendAudit('pairing-mode', { opened: true, windowMs: config.pairingWindowMs });
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
    const unsubscribeHardware = actuator.onEvent((event: HardwareEvent) => applyPairing(pairing.onHardwareEvent(event, monotonic())));
    cleanups.push(() => unsubscribeHardware());

    const ticker = setInterval(() => {
      const t = monotonic();
      pairing.tick(t);
      if (advertisedPairing !== pairing.isOpen(t)) refreshAdvertising();
      try {
        time.persist();
      } catch (error) {
        logger.warn({ errorCode: toCarkeyError(error).code }, 'could not persist the time floor');
      }
    }, 1000);
    ticker.unref();
    cleanups.push(() => clearInterval(ticker));
    const rotation = setInterval(refreshAdvertising, Math.min(ADV_EPOCH_MS, 60_000));
    rotation.unref();
    cleanups.push(() => clearInterval(rotation));

    const updateGauges = (): void => {
      const counts = { unauthenticated: 0, pairing: 0, authenticated: 0 };
      for (const link of links) if (link.state !== 'closed') counts[link.state]++;
      for (const [state, count] of Object.entries(counts)) metrics.connections.set({ state }, count);
    };

    const admit = (link: PeripheralLink): void => {
      if (links.size >= config.slots) {
        const victim = [...links].filter((l) => l.state === 'unauthenticated').sort((a, b) => a.openedAt - b.openedAt)[0];
        if (victim === undefined) {
          metrics.connectionsTotal.inc({ event: 'refused-full' });
          logger.warn('all connection slots hold authenticated sessions; refusing a new link');
          void link.disconnect();
          return;
        }
        metrics.connectionsTotal.inc({ event: 'evicted' });
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
        vehicleId,
        monotonic,
        wallClock,
        trustedNow: now,
        time,
        keyList: () => keyList,
        onKeyListChanged,
        show,
      });
      links.add(handler);
      metrics.connectionsTotal.inc({ event: 'accepted' });
      handler.onClosed(() => {
        links.delete(handler);
        updateGauges();
      });
      updateGauges();
    };
    const unsubscribeLinks = peripheral.onLink(admit);
    cleanups.push(() => unsubscribeLinks());
    cleanups.push(async () => {
      await Promise.all([...links].map((link) => link.drop('shutdown')));
    });
    await peripheral.start(advertisement());

    let status: StatusServer | undefined;
    if (config.statusPort >= 0) {
      status = await startStatusServer({
        port: config.statusPort,
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
        }),
      });
      const server = status;
      cleanups.push(() => server.close());
    }
    cleanups.push(() => {
      time.persist(true);
    });
    cleanups.push(() => {
      store.appendAudit('shutdown', {});
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
