/**
 * The car's side of real Bluetooth LE: a `PeripheralTransport` on
 * `@abandonware/bleno` (kernel adapter, or a btvirt emulated controller when
 * `hciSocketPath` is given).
 *
 * Guarantees:
 * - One primary service `GATT.service` with the write characteristic (write +
 *   write without response) and the notify characteristic (notify). Each
 *   written value is delivered as one chunk to the current link, in order
 *   (chunks that arrive before the first `onChunk` handler are kept). A
 *   handler that throws is logged and never reaches bleno's HCI data path.
 * - Advertising as laid out by `ble-advertising.ts` (legacy 31 + 31 bytes:
 *   flags and service data in the advertisement, service UUID and name in the
 *   scan response); data that does not fit is refused with CK_CONFIG_INVALID.
 * - `setAdvertisement` never drops a link: while a phone is connected the new
 *   data is kept and applied when advertising resumes after that link ends.
 * - Links: one `PeripheralLink` per connection, MTU from bleno's 'mtuChange'
 *   (23 until exchanged; capped by `maxMtu`), `notify` refuses chunks above
 *   mtu - 3, before subscription, and after close; it resolves once bleno
 *   queued the notification (ATT notifications are unacknowledged). RSSI is
 *   read with bleno's updateRssi every `rssiIntervalMs`; 127 ("not
 *   available") and unanswered reads give `undefined` (btvirt does not
 *   implement HCI Read RSSI, so on the emulator it is always undefined).
 * - A disconnect the car asks for never loses what it sent just before: bleno
 *   keeps ACL packets in its own host queue while the controller's buffers are
 *   busy (e.g. the ATT write response to the phone's last chunk) and throws
 *   that queue away when the link ends, so `disconnect()` first waits until
 *   bleno holds nothing for the link (queued or unacknowledged by the
 *   controller's Number Of Completed Packets), at most FLUSH_TIMEOUT_MS, and
 *   only then sends HCI Disconnect. `notify` during that wait is refused.
 *
 * LIMITATION (bleno 0.6): one central at a time. bleno tracks a single
 * connection handle and re-enables advertising only when that link ends (the
 * controller stops connectable advertising on connection), so a second phone
 * cannot connect until the first disconnects. Links are therefore sequential;
 * `onLink` fires for each in turn.
 *
 * `stop()` finishes even when the adapter stops answering: stopping the
 * advertising is waited for at most STOP_ADVERTISING_TIMEOUT_MS, dropping the
 * link at most FLUSH_TIMEOUT_MS + DISCONNECT_TIMEOUT_MS.
 *
 * bleno is a process-wide singleton: one peripheral per process at a time;
 * `stop()` is final. bleno keeps a 1 s adapter-poll timer alive forever, so a
 * process that used this transport must exit explicitly after `stop()`.
 */
import { CarkeyError } from '../core/errors.js';
import {
  adapterLabel,
  ATT_RESULT,
  loadBleno,
  silentLogger,
  waitForPoweredOn,
  type BleLogger,
  type BlenoApi,
} from './ble-load.js';
import { encodeAdvertisement } from './ble-advertising.js';
import { ChunkInbox, Handlers, OnceEvent, type HandlerErrorSink } from './sim-events.js';
import { GATT, type Advertisement, type CloseReason, type PeripheralLink, type PeripheralTransport, type Unsubscribe } from './types.js';

export interface BlePeripheralOptions {
  /** "hci0", "hci1", … */
  readonly adapter: string;
  /** btvirt LE server socket: use an emulated controller instead of the kernel adapter. */
  readonly hciSocketPath?: string;
  /** Largest ATT MTU accepted from a phone (23..517, default 256). */
  readonly maxMtu?: number;
  readonly logger?: BleLogger;
  /** How long to wait for the adapter to power on (default 5000 ms). */
  readonly readyTimeoutMs?: number;
  /** RSSI refresh period while connected; 0 disables (default 1000 ms). */
  readonly rssiIntervalMs?: number;
}

const DEFAULT_MAX_MTU = 256;
const DISCONNECT_TIMEOUT_MS = 2000;
/** Longest wait for bleno's ACL backlog to drain before a car-side disconnect (see the header). */
export const FLUSH_TIMEOUT_MS = 500;
const FLUSH_POLL_MS = 2;
const STOP_ADVERTISING_TIMEOUT_MS = 1000;
const RSSI_NOT_AVAILABLE = 127;

let linkCounter = 0;

class BlenoLink implements PeripheralLink {
  readonly id: string;
  private currentMtu = 23;
  private lastRssi: number | undefined;
  private sendNotification: ((data: Buffer) => void) | undefined;
  private closedWith: CloseReason | undefined;
  private localDisconnect = false;
  private disconnecting: Promise<void> | undefined;
  private readonly chunks: ChunkInbox;
  private readonly subscribed: OnceEvent<undefined>;
  private readonly closed: OnceEvent<CloseReason>;

  constructor(
    readonly clientAddress: string,
    private readonly maxMtu: number,
    private readonly dropConnection: () => void,
    /** ACL packets bleno still holds for this link (undefined: cannot tell). */
    private readonly aclBacklog: () => number | undefined,
    onHandlerError: HandlerErrorSink,
  ) {
    linkCounter += 1;
    this.id = `ble-${linkCounter}-${clientAddress}`;
    this.chunks = new ChunkInbox(onHandlerError);
    this.subscribed = new OnceEvent(onHandlerError);
    this.closed = new OnceEvent(onHandlerError);
  }

  get isClosed(): boolean {
    return this.closedWith !== undefined;
  }

  mtu(): number {
    return this.currentMtu;
  }

  rssi(): number | undefined {
    return this.lastRssi;
  }

  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe {
    return this.chunks.add(handler);
  }

  onSubscribed(handler: () => void): Unsubscribe {
    return this.subscribed.add(() => handler());
  }

  onClose(handler: (reason: CloseReason) => void): Unsubscribe {
    return this.closed.add(handler);
  }

  notify(chunk: Uint8Array): Promise<void> {
    if (this.closedWith !== undefined) return Promise.reject(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link ${this.id} closed (${this.closedWith})`));
    if (this.disconnecting !== undefined) return Promise.reject(new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link ${this.id} is being disconnected`));
    const send = this.sendNotification;
    if (send === undefined) return Promise.reject(new CarkeyError('CK_TRANSPORT_NOT_SUBSCRIBED', `link ${this.id}`));
    const limit = this.currentMtu - 3;
    if (chunk.length > limit) return Promise.reject(new CarkeyError('CK_TRANSPORT_CHUNK_TOO_LARGE', `${chunk.length} bytes > ${limit} (mtu ${this.currentMtu})`));
    // bleno queues the ATT notification on the ACL link; notifications are unacknowledged.
    send(Buffer.from(chunk));
    return Promise.resolve();
  }

  /**
   * Flush what bleno still holds for this link (at most FLUSH_TIMEOUT_MS), then
   * drop it; resolves once the controller reported the disconnection (or after
   * DISCONNECT_TIMEOUT_MS, closing anyway).
   */
  disconnect(): Promise<void> {
    if (this.closedWith !== undefined) return Promise.resolve();
    if (this.disconnecting === undefined) {
      this.disconnecting = this.flush().then(() => this.drop());
    }
    return this.disconnecting;
  }

  private async flush(): Promise<void> {
    const deadline = performance.now() + FLUSH_TIMEOUT_MS;
    for (;;) {
      if (this.closedWith !== undefined) return;
      const backlog = this.aclBacklog();
      if (backlog === undefined || backlog === 0 || performance.now() >= deadline) return;
      await new Promise((resolve) => setTimeout(resolve, FLUSH_POLL_MS));
    }
  }

  private drop(): Promise<void> {
    if (this.closedWith !== undefined) return Promise.resolve();
    this.localDisconnect = true;
    this.dropConnection();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.close('local'), DISCONNECT_TIMEOUT_MS);
      this.closed.add(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // --- driven by the transport ---

  setMtu(mtu: number): void {
    this.currentMtu = Math.max(23, Math.min(mtu, this.maxMtu));
  }

  setRssi(rssi: number): void {
    this.lastRssi = rssi === RSSI_NOT_AVAILABLE ? undefined : rssi;
  }

  deliverChunk(data: Buffer): void {
    if (this.closedWith !== undefined) return;
    this.chunks.push(Uint8Array.from(data));
  }

  subscribe(sendNotification: (data: Buffer) => void): void {
    if (this.closedWith !== undefined) return;
    this.sendNotification = sendNotification;
    this.subscribed.fire(undefined);
  }

  unsubscribe(): void {
    this.sendNotification = undefined;
  }

  close(reason?: CloseReason): void {
    if (this.closedWith !== undefined) return;
    const why = reason ?? (this.localDisconnect ? 'local' : 'remote');
    this.closedWith = why;
    this.sendNotification = undefined;
    this.closed.fire(why);
  }
}

type AdvertisingState = 'idle' | 'advertising' | 'paused-for-link';

class BlenoPeripheral implements PeripheralTransport {
  private readonly linkHandlers: Handlers<[PeripheralLink]>;
  private readonly onHandlerError: HandlerErrorSink;
  private readonly detach: (() => void)[] = [];
  private link: BlenoLink | undefined;
  private advertisement: Advertisement | undefined;
  private advertising: AdvertisingState = 'idle';
  private started = false;
  private stopped = false;
  private rssiTimer: NodeJS.Timeout | undefined;
  /** Serialises advertising commands so bleno's single advertisingStart/Stop events match their callers. */
  private advertisingQueue: Promise<void> = Promise.resolve();

  constructor(
    private readonly bleno: BlenoApi,
    private readonly maxMtu: number,
    private readonly logger: BleLogger,
    private readonly rssiIntervalMs: number,
    private readonly release: () => void,
  ) {
    // a throwing handler must never reach bleno's HCI data path (it would crash the process)
    this.onHandlerError = (error) => logger.warn({ error: error instanceof Error ? error.message : String(error) }, 'ble: a link handler threw');
    this.linkHandlers = new Handlers(this.onHandlerError);
  }

  async install(): Promise<void> {
    const { bleno } = this;
    const writeCharacteristic = new bleno.Characteristic({
      uuid: GATT.write.replace(/-/g, ''),
      properties: ['write', 'writeWithoutResponse'],
      onWriteRequest: (data, offset, _withoutResponse, callback) => {
        const link = this.link;
        if (offset !== 0 || link === undefined || link.isClosed) {
          callback(ATT_RESULT.unlikelyError);
          return;
        }
        link.deliverChunk(data);
        callback(ATT_RESULT.success);
      },
    });
    const notifyCharacteristic = new bleno.Characteristic({
      uuid: GATT.notify.replace(/-/g, ''),
      properties: ['notify'],
      onSubscribe: (_maxValueSize, updateValueCallback) => this.link?.subscribe(updateValueCallback),
      onUnsubscribe: () => this.link?.unsubscribe(),
    });
    const service = new bleno.PrimaryService({ uuid: GATT.service.replace(/-/g, ''), characteristics: [writeCharacteristic, notifyCharacteristic] });
    await new Promise<void>((resolve, reject) => {
      bleno.setServices([service], (error) => {
        if (error) reject(new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `bleno could not set the GATT services: ${error.message}`));
        else resolve();
      });
    });
    this.listen('accept', (clientAddress: unknown) => this.onAccept(String(clientAddress)));
    this.listen('mtuChange', (mtu: unknown) => {
      if (typeof mtu === 'number') this.link?.setMtu(mtu);
      this.logger.debug({ mtu }, 'ble: mtu exchanged');
    });
    this.listen('rssiUpdate', (rssi: unknown) => {
      if (typeof rssi === 'number') this.link?.setRssi(rssi);
    });
    this.listen('disconnect', (clientAddress: unknown) => this.onDisconnect(String(clientAddress)));
    this.listen('stateChange', (state: unknown) => {
      if (state !== 'poweredOn') this.onAdapterLost(String(state));
    });
  }

  start(advertisement: Advertisement): Promise<void> {
    if (this.stopped) return Promise.reject(new CarkeyError('CK_TRANSPORT_NOT_STARTED', 'this BLE peripheral was stopped'));
    if (this.started) return Promise.reject(new CarkeyError('CK_CONFIG_INVALID', 'BLE peripheral already started; use setAdvertisement'));
    this.started = true;
    this.advertisement = advertisement;
    return this.enqueue(() => this.advertise(advertisement));
  }

  async setAdvertisement(advertisement: Advertisement): Promise<void> {
    if (!this.started) throw new CarkeyError('CK_TRANSPORT_NOT_STARTED');
    encodeAdvertisement(advertisement); // validate now, even if applied later
    this.advertisement = advertisement;
    if (this.link !== undefined) return; // applied when the link ends
    await this.enqueue(async () => {
      await this.stopAdvertising();
      await this.advertise(advertisement);
    });
  }

  onLink(handler: (link: PeripheralLink) => void): Unsubscribe {
    return this.linkHandlers.add(handler);
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Final: a stopped peripheral cannot be started again (create a new one). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.started = false;
    // bounded: a queued advertising command the adapter never answers must not hold up shutdown
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.enqueue(() => this.stopAdvertising()).catch(() => undefined),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_ADVERTISING_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    const link = this.link;
    if (link !== undefined) {
      await link.disconnect();
      link.close('local');
      this.link = undefined;
    }
    this.stopRssiPolling();
    for (const undo of this.detach.splice(0)) undo();
    this.linkHandlers.clear();
    this.release();
  }

  private listen(event: string, listener: (...args: unknown[]) => void): void {
    this.bleno.on(event, listener);
    this.detach.push(() => this.bleno.removeListener(event, listener));
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.advertisingQueue.then(step);
    this.advertisingQueue = run.catch(() => undefined);
    return run;
  }

  private advertise(advertisement: Advertisement): Promise<void> {
    const { advertisementData, scanData } = encodeAdvertisement(advertisement);
    return new Promise<void>((resolve, reject) => {
      this.bleno.startAdvertisingWithEIRData(advertisementData, scanData, (error) => {
        if (error) {
          reject(new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `advertising failed: ${error.message}`));
          return;
        }
        this.advertising = 'advertising';
        this.logger.debug({ localName: advertisement.localName }, 'ble: advertising');
        resolve();
      });
    });
  }

  private stopAdvertising(): Promise<void> {
    if (this.advertising === 'idle') return Promise.resolve();
    this.advertising = 'idle';
    return new Promise<void>((resolve) => this.bleno.stopAdvertising(resolve));
  }

  private onAccept(clientAddress: string): void {
    if (this.link !== undefined && !this.link.isClosed) {
      this.logger.warn({ clientAddress, current: this.link.clientAddress }, 'ble: second central accepted; bleno supports one, dropping the old link');
      this.link.close('error');
    }
    // a connectable advertisement ends when a central connects
    if (this.advertising === 'advertising') this.advertising = 'paused-for-link';
    const link = new BlenoLink(clientAddress, this.maxMtu, () => this.bleno.disconnect(), () => aclBacklog(this.bleno), this.onHandlerError);
    this.link = link;
    this.startRssiPolling();
    this.logger.debug({ link: link.id }, 'ble: central connected');
    this.linkHandlers.emit(link);
  }

  private onDisconnect(clientAddress: string): void {
    const link = this.link;
    if (link === undefined) return;
    this.link = undefined;
    this.stopRssiPolling();
    this.logger.debug({ link: link.id, clientAddress }, 'ble: central disconnected');
    // bleno re-enables advertising with the data it last had; refresh it in case it rotated meanwhile.
    // Queued before the close handlers run, so advertising calls they make come after it.
    const advertisement = this.advertisement;
    if (this.started && advertisement !== undefined) {
      this.advertising = 'advertising';
      this.enqueue(async () => {
        await this.stopAdvertising();
        await this.advertise(advertisement);
      }).catch((error: unknown) => this.logger.warn({ error: String(error) }, 'ble: could not resume advertising'));
    }
    link.close();
  }

  private onAdapterLost(state: string): void {
    this.logger.warn({ state }, 'ble: adapter left poweredOn');
    const link = this.link;
    this.link = undefined;
    this.stopRssiPolling();
    link?.close('link-lost');
  }

  private startRssiPolling(): void {
    this.stopRssiPolling();
    if (this.rssiIntervalMs <= 0) return;
    const poll = (): void => this.bleno.updateRssi();
    poll();
    this.rssiTimer = setInterval(poll, this.rssiIntervalMs);
    this.rssiTimer.unref();
  }

  private stopRssiPolling(): void {
    if (this.rssiTimer !== undefined) clearInterval(this.rssiTimer);
    this.rssiTimer = undefined;
  }
}

/** Create the car's BLE peripheral on bleno. Rejects with CK_TRANSPORT_NO_ADAPTER when there is no usable adapter. */
export async function createBlePeripheral(options: BlePeripheralOptions): Promise<PeripheralTransport> {
  const maxMtu = options.maxMtu ?? DEFAULT_MAX_MTU;
  if (!Number.isInteger(maxMtu) || maxMtu < 23 || maxMtu > 517) {
    throw new CarkeyError('CK_CONFIG_INVALID', `maxMtu must be an integer in 23..517, got ${maxMtu}`);
  }
  if (active !== undefined && !active.isStopped) {
    throw new CarkeyError('CK_CONFIG_INVALID', 'a BLE peripheral is already running in this process (bleno is a process-wide singleton)');
  }
  const label = adapterLabel(options);
  const { api: bleno, release } = loadBleno(options);
  await waitForPoweredOn(bleno, label, options.readyTimeoutMs ?? 5000);
  setBlenoMaxMtu(bleno, maxMtu);
  const peripheral = new BlenoPeripheral(bleno, maxMtu, options.logger ?? silentLogger, options.rssiIntervalMs ?? 1000, release);
  await peripheral.install();
  active = peripheral;
  return peripheral;
}

let active: BlenoPeripheral | undefined;

/** bleno answers MTU requests with min(requested, its Gatt.maxMtu); there is no public setter. */
function setBlenoMaxMtu(bleno: BlenoApi, maxMtu: number): void {
  const gatt = readPath(bleno, ['_bindings', '_gatt']);
  if (typeof gatt === 'object' && gatt !== null && 'maxMtu' in gatt) {
    (gatt as { maxMtu: number }).maxMtu = maxMtu;
  } else {
    throw new CarkeyError('CK_INTERNAL', 'cannot set bleno maxMtu: unexpected bleno internals (version 0.6.x required)');
  }
}

/**
 * ACL packets bleno 0.6's HCI layer holds for its current connection: waiting
 * in its host queue (`_aclOutQueue`) plus written to the controller and not yet
 * reported completed (`_handleAclsInProgress`). undefined when the internals
 * are not as expected (then nothing is waited for).
 */
function aclBacklog(bleno: BlenoApi): number | undefined {
  const handle = readPath(bleno, ['_bindings', '_handle']);
  const hci = readPath(bleno, ['_bindings', '_hci']);
  if (typeof handle !== 'number') return 0; // no connection: nothing to flush
  const queue = readPath(hci, ['_aclOutQueue']);
  const inProgress = readPath(hci, ['_handleAclsInProgress', String(handle)]);
  if (!Array.isArray(queue)) return undefined;
  const queued = queue.filter((packet: unknown) => readPath(packet, ['handle']) === handle).length;
  return queued + (typeof inProgress === 'number' && inProgress > 0 ? inProgress : 0);
}

function readPath(value: unknown, keys: readonly string[]): unknown {
  let current = value;
  for (const key of keys) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}
