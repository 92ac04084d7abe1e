/**
 * The product must not depend on the simulator: no file under src/ imports,
 * re-exports, dynamically imports or requires anything under firmware-sim/.
 * (firmware-sim may import from src/, never the reverse; docs/architecture.md.)
 * eslint.config.js has the same rule as `no-restricted-imports`; this test also
 * covers dynamic `import()` and `require()`, which that rule does not see.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '..', '..');
const SIMULATOR = join(REPO, 'firmware-sim');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx|js|mjs|cjs)$/.test(entry.name) ? [path] : [];
  });
}

/** Every module specifier in `source`: static import/export … from, side-effect import, import(), require(). */
function specifiersOf(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /(?:import|export)\s[^;]*?from\s*['"]([^'"]+)['"]/g,
    /import\s*['"]([^'"]+)['"]/g,
    /import\(\s*['"]([^'"]+)['"]\s*\)/g,
    /require(?:\.resolve)?\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const match of source.matchAll(pattern)) if (match[1] !== undefined) found.push(match[1]);
  return found;
}

/** Specifiers of `file` that reach the simulator. */
function simulatorImports(file: string, source: string): string[] {
  return specifiersOf(source).filter((specifier) => {
    if (/(^|\/)firmware-sim(\/|$)/.test(specifier)) return true;
    if (!specifier.startsWith('.')) return false;
    const target = resolve(dirname(file), specifier);
    return target === SIMULATOR || target.startsWith(`${SIMULATOR}/`);
  });
}

describe('the product does not depend on the simulator', () => {
  it('no file under src/ imports from firmware-sim/', () => {
    const files = sourceFiles(join(REPO, 'src'));
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.flatMap((file) => simulatorImports(file, readFileSync(file, 'utf8')).map((specifier) => `${relative(REPO, file)} → ${specifier}`));
    expect(offenders).toEqual([]);
  });

  it('the scan catches every form of import', () => {
    const file = join(REPO, 'src/transport/example.ts');
    const forms = [
      "import { x } from '../../firmware-sim/btvirt/hci-socket.js';",
      "import type { X } from '../../firmware-sim/radio/air.js';",
      "export { y } from '../../firmware-sim/rig.js';",
      "import '../../firmware-sim/hardware/model.js';",
      "const m = await import('../../firmware-sim/radio/main.js');",
      "const r = require('../../firmware-sim/btvirt/launcher.js');",
    ];
    for (const form of forms) expect(simulatorImports(file, form), form).toHaveLength(1);
    expect(simulatorImports(file, "import { CarkeyError } from '../core/errors.js';")).toEqual([]);
    expect(simulatorImports(file, "import net from 'node:net';")).toEqual([]);
  });
});
