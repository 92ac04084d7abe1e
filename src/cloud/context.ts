/**
 * What every route handler of carkey-cloud is given: the store, the clock,
 * randomness, crypto, the long-poller, the notice publisher, metrics and
 * the logger; and the request fields the auth plugin adds.
 *
 * Guarantees: handlers get their clock and randomness only from here, so
 * tests drive time (stale requests, expiry) without touching the system
 * clock; `callerOf` is the only way to read the verified caller and throws
 * CK_CLOUD_AUTH_MISSING when a route was somehow reached without one.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RandomSource } from '../core/crypto/backend.js';
import type { Crypto } from '../core/crypto/index.js';
import { CarkeyError } from '../core/errors.js';
import type { LongPoller } from './long-poll.js';
import type { CloudMetrics } from './metrics.js';
import type { NoticePublisher } from './notices.js';
import type { CloudStore } from './store.js';

export type FaultGroup = 'key-list' | 'commands' | 'audit' | 'mailbox' | 'vehicles';

export interface Caller {
  readonly key: Uint8Array;
  /** 64 lowercase hex */
  readonly keyHex: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the body exactly as received (undefined when none): what the signature covers */
    rawBody: Uint8Array | undefined;
    /** set by the auth plugin once the signature and nonce checked out */
    caller: Caller | undefined;
    /** performance.now() when the request arrived */
    startedAt: number;
  }
  interface FastifyContextConfig {
    /** the fault-switch route group this route belongs to */
    group?: FaultGroup;
  }
}

export interface CloudContext {
  readonly store: CloudStore;
  readonly crypto: Crypto;
  readonly now: () => number;
  readonly random: RandomSource;
  readonly poller: LongPoller;
  readonly notices: NoticePublisher;
  readonly metrics: CloudMetrics;
  readonly logger: Logger;
}

const NO_BODY = new Uint8Array(0);

/** The body bytes as received (empty when there was none). */
export function rawBodyOf(request: FastifyRequest): Uint8Array {
  return request.rawBody ?? NO_BODY;
}

export function callerOf(request: FastifyRequest): Caller {
  const caller = request.caller;
  if (caller === undefined) throw new CarkeyError('CK_CLOUD_AUTH_MISSING');
  return caller;
}

/**
 * An AbortSignal that fires when the client goes away (ends a long-poll
 * early). It listens on this request's response, not on the socket, so a
 * keep-alive connection that carries long-poll after long-poll does not
 * collect a listener per request.
 */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => controller.abort());
  return controller.signal;
}
