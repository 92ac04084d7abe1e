/**
 * Robustness (DESIGN invariant 4): random JSON bodies, random documents and
 * random query strings, signed (so they reach validation and the handlers)
 * and unsigned, at every route, on SQLite and PostgreSQL. Property: the
 * answer is never a 5xx, every refusal is a catalog error body, and the
 * process keeps answering (/health afterwards).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { sealTo } from '../../src/core/sealed-box.js';
import { encodeB64 } from '../../src/cloud/encoding.js';
import { propertyRuns } from '../helpers/core-harness.js';
import { backends, crypto, newCar, newParty, random, startHarness, type Backend, type Car, type Harness, type Party } from './helpers.js';

interface Route {
  readonly method: string;
  readonly url: (ids: Ids) => string;
  readonly keys: readonly string[];
}

interface Ids {
  readonly car: Car;
  readonly commandId: string;
  readonly itemId: string;
  readonly friend: Party;
}

const ROUTES: readonly Route[] = [
  { method: 'PUT', url: (i) => `/v1/vehicles/${i.car.id}`, keys: ['statement'] },
  { method: 'GET', url: (i) => `/v1/vehicles/${i.car.id}/key-list`, keys: [] },
  { method: 'POST', url: (i) => `/v1/vehicles/${i.car.id}/key-list`, keys: ['keyList'] },
  { method: 'POST', url: (i) => `/v1/mailbox/${i.friend.hex}`, keys: ['vehicleId', 'box', 'expiresAt'] },
  { method: 'GET', url: () => '/v1/mailbox', keys: [] },
  { method: 'DELETE', url: (i) => `/v1/mailbox/${i.itemId}`, keys: [] },
  { method: 'POST', url: (i) => `/v1/vehicles/${i.car.id}/audit`, keys: ['entries', 'checkpoints', 'last'] },
  { method: 'GET', url: (i) => `/v1/vehicles/${i.car.id}/audit`, keys: [] },
  { method: 'POST', url: (i) => `/v1/vehicles/${i.car.id}/commands`, keys: ['commandId', 'expiresAt', 'box'] },
  { method: 'GET', url: (i) => `/v1/vehicles/${i.car.id}/commands`, keys: [] },
  { method: 'PUT', url: (i) => `/v1/vehicles/${i.car.id}/commands/${i.commandId}/result`, keys: ['box'] },
  { method: 'GET', url: (i) => `/v1/vehicles/${i.car.id}/commands/${i.commandId}/result`, keys: [] },
  { method: 'GET', url: () => '/v1/time', keys: [] },
];

const b64 = fc.uint8Array({ maxLength: 300 }).map(encodeB64);
const hex = fc.uint8Array({ minLength: 0, maxLength: 40 }).map(toHex);
const value = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.string({ maxLength: 80 }), b64, hex, fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(-1));
const entry = fc.dictionary(fc.constantFrom('seq', 'time', 'kind', 'fields', 'hash', 'x'), value, { maxKeys: 6 });

function bodyFor(route: Route): fc.Arbitrary<unknown> {
  const keys = [...route.keys, 'extra'];
  const structured = fc.dictionary(fc.constantFrom(...keys), fc.oneof(value, fc.array(entry, { maxLength: 3 })), { maxKeys: keys.length });
  const exact = fc.record(Object.fromEntries(route.keys.map((key) => [key, fc.oneof(value, fc.array(entry, { maxLength: 3 }))])), { requiredKeys: [] });
  return fc.oneof(fc.jsonValue({ maxDepth: 4 }), structured, exact, fc.constant(undefined));
}

const query = fc.option(fc.dictionary(fc.constantFrom('wait', 'from', 'limit', 'x'), fc.oneof(fc.integer({ min: -5, max: 100 }).map(String), fc.string({ maxLength: 10 })), { maxKeys: 3 }), { nil: undefined });

for (const makeBackend of backends()) {
  describe(`${makeBackend().name}: random input never gets a 5xx`, () => {
    let backend: Backend;
    let h: Harness;
    let ids: Ids;

    beforeAll(async () => {
      backend = makeBackend();
      h = await startHarness(await backend.open(), 'inject', { docs: false });
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200);
      const friend = newParty('friend');
      const box = encodeB64(sealTo(crypto, random, friend.publicKey, random(20)));
      const commandId = toHex(random(16));
      expect((await h.client.call(friend, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId, expiresAt: Date.now() + 600_000, box })).status).toBe(202);
      const posted = await h.client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { vehicleId: car.id, box, expiresAt: Date.now() + 600_000 });
      ids = { car, friend, commandId, itemId: (posted.json() as { id: string }).id };
    });
    afterAll(async () => {
      await h.close();
      await backend.cleanup();
    });

    for (const route of ROUTES) {
      it(`${route.method} ${route.url({ car: { id: '{id}' } as Car, commandId: '{cid}', itemId: '{item}', friend: { hex: '{key}' } as Party })}`, async () => {
        const signers = [ids.car.car, ids.car.owner, ids.friend];
        await fc.assert(
          fc.asyncProperty(bodyFor(route), query, fc.nat({ max: signers.length }), async (body, params, who) => {
            const search = params === undefined ? '' : `?${Object.entries(params).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`;
            const url = `${route.url(ids)}${search}`;
            const signer = signers[who];
            // wait=… would hold the request: the wait itself is tested elsewhere, here only its validation matters
            const held = /(^|&|\?)wait=([1-9]|[1-5]\d|60)(&|$)/.test(search);
            if (held) return;
            const answer = signer === undefined ? await h.client.raw(route.method, url, { 'content-type': 'application/json' }, body === undefined ? undefined : JSON.stringify(body)) : await h.client.call(signer, route.method, url, body);
            expect(answer.status, `${route.method} ${url} ${answer.text}`).toBeLessThan(500);
            if (answer.status >= 400) expect(answer.json()).toMatchObject({ error: { code: expect.stringMatching(/^CK_/) as string, message: expect.any(String) as string, details: expect.any(Object) as object } });
          }),
          propertyRuns(backend.name === 'sqlite' ? 60 : 25),
        );
      });
    }

    it('random bytes as documents (key lists, statements, boxes) are refused cleanly', async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), fc.constantFrom('statement', 'keyList', 'box'), async (bytes, kind) => {
          const doc = encodeB64(bytes);
          const answer =
            kind === 'statement'
              ? await h.client.call(ids.car.car, 'PUT', `/v1/vehicles/${ids.car.id}`, { statement: doc })
              : kind === 'keyList'
                ? await h.client.call(ids.car.owner, 'POST', `/v1/vehicles/${ids.car.id}/key-list`, { keyList: doc })
                : await h.client.call(ids.car.owner, 'POST', `/v1/mailbox/${ids.friend.hex}`, { vehicleId: ids.car.id, box: doc, expiresAt: Date.now() + 60_000 });
          expect(answer.status, answer.text).toBeLessThan(500);
        }),
        propertyRuns(backend.name === 'sqlite' ? 100 : 40),
      );
      expect((await h.client.raw('GET', '/health')).status).toBe(200);
      // the real list is still the one in force
      expect((await h.client.call(ids.car.car, 'GET', `/v1/vehicles/${ids.car.id}/key-list`)).json()).toMatchObject({ keyList: encodeB64(ids.car.keyList.bytes) });
    });
  });
}
