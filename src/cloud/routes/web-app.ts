/**
 * The carkey web app at `/app` (the built static files of dist/web), and the
 * CORS headers that let a copy of the app hosted on another origin (`carkey
 * web`, a depot Pi, any static HTTPS host) call this service.
 *
 * Guarantees:
 * - `/app/` serves only files under the given root (@fastify/static: no
 *   directory listing, no path escapes); `/app` redirects to `/app/`, so the
 *   app's relative URLs and its service worker scope are `/app/`.
 * - CORS: every answer carries `Access-Control-Allow-Origin: *`, and a
 *   preflight (OPTIONS) is answered 204 without auth. This grants a web page
 *   nothing a program could not do already: the service has no cookies or
 *   other ambient credentials (`*` also forbids sending any), every private
 *   read and every write is signed per request by the caller's key, and
 *   what is stored is owner- or car-signed and checked by its reader.
 * - Neither appears in the OpenAPI document (they are not the API).
 */
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** Headers a browser may send cross-origin (the signature headers, the body type, the key-list ETag). */
const ALLOWED_HEADERS = 'content-type, if-none-match, x-carkey-key, x-carkey-time, x-carkey-nonce, x-carkey-signature';
/** Headers a page may read from an answer (the key-list ETag, the rate limit's wait). */
const EXPOSED_HEADERS = 'etag, retry-after';
const PREFLIGHT_MAX_AGE_S = 600;

export function installCors(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('access-control-allow-origin', '*');
    void reply.header('access-control-expose-headers', EXPOSED_HEADERS);
    if (request.headers.origin !== undefined) void reply.header('vary', 'origin');
    done();
  });
  app.options('/*', { schema: { hide: true } }, (_request, reply) => {
    void reply
      .code(204)
      .header('access-control-allow-methods', 'GET, POST, PUT, DELETE')
      .header('access-control-allow-headers', ALLOWED_HEADERS)
      .header('access-control-max-age', String(PREFLIGHT_MAX_AGE_S))
      .send();
  });
}

/** Serve the built app from `root` at /app/. */
export async function registerWebApp(app: FastifyInstance, root: string): Promise<void> {
  app.get('/app', { schema: { hide: true } }, (_request, reply) => reply.redirect('/app/', 308));
  await app.register(fastifyStatic, { root, prefix: '/app/', index: ['index.html'], list: false, decorateReply: false, schemaHide: true });
}
