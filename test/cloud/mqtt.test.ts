/**
 * MQTT change notices (`--mqtt`), against the Mosquitto broker on
 * 127.0.0.1:1883: after each change of a vehicle's key list or commands a
 * subscriber to carkey/v1/vehicles/{id} receives `{"changed":"key-list"}` or
 * `{"changed":"commands"}` (QoS 1) and nothing else — no document, no key;
 * and a broker that cannot be reached never blocks or fails an HTTP answer.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { sealTo } from '../../src/core/sealed-box.js';
import { CloudMetrics } from '../../src/cloud/metrics.js';
import { encodeB64 } from '../../src/cloud/encoding.js';
import { connectMqttNotices, noticeTopic, type NoticePublisher } from '../../src/cloud/notices.js';
import { createCloudLogger } from '../../src/cloud/logger.js';
import { crypto, listFor, MQTT_URL, newCar, newParty, random, sqliteBackend, startHarness, until, type Backend, type Harness } from './helpers.js';

const logger = createCloudLogger({ level: 'silent' });

describe('MQTT notices on a real broker', () => {
  let backend: Backend;
  let notices: NoticePublisher;
  let h: Harness;
  let subscriber: mqtt.MqttClient;
  const received: { topic: string; payload: string; qos: number; retain: boolean }[] = [];

  beforeAll(async () => {
    backend = sqliteBackend();
    notices = await connectMqttNotices({ url: MQTT_URL, logger });
    h = await startHarness(await backend.open(), 'inject', { notices });
    subscriber = await mqtt.connectAsync(MQTT_URL, { clientId: `carkey-test-${toHex(random(6))}` });
    subscriber.on('message', (topic, payload, packet) => received.push({ topic, payload: payload.toString('utf8'), qos: packet.qos, retain: packet.retain }));
  });
  afterAll(async () => {
    await subscriber.endAsync();
    await h.close();
    await notices.close();
    await backend.cleanup();
  });

  it('a subscriber gets one tiny notice per change, for its vehicle only', async () => {
    const car = newCar();
    const other = newCar('other');
    await subscriber.subscribeAsync(noticeTopic(car.id), { qos: 1 });
    const mine = (): typeof received => received.filter((m) => m.topic === noticeTopic(car.id));

    expect((await h.client.register(car)).status).toBe(200);
    expect((await h.client.register(other)).status).toBe(200);
    await until(() => mine().length === 1, 'the registration notice');
    expect((await h.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(listFor(car, car.owner, { version: 2 }).bytes) })).status).toBe(200);
    await until(() => mine().length === 2, 'the key-list notice');
    const box = encodeB64(sealTo(crypto, random, car.car.publicKey, random(40)));
    expect((await h.client.call(newParty('phone'), 'POST', `/v1/vehicles/${car.id}/commands`, { commandId: toHex(random(16)), expiresAt: Date.now() + 60_000, box })).status).toBe(202);
    await until(() => mine().length === 3, 'the commands notice');
    // a refused change publishes nothing
    expect((await h.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(car.keyList.bytes) })).status).toBe(409);

    expect(mine().map((m) => JSON.parse(m.payload) as unknown)).toEqual([{ changed: 'key-list' }, { changed: 'key-list' }, { changed: 'commands' }]);
    for (const message of mine()) {
      expect(message.qos).toBe(1);
      expect(message.retain).toBe(false);
      expect(message.payload.length).toBeLessThan(30);
    }
    expect(received.some((m) => m.topic === noticeTopic(other.id))).toBe(false);
  });
});

describe('MQTT broker unreachable', () => {
  it('notices are dropped and counted; the HTTP answers are unaffected', async () => {
    const backend = sqliteBackend();
    const metrics = new CloudMetrics({ defaultMetrics: false });
    const notices = await connectMqttNotices({ url: 'mqtt://127.0.0.1:1', logger, metrics, connectWaitMs: 200 });
    const h = await startHarness(await backend.open(), 'inject', { notices, metrics });
    try {
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      expect((await h.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(listFor(car, car.owner, { version: 2 }).bytes) })).status).toBe(200);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/carkey_cloud_mqtt_notices_total\{outcome="dropped"\} 2/);
    } finally {
      await h.close();
      await notices.close();
      await backend.cleanup();
    }
  });
});
