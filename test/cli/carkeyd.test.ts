/**
 * carkeyd as an operator runs it (real processes, compiled dist/ programs):
 * strict config check.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../firmware-sim/rig.js';
import { ExitCode } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'carkeyd-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, content: Record<string, unknown>): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(content));
  return file;
}

describe('carkeyd config check', () => {
  it.each([
    [{ slots: '0x4' }, 'slots = "0x4"'],
    [{ slots: ' 4 ' }, 'slots = " 4 "'],
    [{ relayBoundMs: '5e2' }, 'relayBoundMs = "5e2"'],
    [{ statusPort: '7341' }, 'statusPort = "7341"'],
    [{ relayBoundMS: 500 }, 'did you mean "relayBoundMs"?'],
    [{ keycards: ['replace-with-your-keycard-id'] }, 'placeholder'],
  ])('refuses %j with exit 2, the field and CK_CONFIG_INVALID', async (content, expected) => {
    const result = await runCli('src/cli/carkeyd.js', ['config', 'check', '--config', configFile('bad.json', content)]);
    expect(result.code).toBe(ExitCode.badInput);
    expect(result.stderr).toContain(expected);
    expect(result.stderr).toContain('[CK_CONFIG_INVALID]');
    expect(result.stdout).toBe('');
  });
  it('--json puts the field path in the error details', async () => {
    const result = await runCli('src/cli/carkeyd.js', ['config', 'check', '--json', '--config', configFile('nested.json', { cloud: { url: 'https://x', remote: { unlock: 'yes' } } })]);
    expect(result.code).toBe(ExitCode.badInput);
    expect(JSON.parse(result.stdout)).toMatchObject({ ok: false, error: { code: 'CK_CONFIG_INVALID', details: { path: 'cloud.remote.unlock' } } });
  });
  it('accepts a typed config and a numeric flag; refuses a non-decimal flag', async () => {
    const file = configFile('good.json', { slots: 4, statusPort: 7341, keycards: ['04A224B2C35E80'] });
    const good = await runCli('src/cli/carkeyd.js', ['config', 'check', '--json', '--config', file, '--status-port', '7342']);
    expect(good.code).toBe(ExitCode.ok);
    expect(JSON.parse(good.stdout)).toMatchObject({ slots: 4, statusPort: 7342 });
    const bad = await runCli('src/cli/carkeyd.js', ['config', 'check', '--config', file, '--status-port', '0x1cad']);
    expect(bad.code).toBe(ExitCode.badInput);
    expect(bad.stderr).toContain('statusPort = "0x1cad": expected a decimal integer');
  });
});
