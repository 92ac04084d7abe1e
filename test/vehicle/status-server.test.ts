/**
 * carkeyd's status server (src/vehicle/status-server.ts) over a real socket:
 * the three read-only routes, HEAD, 404 and 405 as JSON, a failing /state
 * answered 500 without taking the server down, a busy port reported as
 * CK_STATUS_PORT_UNAVAILABLE, and close() not held up by an open connection.
 */
import { connect } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { isCarkeyError } from '../../src/core/errors.js';
import { DaemonMetrics } from '../../src/vehicle/metrics.js';
import { startStatusServer, type StatusServer } from '../../src/vehicle/status-server.js';

const logger = pino({ level: 'silent' });
const servers: StatusServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(state: () => Record<string, unknown> = () => ({ keyListVersion: 3 }), port = 0): Promise<StatusServer> {
  const server = await startStatusServer({ port, metrics: new DaemonMetrics({ defaultMetrics: false }), logger, state });
  servers.push(server);
  return server;
}

describe('the status server', () => {
  it('answers /health, /state and /metrics, and HEAD without a body', async () => {
    const { url } = await start();
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(health.headers.get('content-type')).toContain('application/json');
    expect(await health.json()).toEqual({ ok: true });
    expect(await (await fetch(`${url}/state?x=1`)).json()).toEqual({ keyListVersion: 3 });
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(await metrics.text()).toContain('carkey_build_info');
    const head = await fetch(`${url}/health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it.each([
    ['GET', '/nope', 404],
    ['GET', '/', 404],
    ['POST', '/state', 405],
    ['DELETE', '/metrics', 405],
  ])('%s %s → %i JSON', async (method, path, status) => {
    const { url } = await start();
    const response = await fetch(`${url}${path}`, { method });
    expect(response.status).toBe(status);
    expect(await response.json()).toHaveProperty('error');
  });

  it('a /state that throws is a 500 and the server keeps answering', async () => {
    const { url } = await start(() => {
      throw new Error('boom');
    });
    expect((await fetch(`${url}/state`)).status).toBe(500);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('a busy port is CK_STATUS_PORT_UNAVAILABLE, not an internal error', async () => {
    const first = await start();
    const port = Number(new URL(first.url).port);
    const error: unknown = await start(undefined, port).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCarkeyError(error, 'CK_STATUS_PORT_UNAVAILABLE')).toBe(true);
  });

  it('close() does not wait for an idle open connection', async () => {
    const server = await start();
    const { port } = new URL(server.url);
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'); // keep-alive: the socket stays open
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    servers.splice(servers.indexOf(server), 1);
    const closed = await Promise.race([server.close().then(() => 'closed'), new Promise((r) => setTimeout(() => r('stuck'), 5000))]);
    expect(closed).toBe('closed');
    socket.destroy();
  });
});
