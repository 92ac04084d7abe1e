/**
 * Operator conventions on every program (real processes, dist/): --version
 * prints the package version and exits 0; subcommand help lists the global
 * options; `carkeyd --help` shows the run flags.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, runCli } from '../../firmware-sim/rig.js';

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

describe('--version', () => {
  it.each(['src/cli/carkey.js', 'src/cli/carkeyd.js', 'src/cli/carkey-cloud.js', 'firmware-sim/radio/main.js', 'firmware-sim/hardware/main.js', 'firmware-sim/hardware/ctl.js', 'firmware-sim/btvirt/main.js'])('%s --version prints the package version and exits 0', async (script) => {
    const result = await runCli(script, ['--version']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split(' ').at(-1)).toBe(VERSION);
  });
});

describe('help', () => {
  it('carkeyd --help shows the run flags and init', async () => {
    const result = await runCli('src/cli/carkeyd.js', ['--help']);
    expect(result.code).toBe(0);
    for (const flag of ['--config <file>', '--state <dir>', '--status-port <port>', '--transport <kind>', 'init [options]', '--version']) expect(result.stdout).toContain(flag);
  });
  it('subcommand help lists the global options', async () => {
    const carkey = await runCli('src/cli/carkey.js', ['unlock', '--help']);
    expect(carkey.code).toBe(0);
    expect(carkey.stdout).toContain('Global Options:');
    for (const flag of ['--home <dir>', '--transport <kind>', '--json', '--timeout <ms>']) expect(carkey.stdout).toContain(flag);
    const carkeyd = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--help']);
    expect(carkeyd.stdout).toContain('Global Options:');
    expect(carkeyd.stdout).toContain('--version');
  });
  it('carkey-cloud --help exits 0', async () => {
    const result = await runCli('src/cli/carkey-cloud.js', ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('serve');
  });
});
