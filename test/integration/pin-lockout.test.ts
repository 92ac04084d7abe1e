/**
 * The start-PIN lockout is per key, through real processes (carkeyd, sim
 * radio, body controller, the `carkey` CLI): a grantee allowed to start who
 * sends five wrong PINs locks out only itself; the owner's right PIN still
 * starts the car.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.js';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';

let rig: CarRig;

function carkey(home: string, ...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--quiet', ...args]);
}

async function drive(): Promise<string> {
  return (JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { drive: string }).drive;
}

describe('start-PIN lockout per key', () => {
  beforeAll(async () => {
    rig = await startRig({ config: { startPin: '4711' } });
    await startDaemonProcess(rig);
    for (const home of ['owner', 'guest']) expect((await carkey(home, 'keygen')).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('owner', 'pair', '--yes');
    for (let i = 0; i < 100; i++) {
      const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
      if (state.display.join(' ').includes('Hold button')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await hardwareCtl(rig, 'long-press');
    expect((await pairing).code).toBe(0);
    const who = JSON.parse((await carkey('guest', 'whoami', '--json')).stdout) as { publicKey: string };
    // Guests may start (role mask includes start), so the guest reaches the PIN check.
    const share = await carkey('owner', 'share', '--role', 'guest', '--until', '+1d', '--to', who.publicKey, '--json');
    expect(share.code, share.stderr).toBe(0);
    expect((await carkey('guest', 'accept', (JSON.parse(share.stdout) as { share: string }).share)).code).toBe(0);
  }, 90_000);

  afterAll(async () => {
    await stopRig(rig);
  });

  it("a grantee's five wrong PINs lock out the grantee, not the owner", async () => {
    for (let i = 0; i < 5; i++) {
      const wrong = await carkey('guest', 'start', '--pin', `000${i}`);
      expect(wrong.code, wrong.stderr).toBe(ExitCode.denied);
    }
    // The grantee is locked out now: even the right PIN is refused, and the phone is told so and for how long
    // (not "this command needs the PIN").
    const locked = await carkey('guest', 'start', '--pin', '4711');
    expect(locked.code).toBe(ExitCode.denied);
    expect(locked.stderr).toMatch(/locked out after too many wrong PINs for [1-5] min/);
    expect(locked.stderr).toContain('next: too many wrong PINs from this key');
    expect(locked.stderr).not.toContain('add --pin');
    const lockedJson = JSON.parse((await carkey('guest', 'start', '--pin', '4711', '--json')).stdout) as { error: { details: { category: string; retryAfterSeconds: number } } };
    expect(lockedJson.error.details.category).toBe('locked-out');
    expect(lockedJson.error.details.retryAfterSeconds).toBeGreaterThan(0);
    expect(lockedJson.error.details.retryAfterSeconds).toBeLessThanOrEqual(300);
    // A wrong PIN before the lockout was told it was wrong, not locked out.
    expect((await carkey('owner', 'start', '--pin', '0000')).stderr).toContain('add --pin');
    expect(await drive()).toBe('off');
    // The owner was not the one failing: the right PIN starts the car.
    const owner = await carkey('owner', 'start', '--pin', '4711');
    expect(owner.code, owner.stderr).toBe(0);
    expect(await drive()).toBe('ready');
    const audit = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir, '--json']);
    expect(audit.code, audit.stderr).toBe(0);
  }, 90_000);
});
