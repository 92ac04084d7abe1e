/**
 * carkeyd's status endpoint (fastify), bound to 127.0.0.1 unless the operator
 * sets statusHost (off-box Prometheus scraping).
 *
 * Routes: GET /health (liveness), GET /metrics (Prometheus text), GET /state
 * (a JSON snapshot with key ids only — never keys, secrets or signatures).
 * Guarantees: listens on a non-loopback address only when configured (and
 * logs a warning saying so); read-only, no secrets; unknown routes get 404
 * JSON; the server cannot affect entry decisions (read-only).
 */
import { createServer } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
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
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

export function buildStatusApp(options: { metrics: DaemonMetrics; state: () => Record<string, unknown> }): FastifyInstance {
  // close() destroys open connections (also half-sent requests), so it never holds up carkeyd's shutdown
  const app = Fastify({ logger: false, forceCloseConnections: true });
  app.get('/health', () => ({ ok: true }));
  app.get('/state', () => options.state());
  app.get('/metrics', async (_request, reply) => {
    const body = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(body);
  });
  return app;
}

/** Loopback addresses: the default, reachable from this machine only. */
export function isLoopback(host: string): boolean {
  return host === '::1' || /^127\./.test(host);
}

export async function startStatusServer(options: { port: number; host?: string; metrics: DaemonMetrics; logger: Logger; state: () => Record<string, unknown> }): Promise<StatusServer> {
  const app = buildStatusApp(options);
  const host = options.host ?? '127.0.0.1';
  let address: string;
  try {
    address = await app.listen({ host, port: options.port });
  } catch (error) {
    await app.close();
    throw statusPortError(error, host, options.port);
  }
  if (!isLoopback(host)) options.logger.warn({ address }, 'status server reachable from the network (statusHost): /state and /metrics hold no secrets, but firewall it to your Prometheus');
  options.logger.info({ address }, 'status server listening');
  return { url: address, app, close: () => app.close() };
}
