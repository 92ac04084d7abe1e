/**
 * The car's side of the simulated radio: `PeripheralTransport` and
 * `PeripheralLink` over the radio broker (firmware-sim/radio).
 *
 * Guarantees:
 * - Same contract as the BLE peripheral (src/transport/types.ts): chunks are
 *   opaque, at most mtu - 3 bytes (larger → CK_TRANSPORT_CHUNK_TOO_LARGE),
 *   `notify` rejects before subscription (CK_TRANSPORT_NOT_SUBSCRIBED) and
 *   after close (CK_TRANSPORT_DISCONNECTED), `onClose` fires exactly once per
 *   link with the radio's reason ('local', 'remote', 'link-lost'; 'error' when
 *   the broker connection is lost).
 * - Chunks reach `onChunk` in the order the phone wrote them (chunks that
 *   arrive before the first handler is registered are kept, in order); a
 *   write with response is acknowledged to the radio once its chunk has been
 *   handed to the handlers (or kept for them).
 * - A disconnect the car asks for never overtakes its own notifications:
 *   `disconnect()` refuses new `notify` calls, waits until every notification
 *   already passed to `notify` was accepted by the radio (at most
 *   FLUSH_TIMEOUT_MS), and only then sends the disconnect; the radio carries
 *   the terminate PDU after them, in order.
 * - An unreachable broker fails `start` with CK_TRANSPORT_RADIO_UNAVAILABLE
 *   naming the socket path. No process-global state.
 * - `stop()` and `disconnect()` finish even when the broker has stopped
 *   answering (a wedged or stopped process): each request they make is
 *   waited for at most STOP_REQUEST_TIMEOUT_MS, then the link or the broker
 *   connection is closed locally anyway.
 */

import { CarkeyError } from '../core/errors.js';
import { SimConnection, type RadioEvent } from './sim-connection.js';
import { ChunkInbox, Handlers, OnceEvent, warnHandlerError, type HandlerErrorSink } from './sim-events.js';
import { ATT_DEFAULT_MTU, ATT_HEADER_BYTES, ATT_MAX_MTU } from './sim-protocol.js';
import type { Advertisement, CloseReason, PeripheralLink, PeripheralTransport, Unsubscribe } from './types.js';

/** Longest wait for in-flight notifications before a car-side disconnect. */
export const FLUSH_TIMEOUT_MS = 500;
/** Longest wait for the broker's answer to a disconnect or advertise-stop. */
export const STOP_REQUEST_TIMEOUT_MS = 1000;

/** Resolves when `promise` settles or after `ms`, whichever is first; never rejects. */
function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([promise.then(() => undefined, () => undefined), bound]).finally(() => clearTimeout(timer));
}

export interface SimPeripheralOptions {
  /** UNIX socket of the radio broker. */
  readonly socketPath: string;
  /** This car's name on the simulated air (its address for centrals). */
  readonly name: string;
  /** Largest ATT MTU this peripheral accepts (23..517, default 517). */
  readonly maxMtu?: number;
  /** Where errors thrown by `on*` handlers go (default: a process warning). */
  readonly onHandlerError?: HandlerErrorSink;
}

/** One RSSI reading with the broker time it was taken at. */
export interface RssiSample {
  readonly rssi: number;
  readonly at: number;
}

export function chunkTooLarge(length: number, mtu: number): CarkeyError {
  return new CarkeyError('CK_TRANSPORT_CHUNK_TOO_LARGE', `${length} bytes, at most ${mtu - ATT_HEADER_BYTES} with MTU ${mtu}`);
}

export class SimPeripheralLink implements PeripheralLink {
  readonly id: string;
  /** The central's name on the simulated air. */
  readonly peer: string;
  private readonly connection: SimConnection;
  private mtuValue = ATT_DEFAULT_MTU;
  private rssiValue: number | undefined;
  private readonly chunks: ChunkInbox;
  private readonly subscribed: OnceEvent<undefined>;
  private readonly closed: OnceEvent<CloseReason>;
  private readonly rssiSamples: Handlers<[RssiSample]>;
  /** notify requests sent to the radio and not answered yet */
  private readonly inFlight = new Set<Promise<unknown>>();
  private disconnecting: Promise<void> | undefined;

  constructor(connection: SimConnection, event: Extract<RadioEvent, { ev: 'link-open' }>, onError: HandlerErrorSink) {
    this.connection = connection;
    this.id = event.linkId;
    this.peer = event.address;
    this.mtuValue = event.mtu;
    this.rssiValue = event.rssi;
    this.chunks = new ChunkInbox(onError);
    this.subscribed = new OnceEvent(onError);
    this.closed = new OnceEvent(onError);
    this.rssiSamples = new Handlers(onError);
  }

  get isClosed(): boolean {
    return this.closed.happened;
  }

  mtu(): number {
    return this.mtuValue;
  }

  rssi(): number | undefined {
    return this.rssiValue;
  }

  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe {
    return this.chunks.add(handler);
  }

  /** Called when the phone subscribes (also for a handler registered after it did). */
  onSubscribed(handler: () => void): Unsubscribe {
    return this.subscribed.add(() => handler());
  }

  onClose(handler: (reason: CloseReason) => void): Unsubscribe {
    return this.closed.add(handler);
  }

  /** Sim extra: every RSSI reading the radio reports for this link, with broker time. */
  onRssi(handler: (sample: RssiSample) => void): Unsubscribe {
    return this.rssiSamples.add(handler);
  }

  async notify(chunk: Uint8Array): Promise<void> {
    if (this.closed.happened) throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link ${this.id} is closed`);
    if (!this.subscribed.happened) throw new CarkeyError('CK_TRANSPORT_NOT_SUBSCRIBED', `link ${this.id}`);
    if (this.disconnecting !== undefined) throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link ${this.id} is being disconnected`);
    if (chunk.length > this.mtuValue - ATT_HEADER_BYTES) throw chunkTooLarge(chunk.length, this.mtuValue);
    const sent = this.connection.request({ op: 'notify', linkId: this.id, data: chunk });
    const settled = sent.catch(() => undefined);
    this.inFlight.add(settled);
    try {
      await sent;
    } finally {
      this.inFlight.delete(settled);
    }
  }

  /** Flush in-flight notifications (bounded, see the header), then drop the link. */
  disconnect(): Promise<void> {
    if (this.closed.happened) return Promise.resolve();
    this.disconnecting ??= this.flush().then(async () => {
      if (!this.close('local')) return;
      await settleWithin(this.connection.request({ op: 'disconnect', linkId: this.id }), STOP_REQUEST_TIMEOUT_MS);
    });
    return this.disconnecting;
  }

  private async flush(): Promise<void> {
    if (this.inFlight.size === 0) return;
    await settleWithin(Promise.all([...this.inFlight]), FLUSH_TIMEOUT_MS);
  }

  /** @internal radio event for this link. */
  receive(event: RadioEvent): void {
    switch (event.ev) {
      case 'mtu':
        this.mtuValue = event.mtu;
        return;
      case 'subscribed':
        this.subscribed.fire(undefined);
        return;
      case 'chunk':
        this.setRssi(event.rssi, event.at);
        this.chunks.push(event.data);
        if (event.withResponse) {
          this.connection.request({ op: 'write-ack', linkId: this.id, seq: event.seq }).catch(() => undefined);
        }
        return;
      case 'rssi':
        this.setRssi(event.rssi, event.at);
        return;
      case 'link-closed':
        this.close(event.reason);
        return;
      default:
        return;
    }
  }

  /** @internal Close with `reason`; false if it was already closed. */
  close(reason: CloseReason): boolean {
    return this.closed.fire(reason);
  }

  private setRssi(rssi: number, at: number): void {
    this.rssiValue = rssi;
    this.rssiSamples.emit({ rssi, at });
  }
}

type PeripheralState =
  | { readonly kind: 'idle' }
  | { readonly kind: 'opening'; readonly connection: Promise<SimConnection> }
  | { readonly kind: 'started'; readonly connection: SimConnection }
  | { readonly kind: 'lost'; readonly error: CarkeyError };

export class SimPeripheralTransport implements PeripheralTransport {
  readonly name: string;
  private readonly socketPath: string;
  private readonly maxMtu: number;
  private readonly onError: HandlerErrorSink;
  private readonly linkHandlers: Handlers<[SimPeripheralLink]>;
  private readonly links = new Map<string, SimPeripheralLink>();
  private state: PeripheralState = { kind: 'idle' };

  constructor(options: SimPeripheralOptions) {
    this.socketPath = options.socketPath;
    this.name = options.name;
    this.maxMtu = options.maxMtu ?? ATT_MAX_MTU;
    if (!Number.isInteger(this.maxMtu) || this.maxMtu < ATT_DEFAULT_MTU || this.maxMtu > ATT_MAX_MTU) {
      throw new CarkeyError('CK_FRAME_BAD_MTU', `maxMtu ${this.maxMtu} is outside ${ATT_DEFAULT_MTU}..${ATT_MAX_MTU}`);
    }
    this.onError = options.onHandlerError ?? warnHandlerError;
    this.linkHandlers = new Handlers(this.onError);
  }

  async start(advertisement: Advertisement): Promise<void> {
    const connection = await this.open();
    await connection.request({ op: 'advertise', localName: advertisement.localName, serviceData: advertisement.serviceData });
  }

  async setAdvertisement(advertisement: Advertisement): Promise<void> {
    const connection = this.current();
    await connection.request({ op: 'advertise', localName: advertisement.localName, serviceData: advertisement.serviceData });
  }

  onLink(handler: (link: SimPeripheralLink) => void): Unsubscribe {
    return this.linkHandlers.add(handler);
  }

  /** Open links (sim extra, for tests and status displays). */
  openLinks(): readonly SimPeripheralLink[] {
    return [...this.links.values()];
  }

  async stop(): Promise<void> {
    const state = this.state;
    this.state = { kind: 'idle' };
    let connection: SimConnection | undefined;
    if (state.kind === 'started') connection = state.connection;
    else if (state.kind === 'opening') connection = await state.connection.catch(() => undefined);
    if (connection === undefined) return;
    await settleWithin(connection.request({ op: 'advertise-stop' }), STOP_REQUEST_TIMEOUT_MS);
    await Promise.all([...this.links.values()].map((link) => link.disconnect()));
    this.links.clear();
    connection.close();
  }

  private current(): SimConnection {
    if (this.state.kind === 'started') return this.state.connection;
    if (this.state.kind === 'lost') throw this.state.error;
    throw new CarkeyError('CK_TRANSPORT_NOT_STARTED', `peripheral "${this.name}": call start() first`);
  }

  private async open(): Promise<SimConnection> {
    if (this.state.kind === 'started') return this.state.connection;
    if (this.state.kind === 'opening') return this.state.connection;
    const opening = SimConnection.open(this.socketPath, { role: 'peripheral', name: this.name, maxMtu: this.maxMtu }, this.onError);
    this.state = { kind: 'opening', connection: opening };
    let connection: SimConnection;
    try {
      connection = await opening;
    } catch (error) {
      this.state = { kind: 'idle' };
      throw error;
    }
    if (this.state.kind !== 'opening' || this.state.connection !== opening) {
      // stop() ran while we were connecting.
      connection.close();
      throw new CarkeyError('CK_TRANSPORT_NOT_STARTED', `peripheral "${this.name}" was stopped while starting`);
    }
    this.state = { kind: 'started', connection };
    connection.onEvent((event) => this.onRadioEvent(connection, event));
    connection.onClose((error) => {
      for (const link of this.links.values()) link.close('error');
      this.links.clear();
      if (this.state.kind === 'started' && this.state.connection === connection && error !== undefined) {
        this.state = { kind: 'lost', error };
      }
    });
    return connection;
  }

  private onRadioEvent(connection: SimConnection, event: RadioEvent): void {
    if (event.ev === 'adv' || event.ev === 'notification') return;
    if (event.ev === 'link-open') {
      const link = new SimPeripheralLink(connection, event, this.onError);
      this.links.set(link.id, link);
      link.onClose(() => this.links.delete(link.id));
      this.linkHandlers.emit(link);
      return;
    }
    this.links.get(event.linkId)?.receive(event);
  }
}

export function createSimPeripheral(options: SimPeripheralOptions): SimPeripheralTransport {
  return new SimPeripheralTransport(options);
}
