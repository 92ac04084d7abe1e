/**
 * `carkey web`: serves the built web app (dist/web) on localhost, which
 * browsers treat as a secure context (Web Bluetooth, service workers and
 * WebCrypto need one), and with `--radio SOCKET` also the development radio
 * bridge (radio-bridge.ts).
 *
 * Guarantees: GET/HEAD only for files; paths are resolved inside the root
 * (no `..` escape); unknown paths are 404; responses carry a strict
 * Content-Security-Policy (same origin only, except that the page may call a
 * carkey-cloud over https or on this machine) and nosniff; sw.js and
 * index.html are served no-cache so a new build is picked up. Binds
 * 127.0.0.1 unless told otherwise.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { CarkeyError } from '../../core/errors.js';
import { RadioBridge } from './radio-bridge.js';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
};

const CSP = "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self' https: http://localhost:* http://127.0.0.1:* http://[::1]:*; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/** dist/web of this checkout (from src/web/server or dist/src/web/server). */
export function defaultWebRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return join(import.meta.dirname, 'web');
    dir = parent;
  }
  return join(dir, 'dist', 'web');
}

export interface WebServerOptions {
  readonly root?: string;
  readonly port?: number;
  readonly host?: string;
  /** simulated radio socket: also serve the radio bridge */
  readonly radio?: string;
}

export interface RunningWebServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startWebServer(options: WebServerOptions = {}): Promise<RunningWebServer> {
  const root = options.root ?? defaultWebRoot();
  if (!existsSync(join(root, 'index.html'))) throw new CarkeyError('CK_USAGE', `no built web app in ${root}; run \`npm run build\` first`);
  const bridge = options.radio === undefined ? undefined : new RadioBridge(options.radio);
  const server = createServer((req, res) => {
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    if (bridge?.handle(req, res, path) === true) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const relative = path.endsWith('/') ? `${path}index.html` : path;
    const file = normalize(join(root, relative));
    if (!file.startsWith(root.endsWith(sep) ? root : root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const name = file.slice(root.length);
    const fresh = name.endsWith('sw.js') || name.endsWith('index.html');
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'cache-control': fresh ? 'no-cache' : 'public, max-age=60',
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new CarkeyError('CK_USAGE', `cannot listen on ${options.host ?? '127.0.0.1'}:${options.port ?? 8080}: ${error.message}`)));
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host === '127.0.0.1' ? 'localhost' : host}:${address.port}/`,
    server,
    close: async () => {
      await bridge?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
