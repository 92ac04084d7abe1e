/**
 * Rate limits and logs. Per key: only a request whose signature verified
 * counts against a key (a forger cannot spend someone else's budget), and
 * over the limit is 429 CK_CLOUD_RATE_LIMITED with Retry-After. Per IP:
 * every request from an address counts, /health and /metrics do not. Logs:
 * at debug level, across accepted and refused requests, no public key,
 * signature, nonce, box or document appears in them.
 */
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { sealTo } from '../../src/core/sealed-box.js';
import { encodeB64 } from '../../src/cloud/encoding.js';
import { createCloudLogger } from '../../src/cloud/logger.js';
import { codeOf, crypto, listFor, newCar, newParty, random, signedRequest, sqliteBackend, startHarness, type Backend } from './helpers.js';

const cleanups: Backend[] = [];
afterAll(async () => {
  for (const backend of cleanups) await backend.cleanup();
});

describe('rate limits', () => {
  it('per key: the request after the limit is 429 with Retry-After; other keys and forged requests are not counted', async () => {
    const backend = sqliteBackend();
    cleanups.push(backend);
    const h = await startHarness(await backend.open(), 'inject', { limits: { perKeyPerMinute: 4, perIpPerMinute: 0 } });
    try {
      const car = newCar();
      expect((await h.client.register(car)).status).toBe(200); // 1
      const url = `/v1/vehicles/${car.id}/key-list`;
      // forged requests under the car's key (signed by someone else) are refused before the limit counts them
      for (let i = 0; i < 10; i++) {
        const forged = signedRequest(newParty('forger'), 'GET', url);
        expect((await h.client.raw('GET', url, { ...forged.headers, 'x-carkey-key': car.car.hex })).status).toBe(401);
      }
      for (let i = 0; i < 3; i++) expect((await h.client.call(car.car, 'GET', url)).status).toBe(200); // 2..4
      const limited = await h.client.call(car.car, 'GET', url);
      expect({ status: limited.status, code: codeOf(limited) }).toEqual({ status: 429, code: 'CK_CLOUD_RATE_LIMITED' });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect((await h.client.call(car.owner, 'GET', url)).status).toBe(200);
    } finally {
      await h.close();
    }
  });

  it('per IP: every request counts, the operations endpoints do not', async () => {
    const backend = sqliteBackend();
    cleanups.push(backend);
    const h = await startHarness(await backend.open(), 'inject', { limits: { perKeyPerMinute: 0, perIpPerMinute: 5 } });
    try {
      for (let i = 0; i < 10; i++) expect((await h.client.raw('GET', '/health')).status).toBe(200);
      for (let i = 0; i < 5; i++) expect((await h.client.raw('GET', '/v1/time')).status).toBe(200);
      const limited = await h.client.raw('GET', '/v1/time');
      expect({ status: limited.status, code: codeOf(limited) }).toEqual({ status: 429, code: 'CK_CLOUD_RATE_LIMITED' });
      expect((await h.client.call(newParty('x'), 'GET', '/v1/mailbox')).status).toBe(429);
      expect((await h.client.raw('GET', '/metrics')).status).toBe(200);
      // another address has its own budget
      const other = await h.app.inject({ method: 'GET', url: '/v1/time', remoteAddress: '192.0.2.9' });
      expect(other.statusCode).toBe(200);
    } finally {
      await h.close();
    }
  });
});

describe('logs', () => {
  it('carry no keys, signatures, nonces, boxes or documents, even at debug level', async () => {
    const backend = sqliteBackend();
    cleanups.push(backend);
    let text = '';
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString('utf8');
        done();
      },
    });
    const logger = createCloudLogger({ level: 'debug', destination });
    const h = await startHarness(await backend.open(), 'socket', { logger });
    const secrets: string[] = [];
    try {
      const car = newCar();
      const friend = newParty('friend');
      secrets.push(car.car.hex, car.owner.hex, friend.hex, encodeB64(car.keyList.bytes));
      expect((await h.client.register(car)).status).toBe(200);
      const v2 = listFor(car, car.owner, { version: 2 });
      secrets.push(encodeB64(v2.bytes));
      const request = signedRequest(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(v2.bytes) });
      secrets.push(request.headers['x-carkey-signature'] ?? '', request.headers['x-carkey-nonce'] ?? '');
      expect((await h.client.transport.send(request)).status).toBe(200);
      expect((await h.client.transport.send(request)).status).toBe(401); // replayed: logged as refused
      const box = encodeB64(sealTo(crypto, random, friend.publicKey, random(64)));
      secrets.push(box);
      expect((await h.client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { vehicleId: car.id, box, expiresAt: Date.now() + 60_000 })).status).toBe(201);
      expect((await h.client.call(friend, 'GET', '/v1/mailbox')).status).toBe(200);
      expect((await h.client.call(newParty('stranger'), 'GET', `/v1/vehicles/${car.id}/key-list`)).status).toBe(403);
      expect((await h.client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, '{"keyList":')).status).toBe(400);
      expect((await h.client.call(car.car, 'PUT', `/v1/vehicles/${car.id}/commands/${toHex(random(16))}/result`, { box })).status).toBe(403);
    } finally {
      await h.close();
    }
    logger.flush();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const lines = text.split('\n').filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(8);
    expect(text).toContain('"status":403');
    for (const secret of secrets) expect(secret.length > 0 && text.includes(secret)).toBe(false);
    expect(text).not.toMatch(/[0-9a-f]{64}/);
  });
});
