/**
 * carkeyd's local status endpoint (fastify), bound to 127.0.0.1 only.
 *
 * Routes: GET /health (liveness), GET /metrics (Prometheus text), GET /state
 * (a JSON snapshot with key ids only — never keys, secrets or signatures).
 * Guarantees: never listens on a non-loopback address; unknown routes get 404
 * JSON; the server cannot affect entry decisions (read-only).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { DaemonMetrics } from './metrics.js';

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

export async function startStatusServer(options: { port: number; metrics: DaemonMetrics; logger: Logger; state: () => Record<string, unknown> }): Promise<StatusServer> {
  const app = buildStatusApp(options);
  const address = await app.listen({ host: '127.0.0.1', port: options.port });
  options.logger.info({ address }, 'status server listening');
  return { url: address, app, close: () => app.close() };
}
