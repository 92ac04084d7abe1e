/**
 * Builds the carkey web app into dist/web/ (part of `npm run build`):
 * esbuild bundles src/web/app/main.ts (browser, ES2022, minified) into
 * app.js and src/web/sw/sw.ts into sw.js; the static files are copied; the
 * PNG icons are drawn here (no image tool needed); and the service worker
 * gets the exact asset list and a cache name from a hash of the assets, so a
 * new build replaces the cached app.
 *
 * Usage: node dist/scripts/build-web.js [--out DIR]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { build } from 'esbuild';

function findRepo(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
  return dir;
}

const REPO = findRepo(import.meta.dirname);
const STATIC = join(REPO, 'src/web/static');

// --- PNG icons -------------------------------------------------------------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC_TABLE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'ascii'), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** The icon of icon.svg, rasterised: brand square with rounded corners, a white ring and a key bit. */
export function iconPng(size: number): Buffer {
  const s = size / 64;
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x++) {
      const u = (x + 0.5) / s;
      const v = (y + 0.5) / s;
      const corner = Math.hypot(Math.max(12 - u, u - 52, 0), Math.max(12 - v, v - 52, 0)) > 12;
      const ring = Math.abs(Math.hypot(u - 22, v - 32) - 11) <= 3;
      const bar = (u >= 33 && u <= 55 && v >= 28 && v <= 36) || (u >= 49 && u <= 55 && v >= 36 && v <= 40) || (u >= 39 && u <= 44 && v >= 36 && v <= 40);
      const [r, g, b, a] = corner ? [0, 0, 0, 0] : ring || bar ? [255, 255, 255, 255] : [0x0b, 0x3d, 0x91, 255];
      raw.set([r, g, b, a], y * (size * 4 + 1) + 1 + x * 4);
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))]);
}

// --- build -------------------------------------------------------------------------------

export async function buildWeb(out: string): Promise<Record<string, number>> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const name of readdirSync(STATIC)) copyFileSync(join(STATIC, name), join(out, name));
  writeFileSync(join(out, 'icon-192.png'), iconPng(192));
  writeFileSync(join(out, 'icon-512.png'), iconPng(512));
  await build({
    entryPoints: [join(REPO, 'src/web/app/main.ts')],
    outfile: join(out, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110'],
    minify: true,
    legalComments: 'eof',
    // tweetnacl falls back to require('crypto') on Node only; browsers take self.crypto.
    external: ['crypto'],
    logLevel: 'warning',
  });
  const assets = readdirSync(out).filter((name) => name !== 'sw.js').sort();
  const hash = createHash('sha256');
  for (const name of assets) hash.update(name).update(readFileSync(join(out, name)));
  const cache = `carkey-${hash.digest('hex').slice(0, 16)}`;
  await build({
    entryPoints: [join(REPO, 'src/web/sw/sw.ts')],
    outfile: join(out, 'sw.js'),
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    define: { CARKEY_ASSETS: JSON.stringify(['./', ...assets.map((name) => `./${name}`)]), CARKEY_CACHE: JSON.stringify(cache) },
    logLevel: 'warning',
  });
  const sizes: Record<string, number> = {};
  for (const name of readdirSync(out)) sizes[name] = statSync(join(out, name)).size;
  return sizes;
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  const flag = process.argv.indexOf('--out');
  const out = flag >= 0 ? (process.argv[flag + 1] ?? '') : join(REPO, 'dist/web');
  const sizes = await buildWeb(out);
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  process.stdout.write(`web app built into ${out}: app.js ${sizes['app.js'] ?? 0} bytes, ${Object.keys(sizes).length} files, ${total} bytes in all\n`);
}
