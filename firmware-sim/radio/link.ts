/**
 * One simulated BLE connection between a peripheral (car) and a central
 * (phone): ATT traffic, MTU, subscription, closing and faults.
 *
 * Guarantees:
 * - Every PDU crosses the air through `LinkTiming` (connection events, loss,
 *   jitter) and is delivered in order per direction; nothing is delivered to
 *   a side that has closed.
 * - While the link is silent (explicit drop, out of range, loss rate 1, a
 *   failed-event run, or a peer whose process went away) nothing is
 *   delivered; PDUs wait in order. Silence that lasts the supervision timeout
 *   closes both open sides with 'link-lost'; silence that ends earlier
 *   releases the waiting PDUs.
 * - A local disconnect closes that side at once ('local') and sends a
 *   terminate PDU; the other side closes with 'remote' when it arrives.
 * - Every request a central is waiting on gets exactly one reply: `ok` when
 *   its response PDU arrives, or a CK_TRANSPORT_DISCONNECTED error when the
 *   link closes first.
 * No I/O: messages leave through the injected `send`, time is passed in.
 */

import { CarkeyError } from '../../src/core/errors.js';
import {
  ATT_DEFAULT_MTU,
  ATT_HEADER_BYTES,
  errorMessage,
  type OkResult,
  type ServerMessage,
} from '../../src/transport/sim-protocol.js';
import type { RadioSettings } from '../../src/transport/sim-profile.js';
import { GATT, type CloseReason } from '../../src/transport/types.js';
import type { EventQueue } from './event-queue.js';
import { LinkTiming, effectiveSupervisionMs, type Direction, type TimingParams } from './link-timing.js';
import type { ResolvedProfile } from './profile.js';
import type { KeyedRandom } from './random.js';
import { rssiAt } from './rssi.js';

export type ClientId = number;
export type Side = 'peripheral' | 'central';
export type SilenceCause = 'drop' | 'range' | 'loss' | 'fading' | 'peer-gone';

export interface LinkEnvironment {
  readonly queue: EventQueue;
  send(client: ClientId, message: ServerMessage): void;
  radio(): RadioSettings;
  /** Called once when both sides have closed. */
  finished(link: RadioLink): void;
}

export interface LinkInit {
  readonly id: string;
  readonly openedAt: number;
  readonly peripheral: { readonly client: ClientId; readonly name: string; readonly maxMtu: number };
  readonly central: { readonly client: ClientId; readonly name: string };
  readonly profile: ResolvedProfile;
  /** Stream for this link's event fates and jitter. */
  readonly random: KeyedRandom;
  /** Stream of the (peripheral, central) pair: RSSI noise. */
  readonly pairRandom: KeyedRandom;
}

type AttRequest = 'mtu' | 'discover' | 'subscribe';

type Pdu =
  | { readonly kind: 'write'; readonly data: Uint8Array; readonly requestId: number | undefined }
  | { readonly kind: 'request'; readonly op: AttRequest; readonly requestId: number; readonly mtu: number }
  | { readonly kind: 'response'; readonly requestId: number; readonly result: OkResult }
  | { readonly kind: 'notification'; readonly data: Uint8Array }
  | { readonly kind: 'terminate' };

interface Queued {
  readonly seq: number;
  readonly pdu: Pdu;
}

function timingOf(profile: ResolvedProfile): TimingParams {
  const s = profile.settings;
  return {
    intervalMs: s.connectionIntervalMs,
    jitterMs: s.jitterMs,
    lossRate: s.lossRate,
    pdusPerEvent: s.pdusPerEvent,
    supervisionTimeoutMs: s.supervisionTimeoutMs,
  };
}

function disconnected(detail: string): CarkeyError {
  return new CarkeyError('CK_TRANSPORT_DISCONNECTED', detail);
}

export class RadioLink {
  readonly id: string;
  readonly peripheral: LinkInit['peripheral'];
  readonly central: LinkInit['central'];
  private readonly env: LinkEnvironment;
  private readonly pairRandom: KeyedRandom;
  private profile: ResolvedProfile;
  private readonly timing: LinkTiming;

  private mtuValue = ATT_DEFAULT_MTU;
  private mtuRequested = false;
  private subscribedFlag = false;
  private readonly open: Record<Side, boolean> = { peripheral: true, central: true };
  private readonly attached: Record<Side, boolean> = { peripheral: true, central: true };
  private done = false;

  private readonly silence = new Set<SilenceCause>();
  private silenceEpoch = 0;
  private readonly waiting: Record<Direction, Queued[]> = { c2p: [], p2c: [] };
  private readonly nextSeq: Record<Direction, number> = { c2p: 0, p2c: 0 };

  /** Central requests waiting for a response PDU. */
  private readonly pendingCentral = new Set<number>();
  /** Write-with-response chunks delivered to the peripheral, by chunk seq → central request id. */
  private readonly awaitingAck = new Map<number, number>();
  private chunkSeq = 0;

  constructor(env: LinkEnvironment, init: LinkInit) {
    this.env = env;
    this.id = init.id;
    this.peripheral = init.peripheral;
    this.central = init.central;
    this.profile = init.profile;
    this.pairRandom = init.pairRandom;
    this.timing = new LinkTiming(init.openedAt, timingOf(init.profile), init.random);
  }

  get finished(): boolean {
    return this.done;
  }

  get mtu(): number {
    return this.mtuValue;
  }

  get subscribed(): boolean {
    return this.subscribedFlag;
  }

  get silent(): boolean {
    return this.silence.size > 0;
  }

  isOpen(side: Side): boolean {
    return this.open[side];
  }

  /** First connection event: tell both ends; `connectRequestId` gets the central's `ok`. */
  start(at: number, connectRequestId: number): void {
    const rssi = this.rssiAt(at).rssi;
    this.env.send(this.peripheral.client, { ev: 'link-open', linkId: this.id, address: this.central.name, mtu: this.mtuValue, rssi, at });
    this.env.send(this.central.client, { ev: 'ok', id: connectRequestId, result: { linkId: this.id, mtu: this.mtuValue, rssi } });
    const { dropAfterConnectMs, lossRate } = this.profile.settings;
    if (dropAfterConnectMs !== null) this.env.queue.schedule(at + dropAfterConnectMs, (t) => this.addSilence('drop', t));
    if (lossRate >= 1) this.addSilence('loss', at);
    this.scheduleRssiReport(at);
  }

  // --- requests from the ends ---------------------------------------------------

  /** ATT request from the central (MTU exchange, discovery, CCCD subscribe). Reply is deferred. */
  centralRequest(op: AttRequest, requestedMtu: number, requestId: number, now: number): undefined {
    this.requireOpen('central');
    if (op === 'mtu') {
      if (this.mtuRequested) throw new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', 'MTU exchange was already done on this link (ATT allows one)');
      this.mtuRequested = true;
    }
    this.pendingCentral.add(requestId);
    this.transmit('c2p', { kind: 'request', op, requestId, mtu: requestedMtu }, now);
    return undefined;
  }

  /** Write from the central: with response the reply waits for the peripheral's ack. */
  centralWrite(data: Uint8Array, withResponse: boolean, requestId: number, now: number): OkResult | undefined {
    this.requireOpen('central');
    this.requireChunkFits(data);
    if (withResponse) this.pendingCentral.add(requestId);
    this.transmit('c2p', { kind: 'write', data, requestId: withResponse ? requestId : undefined }, now);
    return withResponse ? undefined : {};
  }

  peripheralNotify(data: Uint8Array, now: number): OkResult {
    this.requireOpen('peripheral');
    if (!this.subscribedFlag) throw new CarkeyError('CK_TRANSPORT_NOT_SUBSCRIBED', `link ${this.id}`);
    this.requireChunkFits(data);
    this.transmit('p2c', { kind: 'notification', data }, now);
    return {};
  }

  /** The peripheral's host answered a write with response: the write response goes back over the air. */
  peripheralWriteAck(seq: number, now: number): OkResult {
    this.requireOpen('peripheral');
    const requestId = this.awaitingAck.get(seq);
    if (requestId === undefined) throw new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', `no write with response ${seq} is waiting on link ${this.id}`);
    this.awaitingAck.delete(seq);
    this.transmit('p2c', { kind: 'response', requestId, result: {} }, now);
    return {};
  }

  /** Local disconnect by one side. Idempotent. */
  disconnect(side: Side, now: number): OkResult {
    if (!this.open[side]) return {};
    this.closeSide(side, undefined, now);
    this.transmit(side === 'central' ? 'c2p' : 'p2c', { kind: 'terminate' }, now);
    this.finishIfClosed();
    return {};
  }

  /**
   * The process of one side went away. If that side was still open its radio
   * falls silent (the other side sees link-lost after the supervision
   * timeout); if it had already disconnected, its terminate PDU still flies.
   */
  detach(side: Side, now: number): void {
    this.attached[side] = false;
    if (this.open[side]) {
      this.closeSide(side, undefined, now);
      const other: Side = side === 'peripheral' ? 'central' : 'peripheral';
      if (this.open[other]) this.addSilence('peer-gone', now);
    }
    this.finishIfClosed();
  }

  /** Explicit drop fault: the link goes silent at `at` (link-lost after the supervision timeout). */
  dropAt(at: number, now: number): void {
    if (at <= now) this.addSilence('drop', now);
    else this.env.queue.schedule(at, (t) => this.addSilence('drop', t));
  }

  updateProfile(profile: ResolvedProfile, now: number): void {
    if (this.done) return;
    this.profile = profile;
    this.timing.setParams(now, timingOf(profile));
    if (profile.settings.lossRate >= 1) this.addSilence('loss', now);
    else this.removeSilence('loss', now);
  }

  // --- the air --------------------------------------------------------------------

  private transmit(dir: Direction, pdu: Pdu, now: number): void {
    const item: Queued = { seq: this.nextSeq[dir], pdu };
    this.nextSeq[dir] += 1;
    if (this.silent || this.waiting[dir].length > 0) {
      this.wait(dir, item);
      return;
    }
    this.send(dir, item, now);
  }

  private send(dir: Direction, item: Queued, now: number): void {
    const transfer = this.timing.schedule(dir, now);
    if (transfer.kind === 'lost') {
      this.wait(dir, item);
      this.env.queue.schedule(transfer.silentFrom, (t) => this.addSilence('fading', t));
      return;
    }
    this.env.queue.schedule(transfer.deliverAt, (at) => this.deliver(dir, item, at));
  }

  private wait(dir: Direction, item: Queued): void {
    const queue = this.waiting[dir];
    let index = queue.length;
    while (index > 0 && (queue[index - 1]?.seq ?? -1) > item.seq) index -= 1;
    queue.splice(index, 0, item);
  }

  private deliver(dir: Direction, item: Queued, at: number): void {
    if (this.done) return;
    if (this.silent) {
      this.wait(dir, item);
      return;
    }
    if (dir === 'c2p') this.deliverToPeripheral(item.pdu, at);
    else this.deliverToCentral(item.pdu, at);
  }

  private deliverToPeripheral(pdu: Pdu, at: number): void {
    if (!this.open.peripheral) return;
    const to = this.peripheral.client;
    switch (pdu.kind) {
      case 'write': {
        const seq = this.chunkSeq;
        this.chunkSeq += 1;
        if (pdu.requestId !== undefined) this.awaitingAck.set(seq, pdu.requestId);
        const withResponse = pdu.requestId !== undefined;
        this.env.send(to, { ev: 'chunk', linkId: this.id, seq, data: pdu.data, withResponse, rssi: this.rssiAt(at).rssi, at });
        return;
      }
      case 'request':
        this.answerRequest(pdu, at);
        return;
      case 'terminate':
        this.closeSide('peripheral', 'remote', at);
        this.finishIfClosed();
        return;
      case 'response':
      case 'notification':
        return;
    }
  }

  /** The peripheral's GATT server answers ATT requests itself (as bleno's stack does). */
  private answerRequest(pdu: Extract<Pdu, { kind: 'request' }>, at: number): void {
    const to = this.peripheral.client;
    let result: OkResult = {};
    switch (pdu.op) {
      case 'mtu': {
        this.mtuValue = Math.min(pdu.mtu, this.peripheral.maxMtu);
        this.env.send(to, { ev: 'mtu', linkId: this.id, mtu: this.mtuValue, at });
        result = { mtu: this.mtuValue };
        break;
      }
      case 'discover':
        result = { services: [GATT.service, GATT.write, GATT.notify] };
        break;
      case 'subscribe':
        if (!this.subscribedFlag) {
          this.subscribedFlag = true;
          this.env.send(to, { ev: 'subscribed', linkId: this.id, at });
        }
        break;
    }
    this.transmit('p2c', { kind: 'response', requestId: pdu.requestId, result }, at);
  }

  private deliverToCentral(pdu: Pdu, at: number): void {
    if (!this.open.central) return;
    const to = this.central.client;
    switch (pdu.kind) {
      case 'notification':
        this.env.send(to, { ev: 'notification', linkId: this.id, data: pdu.data, rssi: this.rssiAt(at).rssi, at });
        return;
      case 'response':
        if (this.pendingCentral.delete(pdu.requestId)) this.env.send(to, { ev: 'ok', id: pdu.requestId, result: pdu.result });
        return;
      case 'terminate':
        this.closeSide('central', 'remote', at);
        this.finishIfClosed();
        return;
      case 'write':
      case 'request':
        return;
    }
  }

  // --- silence and supervision ----------------------------------------------------

  private addSilence(cause: SilenceCause, at: number): void {
    if (this.done) return;
    const wasSilent = this.silent;
    this.silence.add(cause);
    if (wasSilent) return;
    this.silenceEpoch += 1;
    const epoch = this.silenceEpoch;
    const lostAt = at + effectiveSupervisionMs(this.timing.current);
    this.env.queue.schedule(lostAt, (t) => {
      if (this.silenceEpoch === epoch && this.silent) this.lose(t);
    });
  }

  private removeSilence(cause: SilenceCause, at: number): void {
    if (!this.silence.delete(cause) || this.silent || this.done) return;
    this.silenceEpoch += 1;
    for (const dir of ['c2p', 'p2c'] as const) {
      const items = this.waiting[dir];
      this.waiting[dir] = [];
      for (const item of items) {
        if (this.silent || this.waiting[dir].length > 0) this.wait(dir, item);
        else this.send(dir, item, at);
      }
    }
  }

  private lose(at: number): void {
    if (this.open.peripheral) this.closeSide('peripheral', 'link-lost', at);
    if (this.open.central) this.closeSide('central', 'link-lost', at);
    this.finishIfClosed();
  }

  // --- RSSI -------------------------------------------------------------------------

  private rssiAt(at: number): { readonly rssi: number; readonly mean: number } {
    return rssiAt(this.profile.rssi, this.profile.rssiOrigin, this.pairRandom, at);
  }

  private scheduleRssiReport(from: number): void {
    this.env.queue.schedule(from + this.env.radio().rssiReportIntervalMs, (at) => this.reportRssi(at));
  }

  private reportRssi(at: number): void {
    if (this.done) return;
    const { rssi, mean } = this.rssiAt(at);
    if (mean < this.env.radio().sensitivityDbm) this.addSilence('range', at);
    else this.removeSilence('range', at);
    if (!this.silent) {
      for (const side of ['peripheral', 'central'] as const) {
        if (this.open[side]) this.env.send(this[side].client, { ev: 'rssi', linkId: this.id, rssi, at });
      }
    }
    this.scheduleRssiReport(at);
  }

  // --- closing ----------------------------------------------------------------------

  /** Close one side; `reason` undefined means the side itself asked (no event is sent to it). */
  private closeSide(side: Side, reason: CloseReason | undefined, at: number): void {
    this.open[side] = false;
    if (side === 'central') {
      for (const requestId of this.pendingCentral) {
        if (this.attached.central) this.env.send(this.central.client, errorMessage(requestId, disconnected(`link ${this.id} closed`)));
      }
      this.pendingCentral.clear();
    } else {
      this.awaitingAck.clear();
    }
    if (reason !== undefined && this.attached[side]) {
      this.env.send(this[side].client, { ev: 'link-closed', linkId: this.id, reason, at });
    }
  }

  private finishIfClosed(): void {
    if (this.done || this.open.peripheral || this.open.central) return;
    this.done = true;
    this.waiting.c2p = [];
    this.waiting.p2c = [];
    this.env.finished(this);
  }

  private requireOpen(side: Side): void {
    if (!this.open[side]) throw disconnected(`link ${this.id} is closed`);
  }

  private requireChunkFits(data: Uint8Array): void {
    const max = this.mtuValue - ATT_HEADER_BYTES;
    if (data.length > max) {
      throw new CarkeyError('CK_TRANSPORT_CHUNK_TOO_LARGE', `${data.length} bytes, at most ${max} with MTU ${this.mtuValue}`);
    }
  }
}
