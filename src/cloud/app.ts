/**
 * `buildCloudApp(options)`: the carkey-cloud HTTP service as a fastify
 * instance (testable with `inject()`, or `listen()` on a port). The API is
 * docs/cloud.md; this module wires it together.
 *
 * Guarantees:
 * - Every /v1 route except /v1/time is behind the auth plugin (auth.ts);
 *   every request and answer has a JSON schema (schemas.ts), published as
 *   OpenAPI at /docs; unknown members and parameters are refused (400).
 * - Bodies: application/json only, at most BODY_LIMIT (64 KiB, else 413),
 *   strict UTF-8, no `__proto__`/`constructor` keys; the exact bytes are kept
 *   for the signature check and for the audit decoder.
 * - Every failure is `{"error":{"code","message","details"}}` with the
 *   status of its code (http-errors.ts); a client's mistake is never a 5xx,
 *   and nothing a client sends can crash the process.
 * - Rate limits (@fastify/rate-limit, in memory per instance): per IP
 *   before anything else, per verified key after the signature check;
 *   429 CK_CLOUD_RATE_LIMITED with Retry-After.
 * - Shutdown (`app.close()`): long-polls are released at once (they answer
 *   with the current state), hung fault connections are destroyed, new
 *   requests get 503, in-flight ones finish. The store is the caller's to close.
 * - Logs carry no keys, signatures, headers or documents (logger.ts).
 * - CORS allows any origin (no cookies; every private call is signed), and
 *   with `webRoot` the web app is served at /app/ (routes/web-app.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { DEFAULT_REPLAY_WINDOW_MS } from '../core/cloud-auth.js';
import type { RandomSource } from '../core/crypto/backend.js';
import { createCrypto, type Crypto } from '../core/crypto/index.js';
import { CarkeyError } from '../core/errors.js';
import { installAuth } from './auth.js';
import type { CloudContext } from './context.js';
import { FaultSwitch, installFaults } from './faults.js';
import { badRequest, classifyError, errorBody } from './http-errors.js';
import { createCloudLogger, redactUrl } from './logger.js';
import { LongPoller } from './long-poll.js';
import { CloudMetrics } from './metrics.js';
import { noNotices, type NoticePublisher } from './notices.js';
import { registerAuditRoutes } from './routes/audit.js';
import { COMMAND_RETENTION_MS, registerCommandRoutes } from './routes/commands.js';
import { registerKeyListRoutes } from './routes/key-lists.js';
import { registerMailboxRoutes } from './routes/mailbox.js';
import { registerOpsRoutes } from './routes/ops.js';
import { installCors, registerWebApp } from './routes/web-app.js';
import { BODY_LIMIT } from './schemas.js';
import type { CloudStore } from './store.js';
import { packageVersion } from './version.js';

export interface CloudLimits {
  /** signed requests per key per minute (0 = no limit) */
  readonly perKeyPerMinute: number;
  /** requests per client IP per minute (0 = no limit) */
  readonly perIpPerMinute: number;
}

export const DEFAULT_LIMITS: CloudLimits = { perKeyPerMinute: 600, perIpPerMinute: 6000 };

/** How often expired nonces, mailbox items and old commands are deleted. */
export const PURGE_INTERVAL_MS = 60_000;

export interface CloudAppOptions {
  readonly store: CloudStore;
  /** pino logger (default: silent) */
  readonly logger?: Logger;
  readonly crypto?: Crypto;
  /** wall clock in ms (default Date.now) */
  readonly now?: () => number;
  readonly random?: RandomSource;
  readonly notices?: NoticePublisher;
  /** install the fault switch (POST /_faults, loopback only) */
  readonly faults?: boolean;
  /** ms between bytes in the trickle fault (default 200) */
  readonly trickleByteMs?: number;
  readonly limits?: Partial<CloudLimits>;
  readonly metrics?: CloudMetrics;
  readonly replayWindowMs?: number;
  /** serve OpenAPI at /docs (default true) */
  readonly docs?: boolean;
  /** serve the built web app (dist/web) from this directory at /app/ (routes/web-app.ts); default: not served */
  readonly webRoot?: string;
}

const UNLIMITED_PATHS = new Set(['/health', '/ready', '/metrics']);

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw badRequest('the body is not UTF-8', { reason: 'encoding' });
  }
  try {
    return JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__' || key === 'constructor') throw new SyntaxError(`member name ${key} is not allowed`);
      return value;
    });
  } catch (error) {
    throw badRequest(`the body is not JSON: ${error instanceof Error ? error.message : String(error)}`, { reason: 'json' });
  }
}

export async function buildCloudApp(options: CloudAppOptions): Promise<FastifyInstance> {
  const logger = options.logger ?? createCloudLogger({ level: 'silent' });
  const metrics = options.metrics ?? new CloudMetrics();
  const limits: CloudLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const poller = new LongPoller(options.store);
  const context: CloudContext = {
    store: options.store,
    crypto: options.crypto ?? createCrypto('node'),
    now: options.now ?? Date.now,
    random: options.random ?? ((n: number) => new Uint8Array(randomBytes(n))),
    poller,
    notices: options.notices ?? noNotices,
    metrics,
    logger,
  };
  metrics.buildInfo.set({ version: packageVersion(), node: process.version, store: options.store.dialect }, 1);

  const fastifyLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance: fastifyLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    routerOptions: { maxParamLength: 256 },
    return503OnClosing: true,
    // A client gets 30 s to send its request (headers and body); a long-poll's wait comes after that.
    requestTimeout: 30_000,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    frameworkErrors: (error, _request, reply) => {
      const answer: FastifyReply = reply;
      void answer.code(400).send(errorBody(badRequest(error.message.slice(0, 200), { reason: error.code })));
    },
  });

  app.decorateRequest('rawBody', undefined);
  app.decorateRequest('caller', undefined);
  app.decorateRequest('startedAt', 0);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (request: FastifyRequest, body: Buffer, done: (error: Error | null, value?: unknown) => void) => {
    request.rawBody = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    try {
      done(null, parseJson(body));
    } catch (error) {
      done(error instanceof Error ? error : new Error(String(error)));
    }
  });

  app.setErrorHandler((thrown, request, reply) => {
    const { status, error } = classifyError(thrown);
    metrics.refusals.inc({ code: error.code });
    if (status >= 500) request.log.error({ errorCode: error.code, err: thrown instanceof Error ? thrown.message : String(thrown), url: redactUrl(request.url) }, 'request failed');
    const retryAfterMs = error.details?.retryAfterMs;
    if (typeof retryAfterMs === 'number') reply.header('retry-after', Math.max(1, Math.ceil(retryAfterMs / 1000)));
    return reply.code(status).send(errorBody(error));
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody(badRequest(`no route ${request.method} ${redactUrl(request.url.split('?')[0] ?? '')}`, { reason: 'no-route' }))));

  // First hook of all, so refusals (rate limits, auth) carry the CORS header too: a page elsewhere reads why.
  installCors(app);
  await app.register(rateLimit, { global: false, cache: 100_000 });
  const ipLimiter = limits.perIpPerMinute > 0 ? app.createRateLimit({ max: limits.perIpPerMinute, timeWindow: 60_000, keyGenerator: (request) => `ip:${normalizeIP(request.socket.remoteAddress ?? request.ip)}` }) : undefined;
  const keyLimiter = limits.perKeyPerMinute > 0 ? app.createRateLimit({ max: limits.perKeyPerMinute, timeWindow: 60_000, keyGenerator: (request) => `key:${request.caller?.keyHex ?? ''}` }) : undefined;
  const limited = (ttl: number): CarkeyError => new CarkeyError('CK_CLOUD_RATE_LIMITED', undefined, { retryAfterMs: ttl });

  // Per-request bookkeeping in one hook each way (every hook costs a turn on the hot 304 path):
  // start time, requests in flight per connection (for shutdown), the per-IP limit, metrics, logs.
  const activeRequests = new Map<Socket, number>();
  app.server.on('connection', (socket: Socket) => {
    activeRequests.set(socket, 0);
    socket.once('close', () => activeRequests.delete(socket));
  });
  const debugLogs = logger.isLevelEnabled('debug');
  app.addHook('onRequest', (request, _reply, done) => {
    request.startedAt = performance.now();
    const socket = request.raw.socket;
    activeRequests.set(socket, (activeRequests.get(socket) ?? 0) + 1);
    const route = request.routeOptions.url ?? '';
    if (ipLimiter === undefined || UNLIMITED_PATHS.has(route) || route.startsWith('/docs')) {
      done();
      return;
    }
    ipLimiter(request).then(
      (result) => done(!result.isAllowed && result.isExceeded ? limited(result.ttl) : undefined),
      (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
    );
  });
  // Answers given while shutting down close their connection, so close() need not wait for idle keep-alives.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (poller.closing) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    const socket = request.raw.socket;
    const count = activeRequests.get(socket);
    if (count !== undefined) activeRequests.set(socket, Math.max(0, count - 1));
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = (performance.now() - request.startedAt) / 1000;
    const status = reply.statusCode;
    metrics.requests.inc({ route, method: request.method, status: String(status) });
    metrics.duration.observe({ route }, seconds);
    if (status >= 400) request.log.info({ method: request.method, url: redactUrl(request.url), status, ms: Math.round(seconds * 1000) }, 'refused');
    else if (debugLogs) request.log.debug({ method: request.method, url: redactUrl(request.url), status, ms: Math.round(seconds * 1000) }, 'answered');
    done();
  });

  if (options.docs ?? true) {
    await app.register(swagger, {
      openapi: {
        info: { title: 'carkey-cloud', version: packageVersion(), description: 'The optional relay of car- and phone-signed documents (docs/cloud.md). It can delay, never forge.' },
        components: {
          securitySchemes: {
            carkeySignature: {
              type: 'apiKey',
              in: 'header',
              name: 'x-carkey-signature',
              description: 'Ed25519 request signature with x-carkey-key, x-carkey-time and x-carkey-nonce (docs/cloud.md "Authentication")',
            },
          },
        },
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  }

  if (options.faults === true) installFaults(app, new FaultSwitch(), options.trickleByteMs === undefined ? {} : { trickleByteMs: options.trickleByteMs });

  registerOpsRoutes(app, context);
  if (options.webRoot !== undefined) await registerWebApp(app, options.webRoot);
  await app.register((scope, _options, done) => {
    installAuth(scope, {
      context,
      windowMs: options.replayWindowMs ?? DEFAULT_REPLAY_WINDOW_MS,
      limitKey: async (request) => {
        if (keyLimiter === undefined) return;
        const result = await keyLimiter(request);
        if (!result.isAllowed && result.isExceeded) throw limited(result.ttl);
      },
    });
    registerKeyListRoutes(scope, context);
    registerMailboxRoutes(scope, context);
    registerAuditRoutes(scope, context);
    registerCommandRoutes(scope, context);
    done();
  });

  let purgeTimer: NodeJS.Timeout | undefined;
  const purge = (): void => {
    const now = context.now();
    options.store.purgeExpired(now, now - COMMAND_RETENTION_MS).catch((error: unknown) => logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'purge failed'));
  };
  app.addHook('onReady', (done) => {
    purgeTimer = setInterval(purge, PURGE_INTERVAL_MS);
    purgeTimer.unref();
    done();
  });
  // Shutdown: release long-polls, then keep closing every connection that carries no request
  // (keep-alives, and connections a client opened but never used, which Node's own
  // closeIdleConnections leaves alone), so close() waits only for requests in flight.
  let idleSweeper: NodeJS.Timeout | undefined;
  const sweep = (): void => {
    for (const [socket, count] of activeRequests) if (count === 0) socket.destroy();
  };
  app.addHook('preClose', (done) => {
    poller.releaseAll();
    if (app.server.listening) {
      idleSweeper = setInterval(sweep, 50);
      idleSweeper.unref();
    }
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    if (purgeTimer !== undefined) clearInterval(purgeTimer);
    if (idleSweeper !== undefined) clearInterval(idleSweeper);
    done();
  });
  return app;
}
