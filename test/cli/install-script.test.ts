/**
 * scripts/install.sh checks Node.js first and says exactly what to do (the
 * Raspberry Pi OS node is older than 20). A fake `node` on PATH stands in for
 * the old one; the script must stop before apt-get or npm run.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../../firmware-sim/rig.js';

const dir = mkdtempSync(join(tmpdir(), 'carkey-install-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function withNode(version: string | undefined): { code: number | null; stderr: string; ran: string } {
  const bin = join(dir, `bin-${version ?? 'none'}`);
  const ran = join(bin, 'ran.log');
  mkdirSync(bin, { recursive: true });
  if (version !== undefined) {
    writeFileSync(join(bin, 'node'), `#!/bin/sh\nif [ "$1" = "-p" ]; then echo ${version.split('.')[0]}; else echo v${version}; fi\n`, { mode: 0o755 });
  }
  for (const tool of ['npm', 'apt-get', 'make']) writeFileSync(join(bin, tool), `#!/bin/sh\necho ${tool} >> '${ran}'\n`, { mode: 0o755 });
  // Only this directory on PATH (the machine's own node must not be found): the few tools the script needs before the check.
  for (const tool of ['dirname', 'id', 'sh']) symlinkSync(spawnSync('/bin/sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), join(bin, tool));
  const result = spawnSync('/bin/bash', [join(REPO, 'scripts/install.sh')], { env: { PATH: bin, HOME: dir }, encoding: 'utf8' });
  return { code: result.status, stderr: result.stderr, ran: existsSync(ran) ? readFileSync(ran, 'utf8') : '' };
}

describe('install.sh checks Node.js first', () => {
  it.each(['18.19.0', '12.22.12'])('refuses Node %s, names it and says how to get Node 20, before apt-get or npm', (version) => {
    const result = withNode(version);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`found Node.js v${version}`);
    expect(result.stderr).toContain('carkey needs Node.js 20 or newer');
    expect(result.stderr).toContain('deb.nodesource.com/setup_20.x');
    expect(result.stderr).toContain('nodejs.org/dist/latest-v20.x');
    expect(result.ran).toBe('');
  });
  it('says so when there is no node at all', () => {
    const result = withNode(undefined);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('node is not installed');
    expect(result.ran).toBe('');
  });
  it('goes on with Node 20 (to npm ci)', () => {
    const result = withNode('20.19.0');
    expect(result.stderr).not.toContain('carkey needs Node.js 20');
    expect(result.ran).toContain('npm');
  });
});

describe('the global install (npm pack + npm install -g)', () => {
  it('the packed tarball holds the programs bin/ runs (dist/ is built, not in git)', () => {
    const packed = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, encoding: 'utf8' });
    expect(packed.status, packed.stderr).toBe(0);
    const files = new Set(((JSON.parse(packed.stdout) as { files: { path: string }[] }[])[0]?.files ?? []).map((file) => file.path));
    for (const path of ['bin/carkey.js', 'bin/carkeyd.js', 'dist/src/cli/carkey.js', 'dist/src/cli/carkeyd.js', 'deploy/carkeyd.service', 'docs/operations.md']) expect(files.has(path), path).toBe(true);
    expect([...files].some((path) => path.startsWith('dist/test/'))).toBe(false);
  });
});
