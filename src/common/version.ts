/**
 * The version every carkey program reports with --version (and build_info):
 * the `version` of the carkey package.json above this module, whether it runs
 * from src/ or dist/. Never throws: "unknown" when there is none.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function carkeyVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      if (typeof parsed === 'object' && parsed !== null && 'name' in parsed && parsed.name === 'carkey' && 'version' in parsed && typeof parsed.version === 'string') {
        cached = parsed.version;
        return cached;
      }
    } catch {
      // not here; look further up
    }
    dir = dirname(dir);
  }
  cached = 'unknown';
  return cached;
}

/** `-V` / `--version` in argv (before any `--`): the firmware-sim programs answer it before parsing anything else. */
export function wantsVersion(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((arg) => arg === '--version' || arg === '-V');
}

/** The line printed for --version: `<program> <version>`. */
export function versionLine(program: string): string {
  return `${program} ${carkeyVersion()}\n`;
}
