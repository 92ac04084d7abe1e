/**
 * The pure radio core (`RadioAir` + `RadioLink`) under a fake broker clock:
 * advertising and scanning, connection set-up, MTU, ordered traffic at
 * connection events, write responses, disconnects both ways, faults (mute,
 * drop, loss, out of range, vanished peer), control and reproducibility.
 */
import { describe, expect, it } from 'vitest';
import { GATT } from '../../src/transport/types.js';
import { AirHarness, SERVICE_DATA, linkedPair } from './air-harness.js';

function onEventGrid(at: number, anchor: number, interval: number): boolean {
  const index = (at - anchor) / interval;
  return Math.abs(index - Math.round(index)) < 1e-6;
}

const FAST = { radio: { advertisingIntervalMs: 20, rssiReportIntervalMs: 50 }, defaults: { connectionIntervalMs: 7.5, jitterMs: 0, supervisionTimeoutMs: 200 } };

describe('advertising and scanning', () => {
  it('a scanning central hears advertisements with service data and RSSI, at the advertising interval', () => {
    const h = new AirHarness({ ...FAST, defaults: { ...FAST.defaults, rssi: 'fixed:-58' } });
    const car = h.hello('peripheral', 'car');
    const phone = h.hello('central', 'phone');
    h.call(phone, { op: 'scan-start' });
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
    h.runFor(1000);
    const advs = h.events(phone, 'adv');
    expect(advs.length).toBeGreaterThanOrEqual(1000 / 30);
    expect(advs.length).toBeLessThanOrEqual(1000 / 20 + 1);
    expect(advs[0]).toMatchObject({ address: 'car', localName: 'carkey', rssi: -58 });
    expect(Array.from(advs[0]?.serviceData ?? [])).toEqual(Array.from(SERVICE_DATA));
    for (let i = 1; i < advs.length; i += 1) {
      const gap = (advs[i]?.at ?? 0) - (advs[i - 1]?.at ?? 0);
      expect(gap).toBeGreaterThanOrEqual(20);
      expect(gap).toBeLessThanOrEqual(30);
    }
  });

  it('updates advertised data without a gap and stops when told', () => {
    const h = new AirHarness(FAST);
    const car = h.hello('peripheral', 'car');
    const phone = h.hello('central', 'phone');
    h.call(phone, { op: 'scan-start' });
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
    h.runFor(100);
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: Uint8Array.from([9]) });
    h.runFor(100);
    const last = h.events(phone, 'adv').at(-1);
    expect(Array.from(last?.serviceData ?? [])).toEqual([9]);
    h.call(car, { op: 'advertise-stop' });
    const count = h.events(phone, 'adv').length;
    h.runFor(500);
    expect(h.events(phone, 'adv').length).toBe(count);
  });

  it('a central that is not scanning hears nothing; one out of range neither', () => {
    const h = new AirHarness({ ...FAST, links: [{ central: 'far', rssi: 'fixed:-110' }] });
    const car = h.hello('peripheral', 'car');
    const idle = h.hello('central', 'idle');
    const far = h.hello('central', 'far');
    h.call(far, { op: 'scan-start' });
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
    h.runFor(500);
    expect(h.events(idle, 'adv')).toEqual([]);
    expect(h.events(far, 'adv')).toEqual([]);
  });
});

describe('connections', () => {
  it('connect, MTU = min(request, peripheral max), discovery, subscribe', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h, { maxMtu: 185, mtu: 247 });
    const open = h.events(car, 'link-open')[0];
    expect(open).toMatchObject({ linkId, address: 'phone', mtu: 23 });
    expect(h.events(car, 'mtu')).toMatchObject([{ linkId, mtu: 185 }]);
    expect(h.events(car, 'subscribed')).toMatchObject([{ linkId }]);
    const replies = h.events(phone, 'ok').map((m) => m.result);
    expect(replies).toContainEqual({ mtu: 185 });
    expect(replies).toContainEqual({ services: [GATT.service, GATT.write, GATT.notify] });
  });

  it('the MTU can be exchanged only once', () => {
    const h = new AirHarness(FAST);
    const { phone, linkId } = linkedPair(h);
    expect(() => h.call(phone, { op: 'mtu', linkId, mtu: 100 })).toThrow(/already done/);
  });

  it('each ATT round trip takes connection events: request at one event, response at a later one', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h);
    const opened = h.events(car, 'link-open')[0]?.at ?? 0;
    const sentAt = h.now;
    const id = h.request(phone, { op: 'write', linkId, data: Uint8Array.from([1]), withResponse: true });
    const chunk = h.runUntil(() => h.events(car, 'chunk')[0]);
    expect(chunk.at).toBeGreaterThan(sentAt);
    expect(onEventGrid(chunk.at, opened, 7.5)).toBe(true);
    h.request(car, { op: 'write-ack', linkId, seq: chunk.seq });
    const reply = h.runUntil(() => h.reply(phone, id));
    expect(reply.ev).toBe('ok');
    // The write response needs a later connection event than the write itself.
    const okAt = h.now;
    expect(okAt).toBeGreaterThanOrEqual(chunk.at + 7.5);
  });

  it('writes and notifications arrive in order, several per event, each within mtu - 3', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h, { maxMtu: 64 });
    for (let i = 0; i < 20; i += 1) h.request(phone, { op: 'write', linkId, data: Uint8Array.from([i]), withResponse: false });
    for (let i = 0; i < 20; i += 1) h.request(car, { op: 'notify', linkId, data: Uint8Array.from([100 + i]) });
    h.runFor(500);
    expect(h.events(car, 'chunk').map((c) => c.data[0])).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(h.events(phone, 'notification').map((c) => c.data[0])).toEqual(Array.from({ length: 20 }, (_, i) => 100 + i));
    const perEvent = new Map<number, number>();
    for (const c of h.events(car, 'chunk')) perEvent.set(c.at, (perEvent.get(c.at) ?? 0) + 1);
    expect(Math.max(...perEvent.values())).toBe(4);
    const tooBig = h.request(phone, { op: 'write', linkId, data: new Uint8Array(62), withResponse: false });
    expect(h.reply(phone, tooBig)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_CHUNK_TOO_LARGE' });
    const fits = h.request(car, { op: 'notify', linkId, data: new Uint8Array(61) });
    expect(h.reply(car, fits)?.ev).toBe('ok');
  });

  it('notify before subscription is refused', () => {
    const h = new AirHarness(FAST);
    const car = h.hello('peripheral', 'car');
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
    const phone = h.hello('central', 'phone');
    const linkId = h.call(phone, { op: 'connect', address: 'car' }).linkId ?? '';
    const id = h.request(car, { op: 'notify', linkId, data: Uint8Array.from([1]) });
    expect(h.reply(car, id)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_NOT_SUBSCRIBED' });
  });

  it('central disconnect: central closes at once, car sees remote at the next event', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h);
    h.call(phone, { op: 'disconnect', linkId });
    const closed = h.runUntil(() => h.events(car, 'link-closed')[0]);
    expect(closed).toMatchObject({ linkId, reason: 'remote' });
    expect(h.events(phone, 'link-closed')).toEqual([]);
    const id = h.request(car, { op: 'notify', linkId, data: Uint8Array.from([1]) });
    expect(h.reply(car, id)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_DISCONNECTED' });
    expect(h.call(phone, { op: 'status' }).status?.links).toEqual([]);
  });

  it('peripheral disconnect: pending write with response fails, phone sees remote', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h);
    const write = h.request(phone, { op: 'write', linkId, data: Uint8Array.from([1]), withResponse: true });
    h.runUntil(() => h.events(car, 'chunk')[0]);
    h.call(car, { op: 'disconnect', linkId });
    expect(h.runUntil(() => h.events(phone, 'link-closed')[0])).toMatchObject({ reason: 'remote' });
    expect(h.reply(phone, write)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_DISCONNECTED' });
  });

  it('connect-cancel answers the pending connect', () => {
    const h = new AirHarness(FAST);
    const phone = h.hello('central', 'phone');
    const connect = h.request(phone, { op: 'connect', address: 'nobody' });
    h.runFor(200);
    expect(h.reply(phone, connect)).toBeUndefined();
    h.call(phone, { op: 'connect-cancel', connectId: connect });
    expect(h.reply(phone, connect)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_CONNECT_FAILED' });
  });

  it('a connect to a car that starts advertising later completes then', () => {
    const h = new AirHarness(FAST);
    const phone = h.hello('central', 'phone');
    const connect = h.request(phone, { op: 'connect', address: 'car' });
    h.runFor(300);
    const car = h.hello('peripheral', 'car');
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
    expect(h.runUntil(() => h.reply(phone, connect))).toMatchObject({ ev: 'ok' });
  });
});

describe('faults', () => {
  it('a mute car advertises but never answers a connect', () => {
    const h = new AirHarness({ ...FAST, links: [{ peripheral: 'car', mute: true }] });
    const car = h.hello('peripheral', 'car');
    h.call(car, { op: 'advertise', localName: 'carkey', serviceData: SERVICE_DATA });
    const phone = h.hello('central', 'phone');
    h.call(phone, { op: 'scan-start' });
    const connect = h.request(phone, { op: 'connect', address: 'car' });
    h.runFor(5000);
    expect(h.events(phone, 'adv').length).toBeGreaterThan(100);
    expect(h.reply(phone, connect)).toBeUndefined();
    expect(h.events(car, 'link-open')).toEqual([]);
  });

  it('drop: the link goes silent and both sides see link-lost one supervision timeout later', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h);
    const control = h.hello('control');
    const droppedAt = h.now;
    expect(h.call(control, { op: 'drop', afterMs: 0 }).links).toBe(1);
    const write = h.request(phone, { op: 'write', linkId, data: Uint8Array.from([1]), withResponse: true });
    const lost = h.runUntil(() => h.events(phone, 'link-closed')[0]);
    expect(lost).toMatchObject({ reason: 'link-lost' });
    expect(lost.at).toBe(droppedAt + 200);
    expect(h.events(car, 'link-closed')).toMatchObject([{ reason: 'link-lost', at: droppedAt + 200 }]);
    expect(h.events(car, 'chunk')).toEqual([]);
    expect(h.reply(phone, write)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_DISCONNECTED' });
  });

  it('dropAfterConnectMs drops each link of the pair that long after it opens', () => {
    const h = new AirHarness({ ...FAST, links: [{ peripheral: 'car', central: 'phone', dropAfterConnectMs: 1000 }] });
    const { car } = linkedPair(h);
    const opened = h.events(car, 'link-open')[0]?.at ?? 0;
    const lost = h.runUntil(() => h.events(car, 'link-closed')[0]);
    expect(lost).toMatchObject({ reason: 'link-lost', at: opened + 1000 + 200 });
  });

  it('a vanished car process: the phone sees link-lost after the supervision timeout', () => {
    const h = new AirHarness(FAST);
    const { car, phone } = linkedPair(h);
    const goneAt = h.now;
    h.air.detach(car, h.now);
    expect(h.runUntil(() => h.events(phone, 'link-closed')[0])).toMatchObject({ reason: 'link-lost', at: goneAt + 200 });
    // the name is free again
    h.hello('peripheral', 'car');
  });

  it('a clean stop (disconnect, then the process leaves) reaches the phone as remote', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h);
    h.call(car, { op: 'disconnect', linkId });
    h.air.detach(car, h.now);
    expect(h.runUntil(() => h.events(phone, 'link-closed')[0])).toMatchObject({ reason: 'remote' });
  });

  it('packet loss shows up as delay in whole connection intervals, order kept', () => {
    const h = new AirHarness({ ...FAST, defaults: { ...FAST.defaults, lossRate: 0.3, supervisionTimeoutMs: 32_000 } });
    const { car, phone, linkId } = linkedPair(h);
    const opened = h.events(car, 'link-open')[0]?.at ?? 0;
    const submitted: number[] = [];
    for (let i = 0; i < 50; i += 1) {
      submitted.push(h.now);
      h.request(phone, { op: 'write', linkId, data: Uint8Array.from([i]), withResponse: false });
      h.runFor(7.5);
    }
    h.runFor(2000);
    const chunks = h.events(car, 'chunk');
    expect(chunks.map((c) => c.data[0])).toEqual(Array.from({ length: 50 }, (_, i) => i));
    for (const c of chunks) expect(onEventGrid(c.at, opened, 7.5)).toBe(true);
    const delays = chunks.map((c, i) => c.at - (submitted[i] ?? 0));
    expect(Math.min(...delays)).toBeGreaterThan(0);
    // Some writes missed their first event and went out one or more intervals later.
    expect(Math.max(...delays)).toBeGreaterThan(7.5 + 1e-6);
  });

  it('loss rate 1 set at run time loses the link; lowering it before the timeout saves it', () => {
    const h = new AirHarness({ ...FAST, defaults: { ...FAST.defaults, supervisionTimeoutMs: 1000 } });
    const { car, phone, linkId } = linkedPair(h);
    const control = h.hello('control');
    h.call(control, { op: 'set-profile', profile: { lossRate: 1 } });
    h.request(phone, { op: 'write', linkId, data: Uint8Array.from([7]), withResponse: false });
    h.runFor(500);
    expect(h.events(car, 'chunk')).toEqual([]);
    h.call(control, { op: 'set-profile', profile: { lossRate: 0 } });
    expect(h.runUntil(() => h.events(car, 'chunk')[0]).data[0]).toBe(7);
    h.runFor(2000);
    expect(h.events(car, 'link-closed')).toEqual([]);
    h.call(control, { op: 'set-profile', profile: { lossRate: 1 } });
    expect(h.runUntil(() => h.events(phone, 'link-closed')[0])).toMatchObject({ reason: 'link-lost' });
  });

  it('walking away drops the link once the mean RSSI is below the sensitivity for the supervision timeout', () => {
    const h = new AirHarness({ ...FAST, links: [{ central: 'phone', rssi: 'walk-away:-50:-110:1000:0' }] });
    const { car, phone } = linkedPair(h);
    const lost = h.runUntil(() => h.events(phone, 'link-closed')[0]);
    expect(lost.reason).toBe('link-lost');
    expect(h.events(car, 'link-closed')[0]?.reason).toBe('link-lost');
    const reports = h.events(phone, 'rssi');
    expect(reports.length).toBeGreaterThan(3);
    for (let i = 1; i < reports.length; i += 1) expect(reports[i]?.rssi ?? 0).toBeLessThanOrEqual(reports[i - 1]?.rssi ?? 0);
    expect(reports.every((r) => r.rssi >= -100)).toBe(true);
  });

  it('RSSI follows the profile over broker time and a new profile restarts it', () => {
    const h = new AirHarness(FAST);
    const { car, phone } = linkedPair(h);
    h.runFor(200);
    expect(h.events(phone, 'rssi').every((r) => r.rssi === -60)).toBe(true);
    const control = h.hello('control');
    const start = h.now;
    h.call(control, { op: 'set-profile', central: 'phone', profile: { rssi: 'approach:-95:-45:1000:0' } });
    h.runFor(1500);
    const after = h.events(car, 'rssi').filter((r) => r.at > start);
    expect(after[0]?.rssi).toBeLessThan(-90);
    expect(after.at(-1)?.rssi).toBe(-45);
    for (let i = 1; i < after.length; i += 1) expect(after[i]?.rssi ?? 0).toBeGreaterThanOrEqual(after[i - 1]?.rssi ?? 0);
  });

  it('changing the connection interval at run time changes event spacing', () => {
    const h = new AirHarness(FAST);
    const { car, phone, linkId } = linkedPair(h);
    const control = h.hello('control');
    h.call(control, { op: 'set-profile', peripheral: 'car', central: 'phone', profile: { connectionIntervalMs: 50, pdusPerEvent: 1 } });
    for (let i = 0; i < 3; i += 1) h.request(phone, { op: 'write', linkId, data: Uint8Array.from([i]), withResponse: false });
    h.runFor(500);
    const times = h.events(car, 'chunk').map((c) => c.at);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeCloseTo(50, 6);
    expect((times[2] ?? 0) - (times[1] ?? 0)).toBeCloseTo(50, 6);
  });
});

describe('requests and control', () => {
  it('requires hello first, once, with a unique name per role', () => {
    const h = new AirHarness(FAST);
    const c = h.client();
    const early = h.request(c, { op: 'time' });
    expect(h.reply(c, early)).toMatchObject({ ev: 'error', code: 'CK_TRANSPORT_RADIO_PROTOCOL' });
    h.call(c, { op: 'hello', v: 1, role: 'peripheral', name: 'car' });
    expect(() => h.call(c, { op: 'hello', v: 1, role: 'peripheral', name: 'car' })).toThrow(/already sent/);
    const twin = h.client();
    expect(() => h.call(twin, { op: 'hello', v: 1, role: 'peripheral', name: 'car' })).toThrow(/already on the air/);
    h.call(twin, { op: 'hello', v: 1, role: 'central', name: 'car' });
    const old = h.client();
    expect(() => h.call(old, { op: 'hello', v: 2, role: 'control' })).toThrow(/version 2/);
    expect(() => h.call(c, { op: 'scan-start' })).toThrow(/only a central/);
    expect(() => h.call(twin, { op: 'notify', linkId: 'x-1', data: Uint8Array.from([1]) })).toThrow(/only a peripheral/);
  });

  it('invalid profile values are rejected with the field named', () => {
    const h = new AirHarness(FAST);
    const control = h.hello('control');
    expect(() => h.call(control, { op: 'set-profile', profile: { rssi: 'approach:-40:-90:100' } })).toThrow(/CK_CONFIG_INVALID.*approach/);
  });

  it('time and status report the broker view', () => {
    const h = new AirHarness(FAST);
    linkedPair(h);
    const control = h.hello('control');
    h.runFor(100);
    expect(h.call(control, { op: 'time' }).now).toBe(h.now);
    expect(h.call(control, { op: 'status' }).status).toMatchObject({
      peripherals: [{ name: 'car', advertising: true, links: 1 }],
      centrals: [{ name: 'phone', scanning: false, links: 1 }],
      links: [{ peripheral: 'car', central: 'phone', mtu: 247, subscribed: true, silent: false }],
    });
  });

  it('is reproducible: same seed and inputs give the same messages; another seed differs under loss', () => {
    const run = (seed: number): string => {
      const h = new AirHarness({ ...FAST, defaults: { ...FAST.defaults, lossRate: 0.4, jitterMs: 2, supervisionTimeoutMs: 32_000, rssi: 'cabin' } }, seed);
      const { car, phone, linkId } = linkedPair(h);
      for (let i = 0; i < 30; i += 1) {
        h.request(phone, { op: 'write', linkId, data: Uint8Array.from([i]), withResponse: false });
        h.request(car, { op: 'notify', linkId, data: Uint8Array.from([i]) });
        h.runFor(3);
      }
      h.runFor(3000);
      return JSON.stringify([h.messages(car), h.messages(phone)], (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
    };
    expect(run(5)).toBe(run(5));
    expect(run(5)).not.toBe(run(6));
  });
});
