/**
 * The auth plugin: every route registered in its scope is reachable only
 * with a valid request signature (docs/cloud.md "Authentication").
 *
 * Order (preValidation, so before any schema check or handler, and after
 * the raw body is in hand): signature headers, replay window and signature
 * (core `verifyRequestSignature`, against the path and query exactly as
 * sent and the body bytes exactly as received) → the per-key rate limit →
 * the nonce, remembered until the end of its window (seen before: 401
 * CK_CLOUD_AUTH_REPLAY). A handler runs only when all of these passed.
 *
 * Guarantees: an unsigned, stale, forged or replayed request never reaches
 * a handler and learns nothing about the resource (it is refused before the
 * vehicle is even looked up); the nonce is consumed only by a request whose
 * signature verified, so nobody can burn another caller's nonces.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { toHex } from '../core/bytes.js';
import { CLOUD_HEADERS, DEFAULT_REPLAY_WINDOW_MS, verifyRequestSignature } from '../core/cloud-auth.js';
import { CarkeyError } from '../core/errors.js';
import { rawBodyOf, type CloudContext } from './context.js';

export interface AuthOptions {
  readonly context: CloudContext;
  readonly windowMs?: number;
  /** the per-key limiter (reads request.caller): throws CK_CLOUD_RATE_LIMITED when the key is over its limit */
  readonly limitKey: (request: FastifyRequest) => Promise<void>;
}

export function splitUrl(url: string): { path: string; query: string } {
  const mark = url.indexOf('?');
  return mark < 0 ? { path: url, query: '' } : { path: url.slice(0, mark), query: url.slice(mark + 1) };
}

function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function installAuth(scope: FastifyInstance, options: AuthOptions): void {
  const { crypto, store, now } = options.context;
  const windowMs = options.windowMs ?? DEFAULT_REPLAY_WINDOW_MS;
  scope.addHook('preValidation', async (request) => {
    const { path, query } = splitUrl(request.url);
    const verified = verifyRequestSignature(crypto, request.headers, { method: request.method, path, query, body: rawBodyOf(request) }, now(), windowMs);
    if (!verified.ok) throw verified.error;
    // The headers passed the exact-form checks (lowercase hex), so they are the hex of what verified.
    const keyHex = headerText(request.headers[CLOUD_HEADERS.key]) ?? toHex(verified.value.publicKey);
    const nonceHex = headerText(request.headers[CLOUD_HEADERS.nonce]) ?? toHex(verified.value.nonce);
    // Set before the limit and the nonce: if either refuses, the request ends in the error handler.
    request.caller = { key: verified.value.publicKey, keyHex };
    await options.limitKey(request);
    const fresh = await store.rememberNonce(keyHex, nonceHex, verified.value.timeMs + windowMs);
    if (!fresh) throw new CarkeyError('CK_CLOUD_AUTH_REPLAY');
  });
}
