/**
 * Test harness for the pure radio core: drives `RadioAir` with a fake broker
 * clock, sends requests through the real wire codec, and records every
 * message per client.
 */
import { expect } from 'vitest';
import { RadioAir } from '../../firmware-sim/radio/air.js';
import type { ClientId } from '../../firmware-sim/radio/link.js';
import { parseRadioConfig } from '../../firmware-sim/radio/profile.js';
import { createKeyedRandom } from '../../firmware-sim/radio/random.js';
import { encodeJsonLine } from '../../src/transport/sim-json.js';
import { decodeRequest, decodeServerMessage, encodeMessage, type OkResult, type RequestBody, type ServerMessage } from '../../src/transport/sim-protocol.js';

export type Message = ServerMessage;

export class AirHarness {
  now = 0;
  readonly air: RadioAir;
  private readonly log = new Map<ClientId, ServerMessage[]>();
  private nextClient = 1;
  private nextId = 1;

  constructor(config: unknown = {}, seed = 1) {
    const parsed = parseRadioConfig(config);
    if (!parsed.ok) throw parsed.error;
    this.air = new RadioAir({
      random: createKeyedRandom(seed),
      seed,
      config: parsed.value,
      now: 0,
      instanceTag: 't',
      send: (client, message) => {
        // Every message must survive the wire format.
        const decoded = decodeServerMessage(encodeMessage(message));
        if (!decoded.ok) throw decoded.error;
        this.messages(client).push(decoded.value);
      },
    });
  }

  client(): ClientId {
    const id = this.nextClient;
    this.nextClient += 1;
    this.air.attach(id);
    return id;
  }

  /** Send a request; returns its id. */
  request(client: ClientId, body: RequestBody): number {
    const id = this.nextId;
    this.nextId += 1;
    const decoded = decodeRequest(encodeJsonLine({ id, ...body }));
    if (!decoded.ok) throw decoded.error;
    this.air.handle(client, decoded.value, this.now);
    return id;
  }

  /** Send and run until the reply; returns its result (throws on an error reply). */
  call(client: ClientId, body: RequestBody, limitMs = 10_000): OkResult {
    const id = this.request(client, body);
    const reply = this.runUntil(() => this.reply(client, id), limitMs);
    if (reply.ev === 'error') throw new Error(`${body.op}: ${reply.code} ${reply.message}`);
    if (reply.ev !== 'ok') throw new Error('unexpected');
    return reply.result;
  }

  hello(role: 'peripheral' | 'central' | 'control', name?: string, maxMtu?: number): ClientId {
    const client = this.client();
    this.call(client, { op: 'hello', v: 1, role, name, maxMtu });
    return client;
  }

  messages(client: ClientId): ServerMessage[] {
    let list = this.log.get(client);
    if (list === undefined) {
      list = [];
      this.log.set(client, list);
    }
    return list;
  }

  events<E extends ServerMessage['ev']>(client: ClientId, ev: E): Extract<ServerMessage, { ev: E }>[] {
    return this.messages(client).filter((m): m is Extract<ServerMessage, { ev: E }> => m.ev === ev);
  }

  reply(client: ClientId, id: number): Extract<ServerMessage, { ev: 'ok' | 'error' }> | undefined {
    return this.messages(client).find((m): m is Extract<ServerMessage, { ev: 'ok' | 'error' }> => (m.ev === 'ok' || m.ev === 'error') && m.id === id);
  }

  /** Advance event by event until `probe` returns a value or `limitMs` of broker time passed. */
  runUntil<T>(probe: () => T | undefined, limitMs = 10_000): T {
    const limit = this.now + limitMs;
    for (;;) {
      const found = probe();
      if (found !== undefined) return found;
      const next = this.air.nextEventAt();
      if (next === undefined || next > limit) {
        this.now = limit;
        this.air.advance(limit);
        const last = probe();
        expect(last, `condition not reached within ${limitMs} ms of broker time`).toBeDefined();
        return last as T;
      }
      this.now = Math.max(this.now, next);
      this.air.advance(this.now);
    }
  }

  runFor(ms: number): void {
    const limit = this.now + ms;
    for (let next = this.air.nextEventAt(); next !== undefined && next <= limit; next = this.air.nextEventAt()) {
      this.now = Math.max(this.now, next);
      this.air.advance(this.now);
    }
    this.now = limit;
  }
}

export const SERVICE_DATA = Uint8Array.from([1, 0, 1, 2, 3, 4, 5, 6, 7, 8]);

/** A car advertising and a phone linked to it (MTU exchanged, subscribed). */
export function linkedPair(h: AirHarness, options: { maxMtu?: number; mtu?: number } = {}): { car: ClientId; phone: ClientId; linkId: string } {
  const car = h.hello('peripheral', 'car', options.maxMtu ?? 247);
  h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
  const phone = h.hello('central', 'phone');
  const opened = h.call(phone, { op: 'connect', address: 'car' });
  const linkId = opened.linkId;
  if (linkId === undefined) throw new Error('no link id');
  h.call(phone, { op: 'mtu', linkId, mtu: options.mtu ?? 517 });
  h.call(phone, { op: 'discover', linkId });
  h.call(phone, { op: 'subscribe', linkId });
  return { car, phone, linkId };
}
