/**
 * DESIGN invariant 1: no network on the entry path. Walks the import graph
 * (static and dynamic imports) of the authorizer (and of the core it uses)
 * and of the BLE link handler, and fails if anything they reach could do
 * network I/O or touch cloud code: the sync worker (src/vehicle/sync), the
 * cloud client (src/cloud-client) or the server (src/cloud).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '..', '..');
const FORBIDDEN = /^(node:)?(net|http|https|http2|dgram|tls|dns|child_process)$|^(fastify|undici|axios|node-fetch|ws|pg|mqtt)(\/|$)/;
/** The cloud sync worker, the cloud client and the cloud server. */
const CLOUD_CODE = /\/src\/(vehicle\/sync|cloud-client|cloud)\//;

function importsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const specifiers: string[] = [];
  for (const match of source.matchAll(/(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const specifier = match[1] ?? match[2];
    if (specifier !== undefined) specifiers.push(specifier);
  }
  return specifiers;
}

function graph(entry: string): { files: Set<string>; external: Set<string> } {
  const files = new Set<string>();
  const external = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop();
    if (file === undefined || files.has(file)) continue;
    files.add(file);
    for (const specifier of importsOf(file)) {
      if (specifier.startsWith('.')) stack.push(join(dirname(file), specifier.replace(/\.js$/, '.ts')));
      else external.add(specifier);
    }
  }
  return { files, external };
}

describe('no network on the entry path', () => {
  it('the authorizer reaches no network module and no cloud code', () => {
    const { files, external } = graph(join(REPO, 'src/vehicle/authorizer.ts'));
    expect(files.size).toBeGreaterThan(3);
    expect([...external].filter((s) => FORBIDDEN.test(s))).toEqual([]);
    expect([...files].filter((f) => /\/(cloud|sync)/.test(f))).toEqual([]);
    // Only the pure core (and node:crypto / tweetnacl for computation) is reachable.
    expect([...files].filter((f) => !f.includes('/src/core/') && !f.endsWith('/src/vehicle/authorizer.ts'))).toEqual([]);
  });

  it('the link handler (the BLE entry path) reaches neither the sync worker nor any cloud code', () => {
    const { files, external } = graph(join(REPO, 'src/vehicle/link-handler.ts'));
    expect(files.size).toBeGreaterThan(10);
    expect([...files].filter((f) => CLOUD_CODE.test(f))).toEqual([]);
    expect([...external].filter((s) => FORBIDDEN.test(s))).toEqual([]);
  });

  it('the detector sees the sync worker and the cloud client where they are imported (the daemon)', () => {
    const { files, external } = graph(join(REPO, 'src/vehicle/daemon.ts'));
    const reached = [...files].filter((f) => CLOUD_CODE.test(f));
    expect(reached.some((f) => f.endsWith('/src/vehicle/sync/worker.ts'))).toBe(true);
    expect(reached.some((f) => f.endsWith('/src/cloud-client/client.ts'))).toBe(true);
    // mqtt is loaded lazily by the worker, and the detector follows dynamic imports too.
    expect(external.has('mqtt')).toBe(true);
  });

  it('the detector itself catches a network import', () => {
    expect(FORBIDDEN.test('node:net')).toBe(true);
    expect(FORBIDDEN.test('fastify')).toBe(true);
    expect(FORBIDDEN.test('node:crypto')).toBe(false);
  });

  it('src/core imports nothing with I/O', () => {
    const { external } = graph(join(REPO, 'src/core/vehicle-session.ts'));
    const phone = graph(join(REPO, 'src/core/phone-session.ts'));
    const all = [...external, ...phone.external];
    expect(all.filter((s) => /^(node:)?(fs|net|http|https|dgram|child_process|os|tls|dns)$/.test(s))).toEqual([]);
  });
});
