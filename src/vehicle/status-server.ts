/**
 * carkeyd's status endpoint, bound to 127.0.0.1 unless the operator sets
 * statusHost (off-box Prometheus scraping).
 *
 * Routes: GET /health (liveness), GET /metrics (Prometheus text), GET /state
 * (a JSON snapshot with key ids only — never keys, secrets or signatures).
 * Guarantees: listens on a non-loopback address only when configured (and
 * logs a warning saying so); read-only, no secrets, no request body is read;
 * unknown routes get 404 JSON, other methods 405; a failing handler answers
 * 500 JSON and never throws past the server; the server cannot affect entry
 * decisions (read-only); close() drops open connections, so it never holds
 * up carkeyd's shutdown.
 *
 * Plain node:http, not fastify: three read-only routes do not need a
 * framework, and carkeyd's resident memory counts against a 64 MiB budget on
 * a Pi (docs/performance.md): loading the daemon's modules went from 75.6 to
 * 71.6 MiB RSS without fastify.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { Logger } from 'pino';
import { CarkeyError } from '../core/errors.js';
import type { DaemonMetrics } from './metrics.js';

/** A listen failure as the operator's problem it is (never CK_INTERNAL: a busy port is not a bug). */
export function statusPortError(error: unknown, host: string, port: number): Error {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
  const where = `${host}:${port}`;
  if (code === 'EADDRINUSE') {
    return new CarkeyError('CK_STATUS_PORT_UNAVAILABLE', `${where} is already in use by another process (another carkeyd? \`ss -ltnp 'sport = :${port}'\` shows which); set another statusPort / --status-port, or -1 to turn the status server off`, { host, port, errno: code }, { cause: error });
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL' || code === 'EPERM') {
    return new CarkeyError('CK_STATUS_PORT_UNAVAILABLE', `cannot listen on ${where} (${code}); choose another statusPort / --status-port, or -1 to turn it off`, { host, port, errno: code }, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

/**
 * Check that the status port can be bound, before anything is audited or
 * started (carkeyd calls this first). Port 0 (any free port) and -1 (off) pass.
 */
export function checkStatusPort(host: string, port: number): Promise<void> {
  if (port <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (error) => reject(statusPortError(error, host, port)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

export interface StatusServer {
  readonly url: string;
  close(): Promise<void>;
}

type Route = () => Promise<{ readonly type: string; readonly body: string }>;

const json = (value: unknown): { type: string; body: string } => ({ type: 'application/json; charset=utf-8', body: JSON.stringify(value) });

/** The request handler: GET/HEAD on the three routes; everything else a JSON 404/405. */
export function statusHandler(options: { metrics: DaemonMetrics; state: () => Record<string, unknown> }): (request: IncomingMessage, response: ServerResponse) => void {
  const routes: Readonly<Record<string, Route>> = {
    '/health': () => Promise.resolve(json({ ok: true })),
    '/state': () => Promise.resolve(json(options.state())),
    '/metrics': async () => ({ type: options.metrics.registry.contentType, body: await options.metrics.registry.metrics() }),
  };
  const send = (response: ServerResponse, status: number, reply: { type: string; body: string }, head: boolean): void => {
    response.writeHead(status, { 'content-type': reply.type, 'content-length': Buffer.byteLength(reply.body), 'cache-control': 'no-store' });
    response.end(head ? undefined : reply.body);
  };
  return (request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    const head = request.method === 'HEAD';
    if (route === undefined) return send(response, 404, json({ error: 'not found', path }), head);
    if (request.method !== 'GET' && !head) {
      response.setHeader('allow', 'GET, HEAD');
      return send(response, 405, json({ error: 'method not allowed' }), false);
    }
    // Through a promise, so a handler that throws synchronously is a 500 too, never an uncaught error.
    Promise.resolve()
      .then(route)
      .then(
        (reply) => send(response, 200, reply, head),
        (error: unknown) => {
          if (!response.headersSent) send(response, 500, json({ error: error instanceof Error ? error.message : 'internal error' }), head);
          else response.destroy();
        },
      );
    return undefined;
  };
}

/** Loopback addresses: the default, reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host);
}

function listen(server: Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : port;
      resolve(`http://${host.includes(':') ? `[${host}]` : host}:${bound}`);
    });
  });
}

export async function startStatusServer(options: { port: number; host?: string; metrics: DaemonMetrics; logger: Logger; state: () => Record<string, unknown> }): Promise<StatusServer> {
  const server = createHttpServer(statusHandler(options));
  server.on('clientError', (_error, socket) => socket.destroy());
  const host = options.host ?? '127.0.0.1';
  let address: string;
  try {
    address = await listen(server, host, options.port);
  } catch (error) {
    server.close();
    throw statusPortError(error, host, options.port);
  }
  if (!isLoopback(host)) options.logger.warn({ address }, 'status server reachable from the network (statusHost): /state and /metrics hold no secrets, but firewall it to your Prometheus');
  options.logger.info({ address }, 'status server listening');
  return {
    url: address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
