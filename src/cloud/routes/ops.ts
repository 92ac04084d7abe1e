/**
 * Operations routes: GET /health (the process answers), GET /ready (the
 * database answers; 503 CK_CLOUD_STORE otherwise), GET /metrics
 * (Prometheus text), GET /v1/time (the cloud's clock, unauthenticated, so a
 * client can see its skew before it signs).
 *
 * Guarantees: none of these reads or reveals a document, a key or a
 * vehicle id; /ready never throws anything but CK_CLOUD_STORE.
 */
import type { FastifyInstance } from 'fastify';
import { CarkeyError } from '../../core/errors.js';
import type { CloudContext } from '../context.js';
import { healthSchema, readySchema, timeSchema } from '../schemas.js';

export function registerOpsRoutes(app: FastifyInstance, ctx: CloudContext): void {
  app.get('/health', { schema: healthSchema }, () => ({ ok: true }));

  app.get('/ready', { schema: readySchema }, async () => {
    try {
      await ctx.store.ping();
    } catch (error) {
      throw error instanceof CarkeyError && error.code === 'CK_CLOUD_STORE' ? error : new CarkeyError('CK_CLOUD_STORE', 'the database does not answer');
    }
    return { ok: true, store: ctx.store.dialect };
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    ctx.metrics.longPolls.set(ctx.poller.active);
    const body = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(body);
  });

  app.get('/v1/time', { schema: timeSchema }, () => ({ time: Math.floor(ctx.now()) }));
}
