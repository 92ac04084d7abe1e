/**
 * The fault switch (`--faults`), over real sockets: each mode does to a real
 * client what it says (500, 503, a connection that never answers, a reset,
 * a body trickled a byte at a time, malformed JSON, a truncated body, a
 * document with one byte changed); modes are per route group with "*" for
 * all; POST /_faults answers loopback only, and does not exist without the
 * flag; a hung connection does not hold up shutdown.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptKeyList, decodeKeyList } from '../../src/core/credentials.js';
import { decodeB64, encodeB64 } from '../../src/cloud/encoding.js';
import { codeOf, crypto, newCar, signedRequest, sqliteBackend, startHarness, until, type Backend, type Car, type Harness, type OutgoingRequest, type TestStore } from './helpers.js';

interface Raw {
  readonly status: number | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly chunks: Buffer[];
  readonly complete: boolean;
  readonly error: string | undefined;
}

/** A GET over node:http, recording every chunk as it arrives and how the exchange ended. */
function rawGet(base: string, request: { url: string; headers: Record<string, string> }): Promise<Raw> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status: number | undefined;
    let headers: Record<string, string | string[] | undefined> = {};
    let complete = false;
    let settled = false;
    const finish = (error: string | undefined): void => {
      if (settled) return;
      settled = true;
      resolve({ status, headers, chunks, complete, error });
    };
    const req = httpRequest(`${base}${request.url}`, { headers: { ...request.headers, connection: 'close' } }, (res) => {
      status = res.statusCode;
      headers = res.headers;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        complete = true;
      });
      res.on('error', (error) => finish(error.message));
      res.on('close', () => finish(complete ? undefined : 'closed before the end of the body'));
    });
    req.on('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
    req.end();
  });
}

describe('fault switch', () => {
  let backend: Backend;
  let store: TestStore;
  let h: Harness;
  let car: Car;
  let base: string;

  const setFault = async (route: string, mode: string): Promise<void> => {
    const answer = await h.client.raw('POST', '/_faults', { 'content-type': 'application/json' }, JSON.stringify({ route, mode }));
    expect(answer.status, answer.text).toBe(200);
  };
  const keyListRequest = (): OutgoingRequest => signedRequest(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`);
  const commandsRequest = (): OutgoingRequest => signedRequest(car.car, 'GET', `/v1/vehicles/${car.id}/commands`);

  beforeAll(async () => {
    backend = sqliteBackend();
    store = await backend.open();
    h = await startHarness(store, 'socket', { faults: true, trickleByteMs: 25 });
    base = h.url ?? '';
    car = newCar();
    expect((await h.client.register(car)).status).toBe(200);
  });
  afterAll(async () => {
    await h.close();
    await backend.cleanup();
  });

  it('500 and 503 answer that status with a catalog error', async () => {
    for (const [mode, code] of [['500', 'CK_CLOUD_SERVER_ERROR'], ['503', 'CK_CLOUD_STORE']] as const) {
      await setFault('key-list', mode);
      const answer = await h.client.transport.send(keyListRequest());
      expect({ status: answer.status, code: codeOf(answer) }).toEqual({ status: Number(mode), code });
    }
    await setFault('key-list', 'off');
    expect((await h.client.transport.send(keyListRequest())).status).toBe(200);
  });

  it('hang: the request is read and never answered (the connection stays open, silent)', async () => {
    await setFault('key-list', 'hang');
    const request = keyListRequest();
    const socket = connect(Number(new URL(base).port), '127.0.0.1');
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.write(`GET ${request.url} HTTP/1.1\r\nhost: 127.0.0.1\r\n${Object.entries(request.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    // a normal answer on another connection arrives meanwhile: the server is not stuck, only this request is
    await setFault('commands', 'off');
    expect((await h.client.transport.send(commandsRequest())).status).toBe(200);
    expect(received).toBe(0);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
    await setFault('key-list', 'off');
  });

  it('reset: the TCP connection is reset without an answer', async () => {
    await setFault('key-list', 'reset');
    const raw = await rawGet(base, keyListRequest());
    expect(raw.status).toBeUndefined();
    expect(raw.chunks).toEqual([]);
    expect(raw.error).toBe('ECONNRESET');
    await setFault('key-list', 'off');
  });

  it('trickle: the real answer arrives one byte at a time', async () => {
    await setFault('commands', 'trickle');
    const raw = await rawGet(base, commandsRequest());
    const text = Buffer.concat(raw.chunks).toString('utf8');
    expect(raw.status).toBe(200);
    expect(raw.complete).toBe(true);
    expect(JSON.parse(text)).toEqual({ commands: [] });
    expect(Number(raw.headers['content-length'])).toBe(text.length);
    // the client may coalesce a few bytes when it is descheduled; it must not get the body in one piece
    expect(raw.chunks.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...raw.chunks.map((chunk) => chunk.length))).toBeLessThan(text.length / 2);
    await setFault('commands', 'off');
  });

  it('malformed: 200 with a body that is not JSON', async () => {
    await setFault('key-list', 'malformed');
    const answer = await h.client.transport.send(keyListRequest());
    expect(answer.status).toBe(200);
    expect(() => JSON.parse(answer.text) as unknown).toThrow();
    await setFault('key-list', 'off');
  });

  it('truncated: the headers promise a body that stops half way, then the connection closes', async () => {
    await setFault('key-list', 'truncated');
    const raw = await rawGet(base, keyListRequest());
    const length = Number(raw.headers['content-length']);
    const received = Buffer.concat(raw.chunks).length;
    expect(raw.status).toBe(200);
    expect(raw.complete).toBe(false);
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(length);
    await setFault('key-list', 'off');
  });

  it('tamper: one byte of the stored document changes, and the reader’s verification refuses it', async () => {
    await setFault('key-list', 'tamper');
    const answer = await h.client.transport.send(keyListRequest());
    await setFault('key-list', 'off');
    expect(answer.status).toBe(200);
    const served = decodeB64((answer.json() as { keyList: string }).keyList) ?? new Uint8Array(0);
    const stored = car.keyList.bytes;
    expect(served.length).toBe(stored.length);
    expect(served.filter((byte, i) => byte !== stored[i]).length).toBe(1);
    const decoded = decodeKeyList(served);
    const verdict = decoded.ok ? acceptKeyList(crypto, decoded.value, undefined, car.vehicleId, { viaPairing: true }) : decoded;
    expect(verdict.ok).toBe(false);
    // with the fault off the true bytes are served again
    expect((await h.client.transport.send(keyListRequest())).json()).toMatchObject({ keyList: encodeB64(stored) });
  });

  it('faults are per group; "*" covers every group but never /health or /_faults; a group setting wins', async () => {
    await setFault('commands', '503');
    expect((await h.client.transport.send(keyListRequest())).status).toBe(200);
    expect((await h.client.transport.send(commandsRequest())).status).toBe(503);
    await setFault('*', '500');
    expect((await h.client.transport.send(keyListRequest())).status).toBe(500);
    expect((await h.client.transport.send(commandsRequest())).status).toBe(503);
    expect((await h.client.raw('GET', '/health')).status).toBe(200);
    expect((await h.client.call(car.owner, 'GET', '/v1/mailbox')).status).toBe(500);
    await setFault('*', 'off');
    expect((await h.client.transport.send(keyListRequest())).status).toBe(200);
    expect((await h.client.transport.send(commandsRequest())).status).toBe(200);
  });

  it('POST /_faults is refused from a non-loopback address and validated', async () => {
    const fromAfar = await h.app.inject({ method: 'POST', url: '/_faults', remoteAddress: '192.0.2.7', headers: { 'content-type': 'application/json', 'x-forwarded-for': '127.0.0.1' }, payload: { route: '*', mode: 'hang' } });
    expect(fromAfar.statusCode).toBe(403);
    expect((await h.client.raw('POST', '/_faults', { 'content-type': 'application/json' }, JSON.stringify({ route: 'everything', mode: 'hang' }))).status).toBe(400);
    expect((await h.client.transport.send(keyListRequest())).status).toBe(200);
  });

  it('a hung connection does not hold up shutdown', async () => {
    const own = await startHarness(store, 'socket', { faults: true });
    await own.client.raw('POST', '/_faults', { 'content-type': 'application/json' }, JSON.stringify({ route: '*', mode: 'hang' }));
    const hung = rawGet(own.url ?? '', keyListRequest());
    await until(async () => (await new Promise<number>((resolve) => own.app.server.getConnections((_e, n) => resolve(n)))) >= 1, 'the hung connection');
    await own.close();
    expect((await hung).status).toBeUndefined();
  });
});

describe('without --faults', () => {
  it('POST /_faults does not exist', async () => {
    const backend = sqliteBackend();
    const h = await startHarness(await backend.open(), 'inject');
    try {
      const answer = await h.client.raw('POST', '/_faults', { 'content-type': 'application/json' }, JSON.stringify({ route: '*', mode: 'hang' }));
      expect(answer.status).toBe(404);
    } finally {
      await h.close();
      await backend.cleanup();
    }
  });
});
