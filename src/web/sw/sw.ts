/**
 * The service worker: caches the whole app at install and serves it from
 * the cache first, so the app opens and works with no network at all. The
 * asset list and the cache name (a hash of the assets) are injected at build
 * time (scripts/build-web.ts); a new build installs a new cache and drops
 * the old one. Requests to /radio (the development radio bridge) and to
 * other origins are never cached.
 */
declare const self: ServiceWorkerGlobalScope;
declare const CARKEY_ASSETS: readonly string[];
declare const CARKEY_CACHE: string;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CARKEY_CACHE);
      await cache.addAll(CARKEY_ASSETS.map((asset) => new Request(asset, { cache: 'reload' })));
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CARKEY_CACHE && name.startsWith('carkey-')) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  if (url.pathname.startsWith('/radio')) return;
  if (!url.pathname.startsWith(scope.pathname)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CARKEY_CACHE);
      const path = url.pathname === scope.pathname ? new URL('./index.html', scope).href : url.href;
      const cached = await cache.match(path, { ignoreSearch: true });
      if (cached !== undefined) return cached;
      return fetch(event.request);
    })(),
  );
});
