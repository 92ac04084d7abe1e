/**
 * The simulated air: radio clients (peripherals, centrals, controllers),
 * advertising, scanning, connection set-up and the control operations of the
 * broker. Links themselves live in `link.ts`.
 *
 * Guarantees:
 * - Pure simulation: no sockets, no clock reads, no global state. Time is
 *   passed in (`now`, broker ms) and every random decision comes from the
 *   seeded `KeyedRandom`, so the same inputs at the same times give the same
 *   outputs.
 * - Every request gets exactly one reply (`ok` or `error`), possibly later
 *   (connect, ATT requests, writes with response). A bad request only gets an
 *   error reply; it never throws out of `handle`.
 * - Advertising events are periodic (interval + 0-10 ms advDelay, as in the
 *   spec); a scanning central hears an advertisement when its RSSI for that
 *   pair reaches the sensitivity; a pending connect completes 1.25 ms after
 *   the next heard advertisement unless the pair's profile is `mute`.
 */

import { CarkeyError, toCarkeyError } from '../../src/core/errors.js';
import {
  ATT_MAX_MTU,
  MAX_STATUS_LINKS,
  SIM_PROTOCOL_VERSION,
  errorMessage,
  type LinkSelector,
  type OkResult,
  type RadioStatus,
  type Request,
  type Role,
  type ServerMessage,
} from '../../src/transport/sim-protocol.js';
import { EventQueue } from './event-queue.js';
import { RadioLink, type ClientId } from './link.js';
import { ProfileTable, type RadioConfig } from './profile.js';
import type { KeyedRandom } from './random.js';
import { rssiAt } from './rssi.js';

/** Delay from a heard advertisement (CONNECT_IND) to the first connection event. */
export const CONNECT_WINDOW_MS = 1.25;
/** Maximum random advDelay added to each advertising interval. */
export const ADV_DELAY_MAX_MS = 10;

export interface AirOptions {
  readonly random: KeyedRandom;
  readonly seed: number;
  readonly config: RadioConfig;
  /** Broker time at start. */
  readonly now: number;
  /** Prefix of link ids, unique per broker run. */
  readonly instanceTag: string;
  readonly send: (client: ClientId, message: ServerMessage) => void;
}

interface Advertisement {
  readonly localName: string;
  readonly serviceData: Uint8Array;
}

interface PeripheralState {
  readonly client: ClientId;
  readonly name: string;
  readonly maxMtu: number;
  advertisement: Advertisement | undefined;
  /** Bumped when advertising starts or stops, cancelling scheduled events. */
  advEpoch: number;
  advCount: number;
  readonly links: Set<RadioLink>;
}

interface PendingConnect {
  readonly address: string;
  establishing: boolean;
}

interface CentralState {
  readonly client: ClientId;
  readonly name: string;
  scanning: boolean;
  readonly pending: Map<number, PendingConnect>;
  readonly links: Set<RadioLink>;
}

interface ClientState {
  role: Role | undefined;
  peripheral: PeripheralState | undefined;
  central: CentralState | undefined;
}

type Reply = OkResult | undefined;

function rejected(detail: string): CarkeyError {
  return new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', detail);
}

export class RadioAir {
  private readonly queue = new EventQueue();
  private readonly random: KeyedRandom;
  private readonly seed: number;
  private readonly instanceTag: string;
  private readonly output: (client: ClientId, message: ServerMessage) => void;
  private readonly profiles: ProfileTable;
  private readonly clients = new Map<ClientId, ClientState>();
  private readonly peripherals = new Map<string, PeripheralState>();
  private readonly centrals = new Map<string, CentralState>();
  private readonly links = new Map<string, RadioLink>();
  private readonly pairLinkCount = new Map<string, number>();
  private linkCounter = 0;

  constructor(options: AirOptions) {
    this.random = options.random;
    this.seed = options.seed;
    this.instanceTag = options.instanceTag;
    this.output = options.send;
    this.profiles = new ProfileTable(options.config, options.now);
  }

  /** Broker time of the next scheduled event, if any. */
  nextEventAt(): number | undefined {
    return this.queue.nextAt();
  }

  /** Run every event due at or before `now`. */
  advance(now: number): void {
    this.queue.runDue(now);
  }

  attach(client: ClientId): void {
    this.clients.set(client, { role: undefined, peripheral: undefined, central: undefined });
  }

  /** The client's socket closed. */
  detach(client: ClientId, now: number): void {
    this.advance(now);
    const state = this.clients.get(client);
    if (state === undefined) return;
    this.clients.delete(client);
    const { peripheral, central } = state;
    if (peripheral !== undefined) {
      if (this.peripherals.get(peripheral.name) === peripheral) this.peripherals.delete(peripheral.name);
      peripheral.advertisement = undefined;
      peripheral.advEpoch += 1;
      for (const link of [...peripheral.links]) link.detach('peripheral', now);
    }
    if (central !== undefined) {
      if (this.centrals.get(central.name) === central) this.centrals.delete(central.name);
      central.pending.clear();
      central.scanning = false;
      for (const link of [...central.links]) link.detach('central', now);
    }
  }

  /** Send an error reply for a request that could not be decoded. */
  rejectUndecodable(client: ClientId, id: number | undefined, error: CarkeyError): void {
    this.send(client, errorMessage(id, error));
  }

  handle(client: ClientId, request: Request, now: number): void {
    this.advance(now);
    const state = this.clients.get(client);
    if (state === undefined) return;
    let reply: Reply;
    try {
      reply = this.dispatch(client, state, request, now);
    } catch (error) {
      this.send(client, errorMessage(request.id, toCarkeyError(error)));
      return;
    }
    if (reply !== undefined) this.send(client, { ev: 'ok', id: request.id, result: reply });
  }

  private send(client: ClientId, message: ServerMessage): void {
    if (this.clients.has(client)) this.output(client, message);
  }

  private dispatch(client: ClientId, state: ClientState, request: Request, now: number): Reply {
    if (request.op === 'hello') return this.hello(client, state, request);
    if (state.role === undefined) throw rejected('send "hello" first');
    switch (request.op) {
      case 'time':
        return { now };
      case 'status':
        return { status: this.status() };
      case 'set-profile':
        return this.setProfile(request, request.profile, now);
      case 'set-radio':
        return { radio: this.profiles.setRadio(request.radio) };
      case 'drop':
        return { links: this.drop(request, request.afterMs, now) };
      case 'advertise':
      case 'advertise-stop':
      case 'notify':
      case 'write-ack':
        return this.peripheralRequest(this.requirePeripheral(state), request, now);
      case 'scan-start':
      case 'scan-stop':
      case 'connect':
      case 'connect-cancel':
      case 'mtu':
      case 'discover':
      case 'subscribe':
      case 'write':
        return this.centralRequest(this.requireCentral(state), request, now);
      case 'disconnect': {
        if (state.peripheral !== undefined) return this.peripheralLink(state.peripheral, request.linkId).disconnect('peripheral', now);
        if (state.central !== undefined) return this.centralLink(state.central, request.linkId).disconnect('central', now);
        throw rejected('only peripherals and centrals have links');
      }
    }
  }

  private hello(client: ClientId, state: ClientState, request: Extract<Request, { op: 'hello' }>): Reply {
    if (state.role !== undefined) throw rejected('"hello" was already sent on this connection');
    if (request.v !== SIM_PROTOCOL_VERSION) throw rejected(`protocol version ${request.v} is not supported (broker speaks ${SIM_PROTOCOL_VERSION})`);
    if (request.role === 'peripheral' || request.role === 'central') {
      const { name } = request;
      if (name === undefined) throw rejected(`a ${request.role} needs a "name"`);
      const registry = request.role === 'peripheral' ? this.peripherals : this.centrals;
      if (registry.has(name)) throw rejected(`a ${request.role} named "${name}" is already on the air`);
      if (request.role === 'peripheral') {
        const peripheral: PeripheralState = {
          client,
          name,
          maxMtu: request.maxMtu ?? ATT_MAX_MTU,
          advertisement: undefined,
          advEpoch: 0,
          advCount: 0,
          links: new Set(),
        };
        this.peripherals.set(name, peripheral);
        state.peripheral = peripheral;
      } else {
        const central: CentralState = { client, name, scanning: false, pending: new Map(), links: new Set() };
        this.centrals.set(name, central);
        state.central = central;
      }
    }
    state.role = request.role;
    return { seed: this.seed };
  }

  private requirePeripheral(state: ClientState): PeripheralState {
    if (state.peripheral === undefined) throw rejected('only a peripheral may do that');
    return state.peripheral;
  }

  private requireCentral(state: ClientState): CentralState {
    if (state.central === undefined) throw rejected('only a central may do that');
    return state.central;
  }

  private peripheralLink(peripheral: PeripheralState, linkId: string): RadioLink {
    const link = this.links.get(linkId);
    if (link === undefined || link.peripheral.client !== peripheral.client || !link.isOpen('peripheral')) {
      throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `no open link ${linkId}`);
    }
    return link;
  }

  private centralLink(central: CentralState, linkId: string): RadioLink {
    const link = this.links.get(linkId);
    if (link === undefined || link.central.client !== central.client || !link.isOpen('central')) {
      throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `no open link ${linkId}`);
    }
    return link;
  }

  // --- peripherals ------------------------------------------------------------------

  private peripheralRequest(
    peripheral: PeripheralState,
    request: Extract<Request, { op: 'advertise' | 'advertise-stop' | 'notify' | 'write-ack' }>,
    now: number,
  ): Reply {
    switch (request.op) {
      case 'advertise': {
        const wasAdvertising = peripheral.advertisement !== undefined;
        peripheral.advertisement = { localName: request.localName, serviceData: request.serviceData };
        if (!wasAdvertising) {
          peripheral.advEpoch += 1;
          this.scheduleAdvertising(peripheral, now);
        }
        return {};
      }
      case 'advertise-stop':
        peripheral.advertisement = undefined;
        peripheral.advEpoch += 1;
        return {};
      case 'notify':
        return this.peripheralLink(peripheral, request.linkId).peripheralNotify(request.data, now);
      case 'write-ack':
        return this.peripheralLink(peripheral, request.linkId).peripheralWriteAck(request.seq, now);
    }
  }

  /** First advertising event: after a random advDelay from now. */
  private scheduleAdvertising(peripheral: PeripheralState, now: number): void {
    const epoch = peripheral.advEpoch;
    const delay = ADV_DELAY_MAX_MS * this.random.unit('adv-delay', peripheral.name, peripheral.advCount);
    this.queue.schedule(now + delay, (at) => this.advertisingEvent(peripheral, epoch, at));
  }

  private advertisingEvent(peripheral: PeripheralState, epoch: number, at: number): void {
    const advertisement = peripheral.advertisement;
    if (peripheral.advEpoch !== epoch || advertisement === undefined) return;
    peripheral.advCount += 1;
    const { sensitivityDbm } = this.profiles.radio();
    for (const central of this.centrals.values()) {
      const profile = this.profiles.resolve(peripheral.name, central.name);
      const { rssi } = rssiAt(profile.rssi, profile.rssiOrigin, this.pairRandom(peripheral.name, central.name), at);
      if (rssi < sensitivityDbm) continue;
      if (central.scanning) {
        this.send(central.client, { ev: 'adv', address: peripheral.name, localName: advertisement.localName, serviceData: advertisement.serviceData, rssi, at });
      }
      if (!profile.settings.mute) this.answerConnect(peripheral, central, at);
    }
    const next = at + this.profiles.radio().advertisingIntervalMs + ADV_DELAY_MAX_MS * this.random.unit('adv-delay', peripheral.name, peripheral.advCount);
    this.queue.schedule(next, (t) => this.advertisingEvent(peripheral, epoch, t));
  }

  // --- centrals ---------------------------------------------------------------------

  private centralRequest(
    central: CentralState,
    request: Extract<Request, { op: 'scan-start' | 'scan-stop' | 'connect' | 'connect-cancel' | 'mtu' | 'discover' | 'subscribe' | 'write' }>,
    now: number,
  ): Reply {
    switch (request.op) {
      case 'scan-start':
        central.scanning = true;
        return {};
      case 'scan-stop':
        central.scanning = false;
        return {};
      case 'connect': {
        const busy =
          [...central.pending.values()].some((p) => p.address === request.address) ||
          [...central.links].some((link) => link.peripheral.name === request.address && link.isOpen('central'));
        if (busy) throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', `already connected or connecting to ${request.address}`);
        central.pending.set(request.id, { address: request.address, establishing: false });
        return undefined;
      }
      case 'connect-cancel': {
        if (central.pending.delete(request.connectId)) {
          this.send(central.client, errorMessage(request.connectId, new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', 'connection attempt cancelled')));
        }
        return {};
      }
      case 'mtu':
      case 'discover':
      case 'subscribe':
        return this.centralLink(central, request.linkId).centralRequest(request.op, request.op === 'mtu' ? request.mtu : 0, request.id, now);
      case 'write':
        return this.centralLink(central, request.linkId).centralWrite(request.data, request.withResponse, request.id, now);
    }
  }

  /** A heard advertisement lets pending connects from `central` to `peripheral` go ahead. */
  private answerConnect(peripheral: PeripheralState, central: CentralState, at: number): void {
    for (const [requestId, pending] of central.pending) {
      if (pending.address !== peripheral.name || pending.establishing) continue;
      pending.establishing = true;
      this.queue.schedule(at + CONNECT_WINDOW_MS, (t) => this.establish(peripheral, central, requestId, t));
    }
  }

  private establish(peripheral: PeripheralState, central: CentralState, requestId: number, at: number): void {
    if (!central.pending.delete(requestId)) return;
    if (this.centrals.get(central.name) !== central) return;
    if (this.peripherals.get(peripheral.name) !== peripheral) {
      // The car vanished between CONNECT_IND and the first event: keep trying.
      central.pending.set(requestId, { address: peripheral.name, establishing: false });
      return;
    }
    const pairKey = `${peripheral.name}\u0000${central.name}`;
    const ordinal = this.pairLinkCount.get(pairKey) ?? 0;
    this.pairLinkCount.set(pairKey, ordinal + 1);
    this.linkCounter += 1;
    const link = new RadioLink(
      {
        queue: this.queue,
        send: (client, message) => this.send(client, message),
        radio: () => this.profiles.radio(),
        finished: (done) => this.linkFinished(done),
      },
      {
        id: `${this.instanceTag}-${this.linkCounter}`,
        openedAt: at,
        peripheral: { client: peripheral.client, name: peripheral.name, maxMtu: peripheral.maxMtu },
        central: { client: central.client, name: central.name },
        profile: this.profiles.resolve(peripheral.name, central.name),
        random: this.random.derive('link', peripheral.name, central.name, ordinal),
        pairRandom: this.pairRandom(peripheral.name, central.name),
      },
    );
    this.links.set(link.id, link);
    peripheral.links.add(link);
    central.links.add(link);
    link.start(at, requestId);
  }

  private linkFinished(link: RadioLink): void {
    this.links.delete(link.id);
    this.peripherals.get(link.peripheral.name)?.links.delete(link);
    this.centrals.get(link.central.name)?.links.delete(link);
    for (const state of this.clients.values()) {
      state.peripheral?.links.delete(link);
      state.central?.links.delete(link);
    }
  }

  private pairRandom(peripheral: string, central: string): KeyedRandom {
    return this.random.derive('pair', peripheral, central);
  }

  // --- control ------------------------------------------------------------------------

  private matching(selector: LinkSelector): RadioLink[] {
    return [...this.links.values()].filter(
      (link) =>
        !link.finished &&
        (selector.peripheral === undefined || link.peripheral.name === selector.peripheral) &&
        (selector.central === undefined || link.central.name === selector.central),
    );
  }

  private setProfile(selector: LinkSelector, patch: Extract<Request, { op: 'set-profile' }>['profile'], now: number): Reply {
    const applied = this.profiles.apply(selector, patch, now);
    if (!applied.ok) throw applied.error;
    for (const link of this.links.values()) {
      link.updateProfile(this.profiles.resolve(link.peripheral.name, link.central.name), now);
    }
    return { profile: applied.value.settings };
  }

  private drop(selector: LinkSelector, afterMs: number, now: number): number {
    const links = this.matching(selector);
    for (const link of links) link.dropAt(now + afterMs, now);
    return links.length;
  }

  private status(): RadioStatus {
    const countOpen = (links: Set<RadioLink>): number => [...links].filter((link) => !link.finished).length;
    return {
      peripherals: [...this.peripherals.values()]
        .slice(0, MAX_STATUS_LINKS)
        .map((p) => ({ name: p.name, advertising: p.advertisement !== undefined, links: countOpen(p.links) })),
      centrals: [...this.centrals.values()]
        .slice(0, MAX_STATUS_LINKS)
        .map((c) => ({ name: c.name, scanning: c.scanning, links: countOpen(c.links) })),
      links: [...this.links.values()].slice(0, MAX_STATUS_LINKS).map((link) => ({
        id: link.id,
        peripheral: link.peripheral.name,
        central: link.central.name,
        mtu: link.mtu,
        subscribed: link.subscribed,
        silent: link.silent,
      })),
    };
  }
}
