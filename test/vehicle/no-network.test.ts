/**
 * DESIGN invariant 1: no network on the entry path. Walks the static import
 * graph of the authorizer (and of the core it uses) and fails if anything it
 * reaches could do network I/O or touch cloud code.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '..', '..');
const FORBIDDEN = /^(node:)?(net|http|https|http2|dgram|tls|dns|child_process)$|^(fastify|undici|axios|node-fetch|ws|pg|mqtt)(\/|$)/;

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
