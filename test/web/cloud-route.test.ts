/**
 * carkey-cloud's side of the web app: the built app at /app/ (routes/web-app.ts),
 * the CORS headers a copy of the app on another origin needs (preflight
 * without auth, the header on answers and on refusals), and the shared
 * cloud client signing through an async Signer (the web app's device-bound
 * key) instead of a seed, against the real service on a socket.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCloudApp } from '../../src/cloud/app.js';
import { SqliteCloudStore } from '../../src/cloud/sqlite-store.js';
import { CloudClient } from '../../src/cloud-client/client.js';
import { toHex } from '../../src/core/bytes.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { seedSigner, type Signer } from '../../src/core/signer.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import { crypto, newCar, newParty, random } from '../cloud/helpers.js';

let dir: string;
let store: SqliteCloudStore;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'carkey-web-cloud-'));
  const web = join(dir, 'web');
  mkdirSync(web);
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>carkey</title>');
  writeFileSync(join(web, 'app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret.txt'), 'not for the web');
  store = SqliteCloudStore.open({ dir: join(dir, 'db') });
  await store.migrate(Date.now());
  app = await buildCloudApp({ store, webRoot: web });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the web app at /app', () => {
  it('serves the built files under /app/ and redirects /app', async () => {
    const redirect = await fetch(`${base}/app`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/app/');
    const index = await fetch(`${base}/app/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(await index.text()).toContain('<title>carkey</title>');
    const script = await fetch(`${base}/app/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('javascript');
  });

  it('serves nothing outside the app directory', async () => {
    for (const path of ['/app/../secret.txt', '/app/%2e%2e/secret.txt', '/app/..%2fsecret.txt', '/secret.txt']) {
      const answer = await fetch(`${base}${path}`);
      expect({ path, status: answer.status }).toEqual({ path, status: 404 });
      expect(await answer.text()).not.toContain('not for the web');
    }
  });

  it('is absent without webRoot', async () => {
    const bare = await buildCloudApp({ store });
    try {
      expect((await bare.inject({ method: 'GET', url: '/app/' })).statusCode).toBe(404);
    } finally {
      await bare.close();
    }
  });
});

describe('CORS for an app hosted on another origin', () => {
  it('answers a preflight for a signed request without auth', async () => {
    const answer = await fetch(`${base}/v1/mailbox`, {
      method: 'OPTIONS',
      headers: { origin: 'http://127.0.0.1:9', 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-carkey-key, x-carkey-signature' },
    });
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe('*');
    const allowed = answer.headers.get('access-control-allow-headers') ?? '';
    for (const header of ['x-carkey-key', 'x-carkey-time', 'x-carkey-nonce', 'x-carkey-signature', 'content-type', 'if-none-match']) expect(allowed).toContain(header);
    expect(answer.headers.get('access-control-allow-methods')).toContain('DELETE');
  });

  it('puts the header on answers and on refusals, and exposes the ETag', async () => {
    const time = await fetch(`${base}/v1/time`, { headers: { origin: 'http://127.0.0.1:9' } });
    expect(time.headers.get('access-control-allow-origin')).toBe('*');
    expect(time.headers.get('access-control-expose-headers')).toContain('etag');
    const refused = await fetch(`${base}/v1/mailbox`, { headers: { origin: 'http://127.0.0.1:9' } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    expect(refused.headers.get('access-control-allow-credentials')).toBeNull();
  });
});

describe('the shared cloud client with an async Signer', () => {
  const clientWith = (signer: Signer): CloudClient => new CloudClient({ baseUrl: base, crypto, random, clock: () => Date.now(), signer, timeoutMs: 5000 });
  const asyncSigner = (seed: Uint8Array): Signer => {
    const inner = seedSigner(crypto, seed);
    return { publicKey: inner.publicKey, sign: async (message) => { await new Promise((resolve) => setTimeout(resolve, 1)); return inner.sign(message); } };
  };

  it('signs requests the service accepts: an owner posts to a mailbox, the recipient lists and acknowledges it', async () => {
    const car = newCar('signer');
    const registered = await clientWith(asyncSigner(car.car.seed)).registerVehicle(car.vehicleId, signVehicleStatement(crypto, car.car.seed, Date.now(), car.keyList.bytes));
    expect(registered.version).toBe(1);
    const friend = newParty('friend');
    const owner = clientWith(asyncSigner(car.owner.seed));
    const id = await owner.postMailbox(friend.publicKey, car.vehicleId, random(64), Date.now() + 60_000);
    const inbox = await clientWith(asyncSigner(friend.seed)).listMailbox();
    expect(inbox.map((item) => item.id)).toEqual([id]);
    expect(toHex(inbox[0]?.sender ?? new Uint8Array(0))).toBe(car.owner.hex);
    await clientWith(asyncSigner(friend.seed)).ackMailbox(id);
    expect(await clientWith(asyncSigner(friend.seed)).listMailbox()).toEqual([]);
  });

  it('refuses to send what a broken signer returned (CK_CRYPTO_BAD_SIGNATURE), before any request', async () => {
    const party = newParty('broken');
    let sent = 0;
    const client = new CloudClient({
      baseUrl: base,
      crypto,
      random,
      clock: () => Date.now(),
      signer: { publicKey: party.publicKey, sign: () => Promise.resolve(new Uint8Array(64)) },
      fetch: (input, init) => {
        sent++;
        return fetch(input, init);
      },
    });
    const error = await client.listMailbox().catch((thrown: unknown) => thrown);
    expect(isCarkeyError(error, 'CK_CRYPTO_BAD_SIGNATURE')).toBe(true);
    expect(sent).toBe(0);
  });
});
