/**
 * The phone's side of real Bluetooth LE: a `CentralTransport` on
 * `@abandonware/noble` (kernel adapter, or a btvirt emulated controller when
 * `hciSocketPath` is given).
 *
 * Guarantees:
 * - `scan` reports only advertisers of `GATT.service` (by service UUID or
 *   service data), calls `onDiscovery` for every advertisement seen, resolves
 *   with the first accepted discovery or, at the timeout, with everything seen
 *   (latest per address); it never rejects for "nothing found". One scan at a
 *   time; scanning is always switched off before it resolves.
 * - `connect` does connect → ATT MTU exchange (noble asks for 256) → discovery
 *   of the carkey service and its two characteristics → subscription, all
 *   within `timeoutMs` (CK_TRANSPORT_TIMEOUT, the attempt is cancelled);
 *   a refused connection or a missing service is CK_TRANSPORT_CONNECT_FAILED.
 *   The link's MTU is min(negotiated, options.mtu): noble always asks for
 *   256 in the exchange, so `options.mtu` only caps the chunks this side
 *   writes.
 * - Links: `write` sends one chunk with response, strictly one at a time,
 *   refusing chunks above mtu - 3 and failing with CK_TRANSPORT_TIMEOUT after
 *   `writeTimeoutMs` or CK_TRANSPORT_DISCONNECTED if the link ends first; each
 *   notification is one chunk to `onChunk` (kept until the first handler);
 *   `onClose` fires once; a throwing handler or scan callback is logged and
 *   never reaches noble's HCI data path. RSSI is the last advertising report's;
 *   127 ("not available", btvirt's only value) reads as undefined.
 * - `close` stops scanning, disconnects every link and, on an emulated
 *   controller, closes this central's own socket (other transports in the
 *   process keep theirs). noble keeps a 1 s adapter-poll timer alive
 *   forever, so a process that used this transport must exit explicitly.
 */
import { CarkeyError } from '../core/errors.js';
import {
  adapterLabel,
  createNoble,
  silentLogger,
  waitForPoweredOn,
  type BleLogger,
  type NobleApi,
  type NobleCharacteristic,
  type NoblePeripheral,
} from './ble-load.js';
import { ChunkInbox, OnceEvent, type HandlerErrorSink } from './sim-events.js';
import { GATT, type CentralLink, type CentralTransport, type CloseReason, type Discovery, type ScanOptions, type Unsubscribe } from './types.js';

export interface BleCentralOptions {
  /** "hci0", "hci1", … */
  readonly adapter: string;
  /** btvirt LE server socket: use an emulated controller instead of the kernel adapter. */
  readonly hciSocketPath?: string;
  readonly logger?: BleLogger;
  /** How long to wait for the adapter to power on (default 5000 ms). */
  readonly readyTimeoutMs?: number;
  /** Deadline of one chunk write (default 5000 ms). */
  readonly writeTimeoutMs?: number;
}

const RSSI_NOT_AVAILABLE = 127;
const DISCONNECT_TIMEOUT_MS = 2000;
const undashed = (uuid: string): string => uuid.replace(/-/g, '').toLowerCase();
const SERVICE = undashed(GATT.service);
const WRITE = undashed(GATT.write);
const NOTIFY = undashed(GATT.notify);

function rssiOrUndefined(rssi: unknown): number | undefined {
  return typeof rssi === 'number' && rssi !== RSSI_NOT_AVAILABLE ? rssi : undefined;
}

function addressOf(peripheral: NoblePeripheral): string {
  return peripheral.address !== '' && peripheral.address !== 'unknown' ? peripheral.address : peripheral.id;
}

/** The carkey view of a noble peripheral's advertisement. */
export function toDiscovery(peripheral: NoblePeripheral): Discovery {
  const entry = peripheral.advertisement.serviceData?.find((item) => undashed(item.uuid) === SERVICE);
  return {
    address: addressOf(peripheral),
    localName: peripheral.advertisement.localName,
    serviceData: entry === undefined ? undefined : Uint8Array.from(entry.data),
    rssi: rssiOrUndefined(peripheral.rssi),
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Race `promise` against a deadline and an abort source. */
function within<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => CarkeyError, abort?: Promise<never>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), Math.max(0, timeoutMs));
  });
  const racers: Promise<T>[] = abort === undefined ? [promise, deadline] : [promise, deadline, abort];
  return Promise.race(racers).finally(() => clearTimeout(timer));
}

class NobleLink implements CentralLink {
  private closedWith: CloseReason | undefined;
  private localDisconnect = false;
  private writing: Promise<void> = Promise.resolve();
  private readonly chunks: ChunkInbox;
  private readonly closed: OnceEvent<CloseReason>;
  private readonly closedSignal: Promise<never>;
  private signalClosed: (error: CarkeyError) => void = () => undefined;
  private readonly detach: (() => void)[] = [];

  constructor(
    private readonly peripheral: NoblePeripheral,
    private readonly writeCharacteristic: NobleCharacteristic,
    notifyCharacteristic: NobleCharacteristic,
    private readonly linkMtu: number,
    private readonly writeTimeoutMs: number,
    private readonly forget: (link: NobleLink) => void,
    onHandlerError: HandlerErrorSink,
  ) {
    this.chunks = new ChunkInbox(onHandlerError);
    this.closed = new OnceEvent(onHandlerError);
    this.closedSignal = new Promise<never>((_resolve, reject) => {
      this.signalClosed = reject;
    });
    this.closedSignal.catch(() => undefined);
    const onData = (data: unknown, isNotification: unknown): void => {
      if (this.closedWith !== undefined || isNotification === false || !Buffer.isBuffer(data)) return;
      this.chunks.push(Uint8Array.from(data));
    };
    notifyCharacteristic.on('data', onData);
    this.detach.push(() => notifyCharacteristic.removeListener('data', onData));
    const onDisconnect = (): void => this.close(this.localDisconnect ? 'local' : 'remote');
    peripheral.once('disconnect', onDisconnect);
    this.detach.push(() => peripheral.removeListener('disconnect', onDisconnect));
  }

  mtu(): number {
    return this.linkMtu;
  }

  rssi(): number | undefined {
    return rssiOrUndefined(this.peripheral.rssi);
  }

  write(chunk: Uint8Array): Promise<void> {
    if (this.closedWith !== undefined) return Promise.reject(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link closed (${this.closedWith})`));
    const limit = this.linkMtu - 3;
    if (chunk.length > limit) return Promise.reject(new CarkeyError('CK_TRANSPORT_CHUNK_TOO_LARGE', `${chunk.length} bytes > ${limit} (mtu ${this.linkMtu})`));
    const data = Buffer.from(chunk);
    // noble resolves writes through a shared once('write') event: never let two overlap.
    const run = this.writing.then(() => {
      if (this.closedWith !== undefined) throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link closed (${this.closedWith})`);
      return within(
        this.writeCharacteristic.writeAsync(data, false),
        this.writeTimeoutMs,
        () => new CarkeyError('CK_TRANSPORT_TIMEOUT', `write not acknowledged within ${this.writeTimeoutMs} ms`),
        this.closedSignal,
      );
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe {
    return this.chunks.add(handler);
  }

  onClose(handler: (reason: CloseReason) => void): Unsubscribe {
    return this.closed.add(handler);
  }

  async disconnect(): Promise<void> {
    if (this.closedWith !== undefined || this.localDisconnect) return;
    this.localDisconnect = true;
    try {
      await within(this.peripheral.disconnectAsync(), DISCONNECT_TIMEOUT_MS, () => new CarkeyError('CK_TRANSPORT_TIMEOUT', 'disconnect not confirmed'));
    } catch {
      // the link is gone for us either way
    }
    this.close('local');
  }

  close(reason: CloseReason): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = reason;
    for (const undo of this.detach.splice(0)) undo();
    this.signalClosed(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link closed (${reason})`));
    this.forget(this);
    this.closed.fire(reason);
  }
}

class NobleCentral implements CentralTransport {
  private readonly peripherals = new Map<string, NoblePeripheral>();
  private readonly links = new Set<NobleLink>();
  private scanning = false;
  private closed = false;
  private readonly detach: (() => void)[] = [];
  // a throwing handler must never reach noble's HCI data path (it would crash the process)
  private readonly onHandlerError: HandlerErrorSink = (error) =>
    this.logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'ble: a link handler threw');

  constructor(
    private readonly noble: NobleApi,
    private readonly logger: BleLogger,
    private readonly writeTimeoutMs: number,
    private readonly release: () => void,
  ) {
    const onWarning = (message: unknown): void => this.logger.warn({ message: String(message) }, 'noble warning');
    const onState = (state: unknown): void => {
      if (state === 'poweredOn') return;
      this.logger.warn({ state }, 'ble: adapter left poweredOn');
      for (const link of [...this.links]) link.close('link-lost');
    };
    noble.on('warning', onWarning);
    noble.on('stateChange', onState);
    this.detach.push(
      () => noble.removeListener('warning', onWarning),
      () => noble.removeListener('stateChange', onState),
    );
  }

  async scan(options: ScanOptions): Promise<{ readonly match: Discovery | undefined; readonly seen: readonly Discovery[] }> {
    if (this.closed) throw new CarkeyError('CK_TRANSPORT_NOT_STARTED', 'central is closed');
    if (this.scanning) throw new CarkeyError('CK_INTERNAL', 'a scan is already running on this central');
    this.scanning = true;
    const seen = new Map<string, Discovery>();
    let match: Discovery | undefined;
    let onDiscover: ((peripheral: NoblePeripheral) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const finished = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.timeoutMs);
        onDiscover = (peripheral: NoblePeripheral): void => {
          if (match !== undefined) return;
          const discovery = toDiscovery(peripheral);
          this.peripherals.set(discovery.address, peripheral);
          seen.set(discovery.address, discovery);
          let accepted = false;
          try {
            options.onDiscovery?.(discovery);
            accepted = options.accept?.(discovery) === true;
          } catch (error) {
            this.onHandlerError(error);
          }
          if (accepted) {
            match = discovery;
            clearTimeout(timer);
            resolve();
          }
        };
        this.noble.on('discover', onDiscover);
      });
      try {
        // duplicates on: a rotated identifier from an already-seen car must still be reported
        await this.noble.startScanningAsync([SERVICE], true);
      } catch (error) {
        throw new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `scanning could not start: ${describe(error)}`);
      }
      await finished;
    } finally {
      clearTimeout(timer);
      if (onDiscover !== undefined) this.noble.removeListener('discover', onDiscover);
      await this.stopScanning();
      this.scanning = false;
    }
    return { match, seen: [...seen.values()] };
  }

  async connect(discovery: Discovery, options: { readonly timeoutMs: number; readonly mtu?: number }): Promise<CentralLink> {
    if (this.closed) throw new CarkeyError('CK_TRANSPORT_NOT_STARTED', 'central is closed');
    const peripheral = this.peripherals.get(discovery.address);
    if (peripheral === undefined) throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', `${discovery.address} was not seen by a scan on this central`);
    const deadline = Date.now() + options.timeoutMs;
    const remaining = (): number => deadline - Date.now();
    const timeout = (step: string) => (): CarkeyError => new CarkeyError('CK_TRANSPORT_TIMEOUT', `${step} ${discovery.address} did not finish within ${options.timeoutMs} ms`);

    try {
      await within(peripheral.connectAsync(), remaining(), timeout('connecting to'));
    } catch (error) {
      if (peripheral.state === 'connecting') peripheral.cancelConnect();
      if (error instanceof CarkeyError) throw error;
      throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `${discovery.address}: ${describe(error)}`);
    }

    let lost: (error: CarkeyError) => void = () => undefined;
    const lostSignal = new Promise<never>((_resolve, reject) => {
      lost = reject;
    });
    lostSignal.catch(() => undefined);
    const onLost = (): void => lost(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `${discovery.address} disconnected during setup`));
    peripheral.once('disconnect', onLost);
    try {
      let characteristics: readonly NobleCharacteristic[];
      try {
        ({ characteristics } = await within(
          peripheral.discoverSomeServicesAndCharacteristicsAsync([SERVICE], [WRITE, NOTIFY]),
          remaining(),
          timeout('GATT discovery on'),
          lostSignal,
        ));
      } catch (error) {
        if (error instanceof CarkeyError) throw error;
        throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `${discovery.address}: carkey service not found (${describe(error)})`);
      }
      const writeCharacteristic = characteristics.find((c) => undashed(c.uuid) === WRITE);
      const notifyCharacteristic = characteristics.find((c) => undashed(c.uuid) === NOTIFY);
      if (writeCharacteristic === undefined || notifyCharacteristic === undefined) {
        throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `${discovery.address}: carkey characteristics missing`);
      }
      // ATT requests are queued in order, so the MTU exchange noble started on connect is done by now.
      const negotiated = peripheral.mtu ?? 23;
      const mtu = Math.max(23, Math.min(negotiated, options.mtu ?? negotiated));
      const link = new NobleLink(peripheral, writeCharacteristic, notifyCharacteristic, mtu, this.writeTimeoutMs, (l) => this.links.delete(l), this.onHandlerError);
      try {
        await within(notifyCharacteristic.subscribeAsync(), remaining(), timeout('subscribing on'), lostSignal);
      } catch (error) {
        link.close('error');
        if (error instanceof CarkeyError) throw error;
        throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `${discovery.address}: subscribe failed (${describe(error)})`);
      }
      this.links.add(link);
      this.logger.debug({ address: discovery.address, mtu }, 'ble: connected');
      return link;
    } catch (error) {
      peripheral.removeListener('disconnect', onLost);
      if (peripheral.state === 'connected') {
        await within(peripheral.disconnectAsync(), DISCONNECT_TIMEOUT_MS, timeout('disconnecting')).catch(() => undefined);
      }
      throw error;
    } finally {
      peripheral.removeListener('disconnect', onLost);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.scanning) await this.stopScanning();
    await Promise.all([...this.links].map((link) => link.disconnect()));
    for (const undo of this.detach.splice(0)) undo();
    this.peripherals.clear();
    this.release();
  }

  private async stopScanning(): Promise<void> {
    await within(this.noble.stopScanningAsync(), DISCONNECT_TIMEOUT_MS, () => new CarkeyError('CK_TRANSPORT_TIMEOUT', 'scan stop not confirmed')).catch(
      (error: unknown) => this.logger.warn({ error: describe(error) }, 'ble: stopping the scan failed'),
    );
  }
}

/** Create the phone's BLE central on noble. Rejects with CK_TRANSPORT_NO_ADAPTER when there is no usable adapter. */
export async function createBleCentral(options: BleCentralOptions): Promise<CentralTransport> {
  const label = adapterLabel(options);
  const { api: noble, release } = createNoble(options);
  try {
    await waitForPoweredOn(noble, label, options.readyTimeoutMs ?? 5000);
  } catch (error) {
    release();
    throw error;
  }
  return new NobleCentral(noble, options.logger ?? silentLogger, options.writeTimeoutMs ?? 5000, release);
}
