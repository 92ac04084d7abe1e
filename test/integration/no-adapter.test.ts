/**
 * Without kernel Bluetooth (these machines have none) both programs must fail
 * with exit code 6 and a message naming the adapter and `--transport sim`,
 * never a stack trace. Skipped on a machine that does have an adapter.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.js';
import { runCli, startProgram, stopProgram, type Started } from '../../firmware-sim/rig.js';

const dir = mkdtempSync(join(tmpdir(), 'carkey-noadapter-'));
let hardware: Started | undefined;
let hasKernelBluetooth = false;

describe('no Bluetooth adapter', () => {
  beforeAll(async () => {
    hardware = await startProgram('firmware-sim/hardware/main.js', ['--socket', join(dir, 'hw.sock')]);
    const probe = await runCli('src/cli/carkey.js', ['--home', join(dir, 'probe'), '--transport', 'ble', '--timeout', '500', 'scan']);
    hasKernelBluetooth = !probe.stderr.includes('CK_TRANSPORT_NO_ADAPTER');
  });
  afterAll(async () => {
    await stopProgram(hardware);
    rmSync(dir, { recursive: true, force: true });
  });

  it('carkeyd exits 6 naming the adapter and --transport sim', async ({ skip }) => {
    if (hasKernelBluetooth) skip('this machine has kernel Bluetooth');
    expect((await runCli('src/cli/carkeyd.js', ['init', '--state', join(dir, 'state'), '--log-level', 'silent'])).code).toBe(0);
    const result = await runCli('src/cli/carkeyd.js', ['--transport', 'ble', '--adapter', 'hci1', '--state', join(dir, 'state'), '--hardware', join(dir, 'hw.sock'), '--status-port', '-1', '--log-level', 'silent']);
    expect(result.code).toBe(ExitCode.unavailable);
    expect(result.stderr).toContain('hci1');
    expect(result.stderr).toContain('--transport sim');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('carkey exits 6 naming the adapter and --transport sim', async ({ skip }) => {
    if (hasKernelBluetooth) skip('this machine has kernel Bluetooth');
    await runCli('src/cli/carkey.js', ['--home', join(dir, 'phone'), 'keygen']);
    const result = await runCli('src/cli/carkey.js', ['--home', join(dir, 'phone'), '--transport', 'ble', '--adapter', 'hci0', 'scan']);
    expect(result.code).toBe(ExitCode.unavailable);
    expect(result.stderr).toContain('hci0');
    expect(result.stderr).toContain('--transport sim');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });
});
