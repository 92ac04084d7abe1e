/**
 * The compiled radio broker with the sim transports in this process:
 * advertise → scan (service data, RSSI) → connect → MTU → subscribe → chunks
 * both ways in order → disconnects both ways → link drop → mute car times out
 * → RSSI profile over broker time → malformed input is answered and the
 * broker keeps serving → unreachable broker → clean shutdown.
 *
 * Assertions are on values and order, never on wall-clock durations; time
 * checks use the broker's own timestamps.
 */
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { meanRssi, parseRssiProfile } from '../../firmware-sim/radio/rssi.js';
import { isCarkeyError } from '../../src/core/errors.js';
import {
  RadioControl,
  createSimCentral,
  createSimPeripheral,
  dropLinks,
  radioStatus,
  radioTime,
  setLinkProfile,
  type SimCentralLink,
  type SimCentralTransport,
  type SimPeripheralLink,
  type SimPeripheralTransport,
} from '../../src/transport/sim.js';
import type { CloseReason, Discovery, PeripheralLink } from '../../src/transport/types.js';
import { eventually, outcome, startBroker, type BrokerProcess } from './broker-process.js';

const FAST_CONFIG = {
  radio: { advertisingIntervalMs: 20, rssiReportIntervalMs: 50 },
  defaults: { connectionIntervalMs: 7.5, jitterMs: 0.5, supervisionTimeoutMs: 200, rssi: 'fixed:-60' },
};
const SERVICE_DATA = Uint8Array.from([1, 0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8]);

let broker: BrokerProcess;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  broker = await startBroker({ config: FAST_CONFIG, seed: 11 });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

afterAll(async () => {
  await broker.stop();
});

function car(name: string, maxMtu?: number): SimPeripheralTransport {
  const transport = createSimPeripheral({ socketPath: broker.socketPath, name, maxMtu });
  cleanups.push(() => transport.stop());
  return transport;
}

function phone(name: string): SimCentralTransport {
  const transport = createSimCentral({ socketPath: broker.socketPath, name });
  cleanups.push(() => transport.close());
  return transport;
}

/** Start `carName`, scan for it from `phoneName`, connect; returns both link ends. */
async function connectPair(carName: string, phoneName: string, options: { maxMtu?: number; mtu?: number } = {}): Promise<{
  carLink: SimPeripheralLink;
  phoneLink: SimCentralLink;
  discovery: Discovery;
  peripheral: SimPeripheralTransport;
  central: SimCentralTransport;
}> {
  const peripheral = car(carName, options.maxMtu);
  const links: SimPeripheralLink[] = [];
  peripheral.onLink((link) => links.push(link));
  await peripheral.start({ localName: 'carkey', serviceData: SERVICE_DATA });
  const central = phone(phoneName);
  const scan = await central.scan({ timeoutMs: 10_000, accept: (d) => d.address === carName });
  if (scan.match === undefined) throw new Error(`${carName} not found`);
  const phoneLink = await central.connect(scan.match, { timeoutMs: 10_000, mtu: options.mtu });
  const carLink = await eventually(() => links[0], 10_000, 'car link');
  return { carLink, phoneLink, discovery: scan.match, peripheral, central };
}

describe('sim radio broker (compiled) with in-process transports', () => {
  it('prints a ready line with socket, seed and protocol version', () => {
    expect(broker.ready).toMatchObject({ ready: true, socket: broker.socketPath, seed: 11, protocol: 1 });
  });

  it('advertise → scan finds the car with service data and RSSI', async () => {
    const peripheral = car('adv-car');
    await peripheral.start({ localName: 'carkey', serviceData: SERVICE_DATA });
    const central = phone('adv-phone');
    const progress: Discovery[] = [];
    const scan = await central.scan({ timeoutMs: 10_000, accept: (d) => d.address === 'adv-car', onDiscovery: (d) => progress.push(d) });
    expect(scan.match).toMatchObject({ address: 'adv-car', localName: 'carkey', rssi: -60 });
    expect(Array.from(scan.match?.serviceData ?? [])).toEqual(Array.from(SERVICE_DATA));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(scan.seen.map((d) => d.address)).toContain('adv-car');

    // Rotating identifier: the new data shows up without restarting.
    const rotated = Uint8Array.from([1, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    await peripheral.setAdvertisement({ localName: 'carkey', serviceData: rotated });
    const again = await central.scan({ timeoutMs: 10_000, accept: (d) => d.address === 'adv-car' && d.serviceData?.[2] === 1 });
    expect(Array.from(again.match?.serviceData ?? [])).toEqual(Array.from(rotated));
  });

  it('scan that finds nothing resolves with match undefined (never rejects)', async () => {
    const central = phone('lonely-phone');
    const scan = await central.scan({ timeoutMs: 150, accept: (d) => d.address === 'no-such-car' });
    expect(scan.match).toBeUndefined();
  });

  it('connect → MTU exchange → subscribe → chunks both ways in order', async () => {
    const subscribed: string[] = [];
    const { carLink, phoneLink } = await connectPair('flow-car', 'flow-phone', { maxMtu: 185, mtu: 247 });
    carLink.onSubscribed(() => subscribed.push(carLink.id));
    await eventually(() => (subscribed.length > 0 ? true : undefined), 10_000, 'onSubscribed');
    expect(phoneLink.mtu()).toBe(185);
    expect(carLink.mtu()).toBe(185);
    expect(phoneLink.rssi()).toBe(-60);
    expect(carLink.rssi()).toBe(-60);

    const atCar: number[] = [];
    const atPhone: number[] = [];
    carLink.onChunk((chunk) => atCar.push(chunk[0] ?? -1));
    phoneLink.onChunk((chunk) => atPhone.push(chunk[0] ?? -1));
    const max = phoneLink.mtu() - 3;
    await Promise.all(Array.from({ length: 40 }, (_, i) => phoneLink.write(new Uint8Array(max).fill(i))));
    await Promise.all(Array.from({ length: 40 }, (_, i) => carLink.notify(new Uint8Array(max).fill(100 + i))));
    await phoneLink.writeWithoutResponse(Uint8Array.from([77]));
    await eventually(() => (atPhone.length === 40 && atCar.length === 41 ? true : undefined), 10_000, 'all chunks');
    expect(atCar).toEqual([...Array.from({ length: 40 }, (_, i) => i), 77]);
    expect(atPhone).toEqual(Array.from({ length: 40 }, (_, i) => 100 + i));

    const tooBigWrite = await outcome(phoneLink.write(new Uint8Array(max + 1)));
    const tooBigNotify = await outcome(carLink.notify(new Uint8Array(max + 1)));
    expect(!tooBigWrite.ok && isCarkeyError(tooBigWrite.error, 'CK_TRANSPORT_CHUNK_TOO_LARGE')).toBe(true);
    expect(!tooBigNotify.ok && isCarkeyError(tooBigNotify.error, 'CK_TRANSPORT_CHUNK_TOO_LARGE')).toBe(true);
  });

  it('default MTU is 23 when the phone asks for nothing more; connect requests above 517 are refused', async () => {
    const { phoneLink, carLink, discovery, central } = await connectPair('small-car', 'small-phone', { mtu: 23 });
    expect(phoneLink.mtu()).toBe(23);
    expect(carLink.mtu()).toBe(23);
    const refused = await outcome(central.connect(discovery, { timeoutMs: 1000, mtu: 600 }));
    expect(!refused.ok && isCarkeyError(refused.error, 'CK_FRAME_BAD_MTU')).toBe(true);
  });

  it('phone disconnects: phone sees local, car sees remote; car disconnects: the reverse', async () => {
    const first = await connectPair('dc-car', 'dc-phone');
    const carClosed = new Promise<CloseReason>((resolve) => first.carLink.onClose(resolve));
    const phoneClosed = new Promise<CloseReason>((resolve) => first.phoneLink.onClose(resolve));
    await first.phoneLink.disconnect();
    expect(await phoneClosed).toBe('local');
    expect(await carClosed).toBe('remote');
    const afterClose = await outcome(first.carLink.notify(Uint8Array.from([1])));
    expect(!afterClose.ok && isCarkeyError(afterClose.error, 'CK_TRANSPORT_DISCONNECTED')).toBe(true);

    const links: PeripheralLink[] = [];
    first.peripheral.onLink((link) => links.push(link));
    const second = await first.central.connect(first.discovery, { timeoutMs: 10_000 });
    const carLink = await eventually(() => links[0], 10_000, 'second link');
    const phoneClosed2 = new Promise<CloseReason>((resolve) => second.onClose(resolve));
    const carClosed2 = new Promise<CloseReason>((resolve) => carLink.onClose(resolve));
    await carLink.disconnect();
    await carLink.disconnect(); // idempotent
    expect(await carClosed2).toBe('local');
    expect(await phoneClosed2).toBe('remote');
    const write = await outcome(second.write(Uint8Array.from([1])));
    expect(!write.ok && isCarkeyError(write.error, 'CK_TRANSPORT_DISCONNECTED')).toBe(true);
  });

  it('a car-side disconnect right after notifications delivers them first (the REFUSE-then-drop pattern)', async () => {
    const { carLink, phoneLink } = await connectPair('flush-car', 'flush-phone');
    await new Promise<void>((resolve) => carLink.onSubscribed(resolve));
    const events: string[] = [];
    phoneLink.onChunk((chunk) => events.push(`chunk ${chunk[0] ?? -1}`));
    const phoneClosed = new Promise<CloseReason>((resolve) => phoneLink.onClose((reason) => {
      events.push(`closed ${reason}`);
      resolve(reason);
    }));
    // not awaited: the disconnect is asked for while the notifications are still in flight
    const sent = [1, 2, 3].map((n) => carLink.notify(Uint8Array.from([n])));
    const dropped = carLink.disconnect();
    const late = await outcome(carLink.notify(Uint8Array.from([4])));
    expect(!late.ok && isCarkeyError(late.error, 'CK_TRANSPORT_DISCONNECTED')).toBe(true);
    await Promise.all(sent);
    await dropped;
    expect(await phoneClosed).toBe('remote');
    expect(events).toEqual(['chunk 1', 'chunk 2', 'chunk 3', 'closed remote']);
  });

  it('link drop fault: both ends see link-lost and a pending write fails', async () => {
    const { carLink, phoneLink } = await connectPair('drop-car', 'drop-phone');
    const carClosed = new Promise<CloseReason>((resolve) => carLink.onClose(resolve));
    const phoneClosed = new Promise<CloseReason>((resolve) => phoneLink.onClose(resolve));
    expect(await dropLinks(broker.socketPath, { peripheral: 'drop-car' })).toBe(1);
    const write = await outcome(phoneLink.write(Uint8Array.from([1])));
    expect(await phoneClosed).toBe('link-lost');
    expect(await carClosed).toBe('link-lost');
    expect(!write.ok && isCarkeyError(write.error, 'CK_TRANSPORT_DISCONNECTED')).toBe(true);
  });

  it('a mute car advertises but connect times out with CK_TRANSPORT_TIMEOUT', async () => {
    await setLinkProfile(broker.socketPath, { peripheral: 'mute-car', mute: true });
    const peripheral = car('mute-car');
    let linked = false;
    peripheral.onLink(() => {
      linked = true;
    });
    await peripheral.start({ localName: 'carkey', serviceData: SERVICE_DATA });
    const central = phone('mute-phone');
    const scan = await central.scan({ timeoutMs: 10_000, accept: (d) => d.address === 'mute-car' });
    expect(scan.match).toBeDefined();
    if (scan.match === undefined) return;
    const attempt = await outcome(central.connect(scan.match, { timeoutMs: 300 }));
    expect(attempt.ok).toBe(false);
    if (!attempt.ok) {
      expect(isCarkeyError(attempt.error, 'CK_TRANSPORT_TIMEOUT')).toBe(true);
      expect(String(attempt.error)).toContain('mute-car');
    }
    expect(linked).toBe(false);
    // The attempt was cancelled at the broker: once the car answers again, a new connect works.
    await setLinkProfile(broker.socketPath, { peripheral: 'mute-car', mute: false });
    const link = await central.connect(scan.match, { timeoutMs: 10_000 });
    expect(link.mtu()).toBeGreaterThan(23);
  });

  it('RSSI follows the profile over broker time on the link and in scans', async () => {
    await setLinkProfile(broker.socketPath, { peripheral: 'rssi-car', central: 'rssi-phone', rssi: 'fixed:-70' });
    const { phoneLink, central, discovery } = await connectPair('rssi-car', 'rssi-phone');
    expect(discovery.rssi).toBe(-70);
    const samples: { rssi: number; at: number }[] = [];
    phoneLink.onRssi((sample) => samples.push(sample));
    await eventually(() => samples[0], 10_000, 'first RSSI report');
    const before = await radioTime(broker.socketPath);
    const spec = 'approach:-95:-45:600:0';
    await setLinkProfile(broker.socketPath, { peripheral: 'rssi-car', central: 'rssi-phone', rssi: spec });
    const after = await radioTime(broker.socketPath);
    await eventually(() => samples.find((s) => s.at > after + 650), 15_000, 'RSSI after the approach');
    const profile = parseRssiProfile(spec);
    if (!profile.ok) throw profile.error;
    // Reports before the change are the old fixed value.
    for (const s of samples.filter((s) => s.at < before)) expect(s.rssi).toBe(-70);
    // Reports after it lie on the approach curve (its origin is between `before` and `after`).
    const changed = samples.filter((s) => s.at > after);
    for (const s of changed) {
      expect(s.rssi).toBeGreaterThanOrEqual(Math.round(meanRssi(profile.value, s.at - after)));
      expect(s.rssi).toBeLessThanOrEqual(Math.round(meanRssi(profile.value, s.at - before)));
    }
    for (let i = 1; i < changed.length; i += 1) expect(changed[i]?.rssi ?? 0).toBeGreaterThanOrEqual(changed[i - 1]?.rssi ?? 0);
    expect(changed.some((s) => s.rssi < -80)).toBe(true);
    expect(changed.at(-1)?.rssi).toBe(-45);
    expect(phoneLink.rssi()).toBe(-45);
    const scan = await central.scan({ timeoutMs: 10_000, accept: (d) => d.address === 'rssi-car' });
    expect(scan.match?.rssi).toBe(-45);
  });

  it('malformed bytes on the socket get error replies and the broker keeps serving', async () => {
    const { carLink, phoneLink } = await connectPair('robust-car', 'robust-phone');
    const raw = net.createConnection(broker.socketPath);
    let received = '';
    raw.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    cleanups.push(() => {
      raw.destroy();
      return Promise.resolve();
    });
    raw.write(Buffer.from([0xff, 0xfe, 0x00, 0x0a]));
    raw.write('this is not json\n');
    raw.write(`${'x'.repeat(10_000)}\n`);
    raw.write('{"op":"time","id":3}\n');
    raw.write('{"op":"hello","id":4,"v":1,"role":"central"}\n');
    raw.write('{"op":"hello","id":5,"v":1,"role":"control"}\n');
    raw.write('{"op":"drop","id":6,"afterMs":-1}\n');
    raw.write('{"op":"time","id":7}\n');
    const replies = await eventually(() => {
      const lines = received.split('\n').filter((l) => l !== '');
      return lines.length >= 8 ? lines.map((l) => JSON.parse(l) as Record<string, unknown>) : undefined;
    }, 10_000, 'eight replies');
    expect(replies.slice(0, 3).map((r) => [r.ev, r.id, r.code])).toEqual([
      ['error', null, 'CK_TRANSPORT_RADIO_PROTOCOL'],
      ['error', null, 'CK_TRANSPORT_RADIO_PROTOCOL'],
      ['error', null, 'CK_TRANSPORT_RADIO_PROTOCOL'],
    ]);
    expect(replies.slice(3).map((r) => [r.ev, r.id])).toEqual([
      ['error', 3],
      ['error', 4],
      ['ok', 5],
      ['error', 6],
      ['ok', 7],
    ]);
    expect(String(replies[2]?.message)).toContain('exceeds');
    // Everyone else is still served.
    const got: number[] = [];
    carLink.onChunk((chunk) => got.push(chunk[0] ?? -1));
    await phoneLink.write(Uint8Array.from([42]));
    await eventually(() => (got.length === 1 ? true : undefined), 10_000, 'chunk after garbage');
    expect(got).toEqual([42]);
    const status = await radioStatus(broker.socketPath);
    expect(status.links.some((l) => l.peripheral === 'robust-car' && l.central === 'robust-phone')).toBe(true);
  });

  it('survives random bytes and random JSON on a raw connection', async () => {
    const raw = net.createConnection(broker.socketPath);
    raw.on('error', () => undefined);
    let received = '';
    raw.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
    cleanups.push(() => {
      raw.destroy();
      return Promise.resolve();
    });
    const samples = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc.jsonValue().map((v) => Buffer.from(`${JSON.stringify({ id: 9, op: 'set-profile', profile: v })}\n`)),
        fc.record({ id: fc.integer(), op: fc.constantFrom('hello', 'connect', 'write', 'notify', 'drop', 'mtu'), linkId: fc.string(), data: fc.string(), v: fc.integer() }).map((o) => Buffer.from(`${JSON.stringify(o)}\n`)),
      ),
      { numRuns: 300, seed: 4242 },
    );
    for (const bytes of samples) raw.write(bytes);
    raw.write('\n{"op":"hello","id":2000000000,"v":1,"role":"control"}\n{"op":"time","id":2000000001}\n');
    // The same connection is still served after all that...
    await eventually(() => (received.includes('{"ev":"ok","id":2000000001,"result":{"now":') ? true : undefined), 10_000, 'time reply');
    // ...and so is everyone else.
    expect(await radioTime(broker.socketPath)).toBeGreaterThan(0);
  });

  it('several transports in one process are independent radios', async () => {
    const a = await connectPair('multi-car-a', 'multi-phone-a');
    const b = await connectPair('multi-car-b', 'multi-phone-b');
    const gotA: number[] = [];
    const gotB: number[] = [];
    a.carLink.onChunk((c) => gotA.push(c[0] ?? -1));
    b.carLink.onChunk((c) => gotB.push(c[0] ?? -1));
    await Promise.all([a.phoneLink.write(Uint8Array.from([1])), b.phoneLink.write(Uint8Array.from([2]))]);
    await eventually(() => (gotA.length === 1 && gotB.length === 1 ? true : undefined));
    expect([gotA, gotB]).toEqual([[1], [2]]);
    expect(a.carLink.id).not.toBe(b.carLink.id);
  });

  it('control helpers validate settings and report status', async () => {
    const control = await RadioControl.open(broker.socketPath);
    cleanups.push(() => {
      control.close();
      return Promise.resolve();
    });
    const bad = await outcome(control.setLinkProfile({ central: 'x', connectionIntervalMs: 3 }));
    expect(!bad.ok && isCarkeyError(bad.error, 'CK_TRANSPORT_RADIO_PROTOCOL')).toBe(true);
    const badRssi = await outcome(control.setLinkProfile({ central: 'x', rssi: 'nearby' }));
    expect(!badRssi.ok && isCarkeyError(badRssi.error, 'CK_CONFIG_INVALID')).toBe(true);
    const profile = await control.setLinkProfile({ central: 'x', lossRate: 0.25 });
    expect(profile).toMatchObject({ lossRate: 0.25, connectionIntervalMs: 7.5 });
    expect(await control.time()).toBeGreaterThan(0);
  });
});

describe('sim transports without a broker', () => {
  it('an unreachable broker is CK_TRANSPORT_RADIO_UNAVAILABLE naming the socket', async () => {
    const socketPath = '/nonexistent-dir/carkey-radio.sock';
    const central = createSimCentral({ socketPath, name: 'p' });
    const scan = await outcome(central.scan({ timeoutMs: 100 }));
    expect(!scan.ok && isCarkeyError(scan.error, 'CK_TRANSPORT_RADIO_UNAVAILABLE')).toBe(true);
    expect(!scan.ok && String(scan.error)).toContain(socketPath);
    const peripheral = createSimPeripheral({ socketPath, name: 'c' });
    const start = await outcome(peripheral.start({ localName: 'carkey', serviceData: SERVICE_DATA }));
    expect(!start.ok && isCarkeyError(start.error, 'CK_TRANSPORT_RADIO_UNAVAILABLE')).toBe(true);
    const notStarted = await outcome(peripheral.setAdvertisement({ localName: 'carkey', serviceData: SERVICE_DATA }));
    expect(!notStarted.ok && isCarkeyError(notStarted.error, 'CK_TRANSPORT_NOT_STARTED')).toBe(true);
    await central.close();
  });
});

describe('broker process lifecycle', () => {
  it('SIGTERM closes clients (links end with error), removes the socket and exits 0', async () => {
    const own = await startBroker({ config: FAST_CONFIG });
    try {
      const peripheral = createSimPeripheral({ socketPath: own.socketPath, name: 'life-car' });
      await peripheral.start({ localName: 'carkey', serviceData: SERVICE_DATA });
      const central = createSimCentral({ socketPath: own.socketPath, name: 'life-phone' });
      const scan = await central.scan({ timeoutMs: 10_000, accept: () => true });
      if (scan.match === undefined) throw new Error('not found');
      const link = await central.connect(scan.match, { timeoutMs: 10_000 });
      const closed = new Promise<CloseReason>((resolve) => link.onClose(resolve));
      own.process.child.kill('SIGTERM');
      expect(await own.process.exited).toEqual({ code: 0, signal: null });
      expect(await closed).toBe('error');
      const { existsSync } = await import('node:fs');
      expect(existsSync(own.socketPath)).toBe(false);
      await central.close();
      await peripheral.stop();
    } finally {
      await own.stop();
    }
  });

  it('replaces the stale socket of a broker that was killed', async () => {
    const first = await startBroker({ config: FAST_CONFIG });
    first.process.child.kill('SIGKILL');
    await first.process.exited;
    const { existsSync, rmSync } = await import('node:fs');
    expect(existsSync(first.socketPath)).toBe(true);
    const second = await startBroker({ dir: first.dir });
    try {
      expect(await radioTime(second.socketPath)).toBeGreaterThanOrEqual(0);
    } finally {
      await second.stop();
      rmSync(first.dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad config file (exit 2) and a socket another broker is using', async () => {
    await expect(startBroker({ config: { defaults: { lossRate: 2 } } })).rejects.toThrow(/lossRate/);
    const second = outcome(startBroker({ dir: broker.dir }));
    const result = await second;
    expect(result.ok).toBe(false);
    expect(String(!result.ok && result.error)).toContain('already listening');
    // The first broker is unaffected.
    expect(await radioTime(broker.socketPath)).toBeGreaterThan(0);
  });
});
