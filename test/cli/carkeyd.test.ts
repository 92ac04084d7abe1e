/**
 * carkeyd as an operator runs it (real processes, compiled dist/ programs):
 * strict config check; the car identity is created only by `carkeyd init`.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO, runCli, startDaemonProcess, startRig, stopProgram, stopRig } from '../../firmware-sim/rig.js';
import { ExitCode } from '../../src/core/errors.js';

/** `carkeyd run` on the sim radio with nothing listening: it must refuse before it touches the radio. */
function runArgs(state: string): string[] {
  return ['run', '--transport', 'sim', '--radio', join(dir, 'no-radio.sock'), '--hardware', join(dir, 'no-hw.sock'), '--state', state, '--status-port', '-1', '--log-level', 'silent'];
}

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
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

describe('carkeyd init: the car identity is created explicitly', () => {
  it('run on a mistyped (missing) state dir refuses with exit 7, names the dir and carkeyd init, and creates nothing', async () => {
    const state = join(dir, 'no-such-state');
    const result = await runCli('src/cli/carkeyd.js', runArgs(state));
    expect(result.code).toBe(ExitCode.state);
    expect(result.stderr).toContain('[CK_STORE_NOT_INITIALIZED]');
    expect(result.stderr).toContain(state);
    expect(result.stderr).toContain(`carkeyd init --state ${state}`);
    expect(existsSync(state)).toBe(false);
  });
  it('run on an empty state dir refuses the same way and leaves it empty', async () => {
    const state = join(dir, 'empty-state');
    mkdirSync(state, { mode: 0o700 });
    const result = await runCli('src/cli/carkeyd.js', runArgs(state));
    expect(result.code).toBe(ExitCode.state);
    expect(result.stderr).toContain('holds no car identity');
    expect(existsSync(join(state, 'identity.key'))).toBe(false);
    expect(existsSync(join(state, 'state.db'))).toBe(false);
  });
  it('init creates the identity, logs it, prints the key id; a second init changes nothing; identity agrees', async () => {
    const state = join(dir, 'new-car');
    const first = await runCli('src/cli/carkeyd.js', ['init', '--state', state]);
    expect(first.code, first.stderr).toBe(ExitCode.ok);
    expect(first.stdout).toMatch(/^created a new car identity in .*new-car/);
    const keyId = /vehicle key id (\S+)/.exec(first.stdout)?.[1];
    expect(keyId).toMatch(/^[0-9a-f]+$/);
    const log = first.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(log).toContainEqual(expect.objectContaining({ msg: 'carkeyd init: created a new car identity', vehicleKeyId: keyId, stateDir: state }));
    const seed = readFileSync(join(state, 'identity.key'), 'utf8');

    const second = await runCli('src/cli/carkeyd.js', ['init', '--state', state, '--json', '--log-level', 'silent']);
    expect(second.code).toBe(ExitCode.ok);
    expect(JSON.parse(second.stdout)).toMatchObject({ ok: true, created: false, vehicleKeyId: keyId });
    expect(readFileSync(join(state, 'identity.key'), 'utf8')).toBe(seed);

    const identity = await runCli('src/cli/carkeyd.js', ['identity', '--state', state, '--json']);
    expect(JSON.parse(identity.stdout)).toMatchObject({ keyId });
  });
  it('identity on an uninitialised dir points at carkeyd init', async () => {
    const result = await runCli('src/cli/carkeyd.js', ['identity', '--state', join(dir, 'empty-state')]);
    expect(result.code).toBe(ExitCode.state);
    expect(result.stderr).toContain('carkeyd init --state');
  });
});

describe('a busy status port', () => {
  it('is refused before anything is audited, with its own code and exit 6 (not CK_INTERNAL)', async () => {
    const state = join(dir, 'port-car');
    expect((await runCli('src/cli/carkeyd.js', ['init', '--state', state, '--log-level', 'silent'])).code).toBe(0);
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const address = holder.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const result = await runCli('src/cli/carkeyd.js', [...runArgs(state).filter((arg) => arg !== '-1' && arg !== '--status-port'), '--status-port', String(port)]);
      expect(result.code).toBe(ExitCode.unavailable);
      expect(result.stderr).toContain('[CK_STATUS_PORT_UNAVAILABLE]');
      expect(result.stderr).toContain(`127.0.0.1:${port} is already in use`);
      expect(result.stderr).not.toContain('CK_INTERNAL');
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
    const verify = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', state, '--json']);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, entries: 0 });
  });
});

describe('systemd Type=notify', () => {
  it('carkeyd runs systemd-notify --ready once it advertises, then WATCHDOG=1 pings, and STOPPING=1 on SIGTERM', async () => {
    const rig = await startRig();
    const bin = join(rig.dir, 'bin');
    const log = join(rig.dir, 'notify.log');
    mkdirSync(bin);
    writeFileSync(join(bin, 'systemd-notify'), `#!/bin/sh\necho "$*" >> '${log}'\n`, { mode: 0o755 });
    try {
      const daemon = await startDaemonProcess(rig, { env: { PATH: `${bin}:${process.env.PATH ?? ''}`, NOTIFY_SOCKET: join(rig.dir, 'notify.sock'), WATCHDOG_USEC: '200000' } });
      const seen = async (text: string): Promise<void> => {
        while (!(existsSync(log) && readFileSync(log, 'utf8').includes(text))) await new Promise((r) => setTimeout(r, 50));
      };
      await seen('--ready');
      await seen('WATCHDOG=1');
      const lines = readFileSync(log, 'utf8').split('\n');
      expect(lines[0]).toBe(`--pid=${String(daemon.ready.pid)} --ready --status=advertising as ${String(daemon.ready.vehicleKeyId)}`);
      expect(await stopProgram(daemon)).toBe(0);
      await seen(`--pid=${String(daemon.ready.pid)} STOPPING=1`);
    } finally {
      await stopRig(rig);
    }
  }, 60_000);
});

describe('the status server bind address', () => {
  it('statusHost 0.0.0.0 serves off-box scrapers, with a warning in the log', async () => {
    const rig = await startRig({ config: { statusHost: '0.0.0.0' } });
    try {
      const daemon = await startDaemonProcess(rig);
      const port = new URL(String(daemon.ready.status)).port;
      expect(await (await fetch(`http://127.0.0.1:${port}/health`)).json()).toEqual({ ok: true });
      expect(daemon.stderr()).toContain('status server reachable from the network');
    } finally {
      await stopRig(rig);
    }
  }, 60_000);
});

describe('metrics', () => {
  it('one prefix, build_info, and state gauges read at scrape time (the body-controller link going down shows)', async () => {
    const rig = await startRig();
    try {
      const daemon = await startDaemonProcess(rig);
      const scrape = async (): Promise<string> => (await fetch(`${String(daemon.ready.status)}/metrics`)).text();
      const text = await scrape();
      const names = text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).map((line) => line.split(/[{ ]/)[0] ?? '');
      expect(names.length).toBeGreaterThan(10);
      expect(names.filter((name) => !name.startsWith('carkey_'))).toEqual([]);
      expect(text).toMatch(new RegExp(`^carkey_build_info\\{version="${VERSION.replace(/\./g, '\\.')}",node="${process.versions.node.split('.')[0]}\\.[0-9.]+"\\} 1$`, 'm'));
      expect(text).toMatch(/^carkey_paired 0$/m);
      expect(text).toMatch(/^carkey_key_list_version 0$/m);
      expect(text).toMatch(/^carkey_body_controller_up 1$/m);
      expect(text).toMatch(/^carkey_audit_entries [1-9][0-9]*$/m);
      expect(text).toMatch(/^carkey_audit_last_error_timestamp_seconds 0$/m);
      await stopProgram(rig.hardwareProc);
      while (!/^carkey_body_controller_up 0$/m.test(await scrape())) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await stopRig(rig);
    }
  }, 60_000);
});
