/**
 * Long-poll (?wait) on SQLite and PostgreSQL over real sockets: a held
 * request answers the moment the change it waits for is stored — within one
 * instance, and across two app instances sharing one PostgreSQL database
 * (LISTEN/NOTIFY), also after the LISTEN connection was killed and came
 * back; held requests are released by shutdown and by the client going
 * away; a caller who loses its role while waiting is refused, not served.
 *
 * No timing is asserted: every wait below is 30–60 s, far longer than the
 * test's timeout, so an answer at all proves the wake-up (a missed wake-up
 * fails the test by timeout).
 */
import { Agent, get } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { encodeB64 } from '../../src/cloud/encoding.js';
import { PgCloudStore } from '../../src/cloud/pg-store.js';
import { backends, crypto, listFor, newCar, newParty, pgBackend, PG_ENABLED, random, startHarness, until, type Backend, type Harness, type TestStore } from './helpers.js';
import { sealTo } from '../../src/core/sealed-box.js';

const box = (): string => encodeB64(sealTo(crypto, random, newParty('x').publicKey, random(32)));

for (const makeBackend of backends()) {
  describe(`${makeBackend().name}: one instance`, () => {
    let backend: Backend;
    let store: TestStore;
    let h: Harness;

    beforeAll(async () => {
      backend = makeBackend();
      store = await backend.open();
      h = await startHarness(store, 'socket');
    });
    afterAll(async () => {
      await h.close();
      await backend.cleanup();
    });

    it('a key-list wait answers with the new list as soon as an owner publishes it', async () => {
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      const before = store.hub.subscribers;
      const waiting = h.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
      await until(() => store.hub.subscribers > before, 'the wait to be parked');
      const v2 = listFor(car, car.owner, { version: 2 });
      expect((await h.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(v2.bytes) })).status).toBe(200);
      const answer = await waiting;
      expect(answer.status).toBe(200);
      expect(answer.headers.etag).toBe('"0.2"');
      expect(answer.json()).toMatchObject({ keyList: encodeB64(v2.bytes), version: 2 });
    });

    it('a newer car statement wakes key-list waiters too', async () => {
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      const before = store.hub.subscribers;
      const waiting = h.client.call(car.owner, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
      await until(() => store.hub.subscribers > before, 'the wait to be parked');
      expect((await h.client.register(car, listFor(car, car.owner, { version: 4 }).bytes)).status).toBe(200);
      expect((await waiting).headers.etag).toBe('"0.4"');
    });

    it('a commands wait answers when a command is posted; a result wait when the car answers', async () => {
      const car = newCar();
      const phone = newParty('phone');
      expect((await h.client.register(car)).status).toBe(200);
      let before = store.hub.subscribers;
      const waiting = h.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/commands?wait=60`);
      await until(() => store.hub.subscribers > before, 'the commands wait to be parked');
      const commandId = toHex(random(16));
      const command = box();
      expect((await h.client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId, expiresAt: Date.now() + 60_000, box: command })).status).toBe(202);
      expect((await waiting).json()).toEqual({ commands: [{ commandId, box: command, caller: phone.hex, expiresAt: expect.any(Number) as number }] });

      before = store.hub.subscribers;
      const result = h.client.call(phone, 'GET', `/v1/vehicles/${car.id}/commands/${commandId}/result?wait=60`);
      await until(() => store.hub.subscribers > before, 'the result wait to be parked');
      const sealed = box();
      expect((await h.client.call(car.car, 'PUT', `/v1/vehicles/${car.id}/commands/${commandId}/result`, { box: sealed })).status).toBe(204);
      const answered = await result;
      expect(answered.status).toBe(200);
      expect(answered.json()).toEqual({ box: sealed });
    });

    it('an owner revoked while waiting gets 403, not the new list', async () => {
      const car = newCar();
      const second = newParty('second');
      expect((await h.client.register(car, listFor(car, car.owner, { version: 1, owners: [car.owner.publicKey, second.publicKey] }).bytes)).status).toBe(200);
      const before = store.hub.subscribers;
      const waiting = h.client.call(second, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
      await until(() => store.hub.subscribers > before, 'the wait to be parked');
      const revoking = listFor(car, car.owner, { version: 2, revokedKeys: [second.publicKey] });
      expect((await h.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(revoking.bytes) })).status).toBe(200);
      expect((await waiting).status).toBe(403);
    });

    it('a client that goes away ends its wait (the subscription is released)', async () => {
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      const before = store.hub.subscribers;
      const controller = new AbortController();
      const { signedRequest } = await import('./helpers.js');
      const request = signedRequest(car.car, 'GET', `/v1/vehicles/${car.id}/commands?wait=60`);
      const pending = fetch(`${h.url ?? ''}${request.url}`, { headers: request.headers, signal: controller.signal }).catch((error: unknown) => error);
      await until(() => store.hub.subscribers > before, 'the wait to be parked');
      controller.abort();
      await pending;
      await until(() => store.hub.subscribers === before, 'the subscription to be released');
    });

    it('many long-polls over one keep-alive connection do not pile up listeners on it', async () => {
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      const commandId = toHex(random(16));
      expect((await h.client.call(newParty('phone'), 'POST', `/v1/vehicles/${car.id}/commands`, { commandId, expiresAt: Date.now() + 60_000, box: box() })).status).toBe(202);
      const sockets: Socket[] = [];
      const onConnection = (socket: Socket): void => {
        sockets.push(socket);
      };
      h.app.server.on('connection', onConnection);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const { signedRequest } = await import('./helpers.js');
      try {
        for (let i = 0; i < 15; i++) {
          const request = signedRequest(car.car, 'GET', `/v1/vehicles/${car.id}/commands?wait=60`);
          const status = await new Promise<number>((resolve, reject) => {
            get(`${h.url ?? ''}${request.url}`, { agent, headers: request.headers }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            }).on('error', reject);
          });
          expect(status).toBe(200);
        }
        expect(sockets).toHaveLength(1);
        expect(sockets[0]?.listenerCount('close')).toBeLessThan(5);
      } finally {
        agent.destroy();
        h.app.server.off('connection', onConnection);
      }
    });

    it('shutdown releases a held request at once: it answers 304 and close() returns', async () => {
      const own = await startHarness(store, 'socket');
      const car = newCar();
      expect((await own.client.register(car)).status).toBe(200);
      const before = store.hub.subscribers;
      const waiting = own.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
      await until(() => store.hub.subscribers > before, 'the wait to be parked');
      await own.close();
      expect((await waiting).status).toBe(304);
    });
  });
}

describe.runIf(PG_ENABLED)('postgres: two instances on one database', () => {
  let backend: Backend;
  let storeA: TestStore;
  let storeB: TestStore;
  let a: Harness;
  let b: Harness;

  beforeAll(async () => {
    backend = pgBackend();
    storeA = await backend.open();
    storeB = await backend.open();
    a = await startHarness(storeA, 'socket');
    b = await startHarness(storeB, 'socket');
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await backend.cleanup();
  });

  it('a wait on instance A wakes when instance B stores the change (key list, command, result)', async () => {
    const car = newCar();
    const phone = newParty('phone');
    expect((await b.client.register(car)).status).toBe(200);
    let before = storeA.hub.subscribers;
    const keyList = a.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
    const commands = a.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/commands?wait=60`);
    await until(() => storeA.hub.subscribers >= before + 2, 'both waits to be parked on A');
    const v2 = listFor(car, car.owner, { version: 2 });
    expect((await b.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(v2.bytes) })).status).toBe(200);
    expect((await keyList).json()).toMatchObject({ keyList: encodeB64(v2.bytes), version: 2 });
    const commandId = toHex(random(16));
    expect((await b.client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId, expiresAt: Date.now() + 60_000, box: box() })).status).toBe(202);
    expect(((await commands).json() as { commands: unknown[] }).commands).toHaveLength(1);

    before = storeB.hub.subscribers;
    const result = b.client.call(phone, 'GET', `/v1/vehicles/${car.id}/commands/${commandId}/result?wait=60`);
    await until(() => storeB.hub.subscribers > before, 'the result wait to be parked on B');
    const sealed = box();
    expect((await a.client.call(car.car, 'PUT', `/v1/vehicles/${car.id}/commands/${commandId}/result`, { box: sealed })).status).toBe(204);
    expect((await result).json()).toEqual({ box: sealed });
  });

  it('after the LISTEN connection is killed it comes back, and cross-instance wake-ups work again', async () => {
    if (!(storeA instanceof PgCloudStore)) throw new Error('expected the PostgreSQL store');
    const pid = storeA.listenerPid;
    expect(pid).toBeTypeOf('number');
    await backend.exec('SELECT pg_terminate_backend(?)', [pid ?? 0]);
    const pgStore = storeA;
    await until(() => pgStore.listening && pgStore.listenerPid !== pid, 'the LISTEN connection to come back');
    const car = newCar();
    expect((await b.client.register(car)).status).toBe(200);
    const before = storeA.hub.subscribers;
    const waiting = a.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
    await until(() => storeA.hub.subscribers > before, 'the wait to be parked on A');
    expect((await b.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(listFor(car, car.owner, { version: 2 }).bytes) })).status).toBe(200);
    expect((await waiting).headers.etag).toBe('"0.2"');
  });

  it('two instances racing to publish the same next version: exactly one wins', async () => {
    const car = newCar();
    expect((await a.client.register(car)).status).toBe(200);
    const lists = [listFor(car, car.owner, { version: 2, revokedSerials: [random(8)] }), listFor(car, car.owner, { version: 2, revokedSerials: [random(8)] })];
    const answers = await Promise.all(lists.map((list, i) => (i === 0 ? a : b).client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(list.bytes) })));
    expect(answers.map((x) => x.status).sort()).toEqual([200, 409]);
    const winner = answers[0]?.status === 200 ? lists[0] : lists[1];
    const stored = (await a.client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`)).json() as { keyList: string };
    expect(stored.keyList).toBe(encodeB64(winner?.bytes ?? new Uint8Array(0)));
  });
});
