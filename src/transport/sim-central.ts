/**
 * The phone's side of the simulated radio: `CentralTransport` and
 * `CentralLink` over the radio broker (firmware-sim/radio).
 *
 * Guarantees:
 * - Same contract as the BLE central (src/transport/types.ts): `scan` never
 *   rejects for "nothing found" (only when the radio itself fails);
 *   `connect` runs connect → MTU exchange → discovery → subscribe and either
 *   resolves with a ready link or rejects: CK_TRANSPORT_TIMEOUT when
 *   `timeoutMs` passes (the attempt is cancelled and any half-open link
 *   dropped), CK_TRANSPORT_CONNECT_FAILED when the link fails during setup,
 *   CK_TRANSPORT_RADIO_UNAVAILABLE (naming the socket) when the broker is not
 *   reachable.
 * - Chunks are at most mtu - 3 bytes (larger → CK_TRANSPORT_CHUNK_TOO_LARGE);
 *   `write` resolves when the car's write response arrives and rejects with
 *   CK_TRANSPORT_DISCONNECTED if the link closes first; notifications reach
 *   `onChunk` in order; `onClose` fires exactly once per link.
 * - No process-global state: several transports in one process are
 *   independent radios.
 */

import { noTrace, type PhaseTrace } from '../common/phase-trace.js';
import { CarkeyError, isCarkeyError, toCarkeyError } from '../core/errors.js';
import { SimConnection, type RadioEvent } from './sim-connection.js';
import { ChunkInbox, Handlers, OnceEvent, warnHandlerError, type HandlerErrorSink } from './sim-events.js';
import { chunkTooLarge, type RssiSample } from './sim-peripheral.js';
import { ATT_DEFAULT_MTU, ATT_HEADER_BYTES, ATT_MAX_MTU } from './sim-protocol.js';
import { GATT, type CentralLink, type CentralTransport, type CloseReason, type Discovery, type ScanOptions, type Unsubscribe } from './types.js';

export interface SimCentralOptions {
  /** UNIX socket of the radio broker. */
  readonly socketPath: string;
  /** This phone's name on the simulated air (link profiles are keyed by it). */
  readonly name: string;
  /** Where errors thrown by `on*` handlers go (default: a process warning). */
  readonly onHandlerError?: HandlerErrorSink;
  /**
   * Phase marks for performance work (src/common/phase-trace.ts): scan, advertiser seen, connect,
   * MTU, discovery, subscription, each write and notification (with broker time `at`). With a
   * trace the central also asks the broker for its time once the link is up (`brokerNow`), so
   * connection events can be counted from broker times; without one nothing extra is sent.
   */
  readonly trace?: PhaseTrace;
}

export class SimCentralLink implements CentralLink {
  readonly id: string;
  /** The car's address (its name on the simulated air). */
  readonly address: string;
  private readonly connection: SimConnection;
  private mtuValue: number;
  private rssiValue: number | undefined;
  private readonly chunks: ChunkInbox;
  private readonly closed: OnceEvent<CloseReason>;
  private readonly rssiSamples: Handlers<[RssiSample]>;
  private readonly trace: PhaseTrace;

  constructor(connection: SimConnection, id: string, address: string, mtu: number, rssi: number | undefined, onError: HandlerErrorSink, trace: PhaseTrace = noTrace) {
    this.trace = trace;
    this.connection = connection;
    this.id = id;
    this.address = address;
    this.mtuValue = mtu;
    this.rssiValue = rssi;
    this.chunks = new ChunkInbox(onError);
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

  async write(chunk: Uint8Array): Promise<void> {
    await this.send(chunk, true);
  }

  /** Sim extra: write without response (resolves once the radio has queued it). */
  async writeWithoutResponse(chunk: Uint8Array): Promise<void> {
    await this.send(chunk, false);
  }

  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe {
    return this.chunks.add(handler);
  }

  onClose(handler: (reason: CloseReason) => void): Unsubscribe {
    return this.closed.add(handler);
  }

  /** Sim extra: every RSSI reading the radio reports for this link, with broker time. */
  onRssi(handler: (sample: RssiSample) => void): Unsubscribe {
    return this.rssiSamples.add(handler);
  }

  async disconnect(): Promise<void> {
    if (!this.close('local')) return;
    await this.connection.request({ op: 'disconnect', linkId: this.id }).catch(() => undefined);
  }

  /** @internal */
  setMtu(mtu: number): void {
    this.mtuValue = mtu;
  }

  /** @internal radio event for this link. */
  receive(event: RadioEvent): void {
    switch (event.ev) {
      case 'notification':
        this.trace('notification', { at: event.at, bytes: event.data.length });
        this.setRssi(event.rssi, event.at);
        this.chunks.push(event.data);
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

  private async send(chunk: Uint8Array, withResponse: boolean): Promise<void> {
    if (this.closed.happened) throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `link ${this.id} is closed`);
    if (chunk.length > this.mtuValue - ATT_HEADER_BYTES) throw chunkTooLarge(chunk.length, this.mtuValue);
    this.trace('write', { bytes: chunk.length, withResponse: withResponse ? 1 : 0 });
    await this.connection.request({ op: 'write', linkId: this.id, data: chunk, withResponse });
    this.trace('write-done');
  }

  private setRssi(rssi: number, at: number): void {
    this.rssiValue = rssi;
    this.rssiSamples.emit({ rssi, at });
  }
}

export class SimCentralTransport implements CentralTransport {
  readonly name: string;
  private readonly socketPath: string;
  private readonly onError: HandlerErrorSink;
  private readonly trace: PhaseTrace | undefined;
  private readonly links = new Map<string, SimCentralLink>();
  private connection: Promise<SimConnection> | undefined;
  private scanners = 0;
  private closedForGood = false;

  constructor(options: SimCentralOptions) {
    this.socketPath = options.socketPath;
    this.name = options.name;
    this.onError = options.onHandlerError ?? warnHandlerError;
    this.trace = options.trace;
  }

  async scan(options: ScanOptions): Promise<{ readonly match: Discovery | undefined; readonly seen: readonly Discovery[] }> {
    const connection = await this.open();
    this.trace?.('scan-start');
    const seen = new Map<string, Discovery>();
    const result = (match: Discovery | undefined): { match: Discovery | undefined; seen: readonly Discovery[] } => ({ match, seen: [...seen.values()] });
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (settle: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        stopEvents();
        stopClose();
        this.scanStop(connection);
        settle();
      };
      const stopEvents = connection.onEvent((event) => {
        if (event.ev !== 'adv' || done) return;
        const discovery: Discovery = { address: event.address, localName: event.localName, serviceData: event.serviceData, rssi: event.rssi };
        seen.set(discovery.address, discovery);
        try {
          options.onDiscovery?.(discovery);
          if (options.accept?.(discovery) === true) {
            this.trace?.('adv-seen', { at: event.at });
            finish(() => resolve(result(discovery)));
          }
        } catch (error) {
          finish(() => reject(toCarkeyError(error)));
        }
      });
      const stopClose = connection.onClose((error) => {
        finish(() => reject(error ?? new CarkeyError('CK_TRANSPORT_NOT_STARTED', 'the central was closed during the scan')));
      });
      const timer = setTimeout(() => finish(() => resolve(result(undefined))), Math.max(0, options.timeoutMs));
      this.scanStart(connection).catch((error: unknown) => finish(() => reject(toCarkeyError(error))));
    });
  }

  async connect(discovery: Discovery, options: { readonly timeoutMs: number; readonly mtu?: number }): Promise<SimCentralLink> {
    const requestedMtu = options.mtu ?? ATT_MAX_MTU;
    if (!Number.isInteger(requestedMtu) || requestedMtu < ATT_DEFAULT_MTU || requestedMtu > ATT_MAX_MTU) {
      throw new CarkeyError('CK_FRAME_BAD_MTU', `requested MTU ${requestedMtu} is outside ${ATT_DEFAULT_MTU}..${ATT_MAX_MTU}`);
    }
    const connection = await this.open();
    const attempt = { timedOut: false, connectId: 0, link: undefined as SimCentralLink | undefined };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        attempt.timedOut = true;
        reject(new CarkeyError('CK_TRANSPORT_TIMEOUT', `connecting to ${discovery.address} took longer than ${options.timeoutMs} ms`));
      }, Math.max(0, options.timeoutMs));
    });
    const procedure = this.setUpLink(connection, discovery.address, requestedMtu, attempt);
    procedure.catch(() => undefined);
    try {
      return await Promise.race([procedure, deadline]);
    } catch (error) {
      if (attempt.link !== undefined) await attempt.link.disconnect();
      else if (attempt.connectId !== 0) await connection.request({ op: 'connect-cancel', connectId: attempt.connectId }).catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Open links (sim extra). */
  openLinks(): readonly SimCentralLink[] {
    return [...this.links.values()];
  }

  async close(): Promise<void> {
    this.closedForGood = true;
    const pending = this.connection;
    this.connection = undefined;
    if (pending === undefined) return;
    const connection = await pending.catch(() => undefined);
    if (connection === undefined) return;
    await Promise.all([...this.links.values()].map((link) => link.disconnect()));
    this.links.clear();
    connection.close();
  }

  private async setUpLink(
    connection: SimConnection,
    address: string,
    requestedMtu: number,
    attempt: { timedOut: boolean; connectId: number; link: SimCentralLink | undefined },
  ): Promise<SimCentralLink> {
    const trace = this.trace ?? noTrace;
    trace('connect');
    const sent = connection.send({ op: 'connect', address });
    attempt.connectId = sent.id;
    const opened = await sent.result;
    if (opened.linkId === undefined || opened.mtu === undefined) throw new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', 'connect reply lacks linkId or mtu');
    const link = new SimCentralLink(connection, opened.linkId, address, opened.mtu, opened.rssi, this.onError, trace);
    trace('link-open');
    if (this.trace !== undefined) {
      // Broker time right after the link came up, for counting connection events (tracing only;
      // not awaited, so the MTU request below leaves at once).
      connection.request({ op: 'time' }).then(
        (reply) => trace('broker-time', reply.now === undefined ? {} : { brokerNow: reply.now }),
        () => undefined,
      );
    }
    this.links.set(link.id, link);
    link.onClose(() => this.links.delete(link.id));
    attempt.link = link;
    if (attempt.timedOut) {
      await link.disconnect();
      throw new CarkeyError('CK_TRANSPORT_TIMEOUT', `connecting to ${address}`);
    }
    try {
      const exchanged = await connection.request({ op: 'mtu', linkId: link.id, mtu: requestedMtu });
      if (exchanged.mtu === undefined) throw new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', 'MTU reply lacks mtu');
      link.setMtu(exchanged.mtu);
      trace('mtu', { mtu: exchanged.mtu });
      const discovered = await connection.request({ op: 'discover', linkId: link.id });
      trace('discovered');
      if (!(discovered.services ?? []).includes(GATT.service)) {
        throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `${address} does not offer the carkey service`);
      }
      await connection.request({ op: 'subscribe', linkId: link.id });
      trace('subscribed');
    } catch (error) {
      if (isCarkeyError(error, 'CK_TRANSPORT_DISCONNECTED')) {
        throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `the link to ${address} closed during setup`, undefined, { cause: error });
      }
      throw error;
    }
    return link;
  }

  private async open(): Promise<SimConnection> {
    if (this.closedForGood) throw new CarkeyError('CK_TRANSPORT_NOT_STARTED', `central "${this.name}" was closed`);
    if (this.connection === undefined) {
      const opening = SimConnection.open(this.socketPath, { role: 'central', name: this.name }, this.onError);
      this.connection = opening;
      opening.then(
        (connection) => {
          connection.onEvent((event) => this.onRadioEvent(event));
          connection.onClose(() => {
            for (const link of this.links.values()) link.close('error');
            this.links.clear();
            this.scanners = 0;
            if (this.connection === opening) this.connection = undefined;
          });
        },
        () => {
          if (this.connection === opening) this.connection = undefined;
        },
      );
    }
    return this.connection;
  }

  private onRadioEvent(event: RadioEvent): void {
    if (event.ev === 'adv' || event.ev === 'link-open' || event.ev === 'mtu' || event.ev === 'subscribed' || event.ev === 'chunk') return;
    this.links.get(event.linkId)?.receive(event);
  }

  private async scanStart(connection: SimConnection): Promise<void> {
    this.scanners += 1;
    if (this.scanners === 1) await connection.request({ op: 'scan-start' });
  }

  private scanStop(connection: SimConnection): void {
    this.scanners = Math.max(0, this.scanners - 1);
    if (this.scanners === 0 && connection.isOpen) connection.request({ op: 'scan-stop' }).catch(() => undefined);
  }
}

export function createSimCentral(options: SimCentralOptions): SimCentralTransport {
  return new SimCentralTransport(options);
}
