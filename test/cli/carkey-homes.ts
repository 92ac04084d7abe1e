/**
 * Key stores for a CLI test file: one temp dir for the file, a fresh
 * `--home` per call of newHome(), every `carkey` process killed after each
 * test and the dir removed at the end (registers the vitest hooks).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { killAllCarkey, requireBuiltCarkey, runCarkey, type CarkeyRun } from '../phone/carkey-run.js';

export interface CarkeyHomes {
  /** The file's temp dir (valid once the tests run). */
  readonly dir: () => string;
  /** A path for a new, empty key store inside dir(). */
  readonly newHome: () => string;
  /** `carkey --home HOME ARGS`, as a user runs it. */
  readonly carkey: (home: string, ...args: string[]) => Promise<CarkeyRun>;
}

export function useCarkeyHomes(prefix: string): CarkeyHomes {
  let dir: string | undefined;
  let homes = 0;
  beforeAll(() => {
    requireBuiltCarkey();
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterEach(async () => {
    await killAllCarkey();
  });
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
  const theDir = (): string => {
    if (dir === undefined) throw new Error('useCarkeyHomes: the temp dir exists only while the tests run');
    return dir;
  };
  return {
    dir: theDir,
    newHome: () => join(theDir(), `home-${homes++}`),
    carkey: (home, ...args) => runCarkey(['--home', home, ...args]),
  };
}
