/**
 * docs/cloud.md stays true: its worked request-signature example verifies
 * with core and its signed bytes are the ones core builds; every route it
 * names exists in the app (and in the OpenAPI document at /docs/json) with
 * that method; every error status/code pair in its table is one the app uses.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { fromHex, toHex } from '../../src/core/bytes.js';
import { requestSigningBytes, verifyRequestSignature } from '../../src/core/cloud-auth.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { buildCloudApp } from '../../src/cloud/app.js';
import { statusOf } from '../../src/cloud/http-errors.js';
import type { ErrorCode } from '../../src/core/errors.js';
import { crypto, sqliteBackend, type Backend } from './helpers.js';

const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'cloud.md'), 'utf8');

function match(pattern: RegExp): string {
  const found = pattern.exec(doc);
  if (found?.[1] === undefined) throw new Error(`docs/cloud.md: ${String(pattern)} not found`);
  return found[1];
}

describe('docs/cloud.md', () => {
  let backend: Backend;
  let app: FastifyInstance;
  beforeAll(async () => {
    backend = sqliteBackend();
    app = await buildCloudApp({ store: await backend.open(), faults: true });
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await backend.cleanup();
  });

  it('the worked signature example is what core signs and verifies', () => {
    const seed = fromHex(match(/^ {4}seed +([0-9a-f]{64})$/m)) ?? new Uint8Array(0);
    const requestLine = /^ {4}request +(GET) (\/[^?\s]+)\?(\S+)/m.exec(doc);
    const time = Number(match(/^ {4}time +(\d+)/m));
    const nonce = fromHex(match(/nonce ([0-9a-f]{32})$/m)) ?? new Uint8Array(0);
    expect(requestLine).not.toBeNull();
    const request = { method: requestLine?.[1] ?? '', path: requestLine?.[2] ?? '', query: requestLine?.[3] ?? '', body: new Uint8Array(0) };
    const headers = {
      'x-carkey-key': match(/^ {4}x-carkey-key: ([0-9a-f]{64})$/m),
      'x-carkey-time': match(/^ {4}x-carkey-time: (\d+)$/m),
      'x-carkey-nonce': match(/^ {4}x-carkey-nonce: ([0-9a-f]{32})$/m),
      'x-carkey-signature': match(/^ {4}x-carkey-signature: ([0-9a-f]{128})$/m),
    };
    expect(headers['x-carkey-key']).toBe(toHex(crypto.publicKeyFromSeed(seed)));
    expect(request.path).toBe(`/v1/vehicles/${toHex(vehicleIdOf(crypto, crypto.publicKeyFromSeed(seed)))}/key-list`);
    expect(verifyRequestSignature(crypto, headers, request, time).ok).toBe(true);
    // the signed-bytes listing, hex only, in order
    const listing = doc.slice(doc.indexOf('Signed bytes ('), doc.indexOf('Headers sent:'));
    const hex = [...listing.matchAll(/^ {4}((?:[0-9a-f]{2})+)(?: [0-9a-f]+)?/gm)].map((m) => m[0].trim().replace(/ /g, '')).join('');
    expect(hex).toBe(toHex(requestSigningBytes(crypto, request, time, nonce)));
    expect(Number(match(/Signed bytes \((\d+)\)/))).toBe(hex.length / 2);
  });

  it('every route it names exists with that method, and is in the OpenAPI document', async () => {
    const routes = new Set([...doc.matchAll(/`(GET|POST|PUT|DELETE) (\/[^`?\s]*)/g)].map((m) => `${m[1] ?? ''} ${m[2] ?? ''}`));
    expect(routes.size).toBeGreaterThanOrEqual(15);
    const openapi = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, Record<string, unknown>> }>();
    for (const route of routes) {
      const [method = '', path = ''] = route.split(' ');
      const url = path.replace('{id}', ':vehicleId').replace(/\{(\w+)\}/g, ':$1');
      expect({ route, exists: app.hasRoute({ method: method, url }) }).toEqual({ route, exists: true });
      if (path.startsWith('/v1/')) {
        const openapiPath = path.replace('{id}', '{vehicleId}');
        expect({ route, documented: openapi.paths[openapiPath]?.[method.toLowerCase()] !== undefined }).toEqual({ route, documented: true });
      }
    }
  });

  it('every status and code pair of the error table is the one the app gives that code', () => {
    const table = doc.slice(doc.indexOf('| status | code | when |'), doc.indexOf('A client\'s mistake is never a 5xx'));
    for (const row of table.split('\n').slice(2)) {
      const cells = row.split('|').map((cell) => cell.trim());
      const status = Number(cells[1]);
      if (!Number.isInteger(status)) continue;
      for (const code of (cells[2] ?? '').match(/CK_[A-Z_]+/g) ?? []) {
        if (status === 404 || status === 413) expect(code).toBe('CK_CLOUD_BAD_REQUEST');
        else expect({ code, status: statusOf(code as ErrorCode) }).toEqual({ code, status });
      }
    }
  });
});
