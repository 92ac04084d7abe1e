/**
 * The cloud client against a real local HTTP server that misbehaves on
 * purpose: every failure becomes its catalog error within the deadline
 * (hang, reset, 500, 503, malformed, truncated, oversized, refusal codes),
 * requests are signed so that core's verifier accepts them, and base64url
 * round-trips exactly (property).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, toBase64Url } from '../../src/core/bytes.js';
import { verifyRequestSignature } from '../../src/core/cloud-auth.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { CloudClient, MAX_RESPONSE_BYTES } from '../../src/cloud-client/client.js';
import { crypto, party, propertyRuns } from '../helpers/core-harness.js';

type Behaviour = (request: IncomingMessage, response: ServerResponse, body: Buffer) => void;
let behaviour: Behaviour = (_q, response) => response.end('{}');
let server: Server;
let url = '';
const caller = party('caller');
const random = (n: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 29 + Date.now()) & 0xff);

function client(timeoutMs = 500): CloudClient {
  return new CloudClient({ baseUrl: url, crypto, random, clock: () => Date.now(), seed: () => caller.seed, timeoutMs });
}

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => behaviour(request, response, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (error) {
    return isCarkeyError(error) ? error.code : `not a CarkeyError: ${String(error)}`;
  }
}

describe('cloud client', () => {
  it('signs requests so that the core verifier accepts them (path, query, body)', async () => {
    let verified = false;
    behaviour = (request, response, body) => {
      const parsed = new URL(request.url ?? '/', 'http://x');
      const result = verifyRequestSignature(crypto, request.headers, { method: request.method ?? '', path: parsed.pathname, query: parsed.search.slice(1), body: new Uint8Array(body) }, Date.now());
      verified = result.ok;
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ stored: 2, lastSeq: 7 }));
    };
    expect(await client().uploadAudit(new Uint8Array(16), { entries: [], checkpoints: [], last: 0 })).toEqual({ stored: 2, lastSeq: 7 });
    expect(verified).toBe(true);
  });

  const table: readonly { name: string; behaviour: Behaviour; code: string }[] = [
    { name: 'hang', behaviour: () => undefined, code: 'CK_CLOUD_TIMEOUT' },
    { name: 'reset', behaviour: (request) => request.socket.destroy(), code: 'CK_CLOUD_UNAVAILABLE' },
    { name: '500', behaviour: (_q, response) => response.writeHead(500).end('Internal Server Error'), code: 'CK_CLOUD_SERVER_ERROR' },
    { name: '503', behaviour: (_q, response) => response.writeHead(503).end(), code: 'CK_CLOUD_SERVER_ERROR' },
    { name: 'malformed JSON', behaviour: (_q, response) => response.writeHead(200).end('{"time":'), code: 'CK_CLOUD_BAD_RESPONSE' },
    { name: 'wrong shape', behaviour: (_q, response) => response.writeHead(200).end('{"time":"soon"}'), code: 'CK_CLOUD_BAD_RESPONSE' },
    {
      name: 'truncated body (connection cut mid-answer)',
      behaviour: (_q, response) => {
        response.writeHead(200, { 'content-length': '100' });
        response.write('{"time":1');
        setTimeout(() => response.socket?.destroy(), 20);
      },
      code: 'CK_CLOUD_UNAVAILABLE',
    },
    {
      name: 'trickle slower than the deadline',
      behaviour: (_q, response) => {
        response.writeHead(200);
        const timer = setInterval(() => (response.writableEnded ? clearInterval(timer) : response.write(' ')), 100);
        response.on('close', () => clearInterval(timer));
      },
      code: 'CK_CLOUD_TIMEOUT',
    },
    { name: 'oversized', behaviour: (_q, response) => response.writeHead(200).end(' '.repeat(MAX_RESPONSE_BYTES + 10)), code: 'CK_CLOUD_BAD_RESPONSE' },
    { name: 'refusal with a catalog code', behaviour: (_q, response) => response.writeHead(403).end(JSON.stringify({ error: { code: 'CK_CLOUD_FORBIDDEN', message: 'no' } })), code: 'CK_CLOUD_FORBIDDEN' },
    { name: 'refusal with a non-cloud code is not trusted', behaviour: (_q, response) => response.writeHead(403).end(JSON.stringify({ error: { code: 'CK_INTERNAL', message: 'x' } })), code: 'CK_CLOUD_BAD_RESPONSE' },
    { name: '429 without a body', behaviour: (_q, response) => response.writeHead(429).end(), code: 'CK_CLOUD_RATE_LIMITED' },
  ];
  for (const row of table) {
    it(`${row.name} → ${row.code}`, async () => {
      behaviour = row.behaviour;
      expect(await codeOf(client().time())).toBe(row.code);
    });
  }

  it('nothing listening → CK_CLOUD_UNAVAILABLE; a bad URL → CK_USAGE', async () => {
    const closed = new CloudClient({ baseUrl: 'http://127.0.0.1:1', crypto, random, clock: () => Date.now(), seed: () => caller.seed });
    expect(await codeOf(closed.time())).toBe('CK_CLOUD_UNAVAILABLE');
    expect(() => new CloudClient({ baseUrl: 'ftp://x', crypto, random, clock: () => Date.now(), seed: () => caller.seed })).toThrow();
  });

  it('a long-poll gets its wait added to the deadline', async () => {
    behaviour = (_q, response) => setTimeout(() => response.writeHead(304).end(), 800);
    expect(await client(300).getKeyList(new Uint8Array(16), { etag: '"0.1"', waitS: 1 })).toBe('unchanged');
  });
});

describe('base64url', () => {
  it('round-trips and equals Buffer base64url (property); refuses padding and foreign characters', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const text = toBase64Url(bytes);
        expect(text).toBe(Buffer.from(bytes).toString('base64url'));
        expect(fromBase64Url(text)).toEqual(bytes);
      }),
      propertyRuns(300),
    );
    for (const text of ['AA==', 'A', 'A+B/', 'AB', 'AC']) expect(fromBase64Url(text), text).toBeUndefined();
    expect(fromBase64Url('AA')).toEqual(Uint8Array.of(0));
  });
});
