/**
 * Car and phone in two different child processes (compiled helpers
 * test/helpers/radio-car.ts and radio-phone.ts) talking through the compiled
 * broker: full round trip with echo in order, and a car process that dies
 * mid-link shows up on the phone as link-lost after the supervision timeout.
 */
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import { JsonChild, compiled, startBroker, type BrokerProcess } from './broker-process.js';

const CONFIG = {
  radio: { advertisingIntervalMs: 20, rssiReportIntervalMs: 50 },
  defaults: { connectionIntervalMs: 7.5, jitterMs: 0.5, supervisionTimeoutMs: 300, rssi: 'cabin:-48:2' },
};

let broker: BrokerProcess;
const children: JsonChild[] = [];

function spawnHelper(name: 'radio-car' | 'radio-phone', args: readonly string[]): JsonChild {
  const child = new JsonChild(compiled(`test/helpers/${name}.js`), ['--socket', broker.socketPath, ...args]);
  children.push(child);
  return child;
}

beforeAll(async () => {
  broker = await startBroker({ config: CONFIG, seed: 3 });
});

afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.stop()));
});

afterAll(async () => {
  await broker.stop();
});

describe('car and phone in separate processes', () => {
  it('scan, connect, 30 full-size chunks echoed back in order, clean disconnect', async () => {
    const car = spawnHelper('radio-car', ['--name', 'proc-car', '--max-mtu', '185']);
    await car.waitForLine((l) => l.event === 'ready');
    const phone = spawnHelper('radio-phone', ['--name', 'proc-phone', '--target', 'proc-car', '--count', '30']);
    const result = await phone.waitForLine((l) => l.event === 'result' || l.event === 'error');
    expect(result).toEqual({ event: 'result', ok: true, count: 30, size: 182, mtu: 185 });
    const connected = phone.lines.find((l) => l.event === 'connected');
    expect(connected?.mtu).toBe(185);
    expect(Math.abs(Number(connected?.scanRssi) + 48)).toBeLessThanOrEqual(2);
    expect(await phone.exited).toEqual({ code: 0, signal: null });
    await car.waitForLine((l) => l.event === 'closed');
    const chunks = car.lines.filter((l) => l.event === 'chunk').map((l) => String(l.hex));
    expect(chunks).toHaveLength(30);
    chunks.forEach((hex, i) => expect(Buffer.from(hex, 'hex')[0]).toBe((i * 31) & 0xff));
    expect(car.lines.find((l) => l.event === 'subscribed')).toMatchObject({ mtu: 185 });
    expect(car.lines.find((l) => l.event === 'closed')).toMatchObject({ reason: 'remote' });
  });

  it('a car process that dies leaves the phone with link-lost', async () => {
    const car = spawnHelper('radio-car', ['--name', 'doomed-car']);
    await car.waitForLine((l) => l.event === 'ready');
    const phone = spawnHelper('radio-phone', ['--name', 'doomed-phone', '--target', 'doomed-car', '--count', '3', '--hold']);
    await phone.waitForLine((l) => l.event === 'result');
    car.child.kill('SIGKILL');
    await car.exited;
    expect(await phone.waitForLine((l) => l.event === 'closed')).toEqual({ event: 'closed', reason: 'link-lost' });
    expect(await phone.exited).toEqual({ code: 0, signal: null });
  });
});
