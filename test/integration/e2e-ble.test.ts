/**
 * The unlock story of e2e-sim.test.ts, over real BLE stacks: carkeyd with its
 * real bleno peripheral and the `carkey` CLI with its real noble central, each
 * on its own BlueZ btvirt emulated LE controller sharing one virtual air, plus
 * the simulated body controller. Pairing, unlock, lock and status as a user
 * types them.
 *
 * If btvirt cannot start, a banner says why; the tests FAIL when
 * CARKEY_REQUIRE_BTVIRT=1 (CI) and are SKIPPED otherwise.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/core/errors.js';
import { startBtvirt, type Btvirt } from '../../firmware-sim/btvirt/launcher.js';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { announceUnavailable, emulatorOrSkip } from '../helpers/ble-process.js';

let btvirt: Btvirt | undefined;
let unavailable: string | undefined;
let rig: CarRig | undefined;

function carkey(socket: string, home: string, ...args: string[]): Promise<CliResult> {
  if (rig === undefined) throw new Error('rig not started');
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'ble', '--hci-socket', socket, '--quiet', ...args], { timeoutMs: 60_000 });
}

async function displayShows(text: string): Promise<void> {
  if (rig === undefined) throw new Error('rig not started');
  for (let i = 0; i < 150; i++) {
    const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
    if (state.display.join(' ').includes(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`display never showed "${text}"`);
}

describe('carkey end to end over real bleno + noble on emulated controllers', () => {
  beforeAll(async () => {
    try {
      btvirt = await startBtvirt();
    } catch (error) {
      unavailable = error instanceof Error ? error.message : String(error);
      announceUnavailable('BLE end-to-end tier (test/integration/e2e-ble.test.ts)', unavailable);
      return;
    }
    rig = await startRig({ config: { transport: 'ble', hciSocket: btvirt.leSocketPath } });
    await startDaemonProcess(rig);
  }, 60_000);

  afterAll(async () => {
    await stopRig(rig);
    await btvirt?.stop();
  });

  it('pairs, unlocks, locks and reads status through the real BLE stacks', async ({ skip }) => {
    const emulator = emulatorOrSkip(btvirt, unavailable, skip);
    const socket = emulator.leSocketPath;
    if (rig === undefined) throw new Error('rig not started');
    expect((await carkey(socket, 'owner', 'keygen')).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey(socket, 'owner', 'pair', '--yes');
    await displayShows('Hold button');
    await hardwareCtl(rig, 'long-press');
    const paired = await pairing;
    expect(paired.code, paired.stderr).toBe(0);

    const unlock = await carkey(socket, 'owner', 'unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    let state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { locks: Record<string, string> };
    expect(Object.values(state.locks)).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);

    expect((await carkey(socket, 'owner', 'lock')).code).toBe(0);
    state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { locks: Record<string, string> };
    expect(Object.values(state.locks)).toEqual(['locked', 'locked', 'locked', 'locked']);

    const status = await carkey(socket, 'owner', 'status', '--json');
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ ok: true, status: { keyListVersion: 1 } });
  }, 120_000);

  // The car answers a revoked key with REFUSE and drops the link at once; bleno must
  // hand the queued notification to the controller before the disconnect, or the phone
  // sees only the link drop (CK_TRANSPORT_DISCONNECTED, exit 6, "try again closer").
  it('a revoked key gets the refusal (CK_PROTO_REFUSED, exit 3), not a dropped link', async ({ skip }) => {
    const emulator = emulatorOrSkip(btvirt, unavailable, skip);
    const socket = emulator.leSocketPath;
    if (rig === undefined) throw new Error('rig not started');
    expect((await carkey(socket, 'friend', 'keygen')).code).toBe(0);
    const who = JSON.parse((await carkey(socket, 'friend', 'whoami', '--json')).stdout) as { publicKey: string };
    const share = await carkey(socket, 'owner', 'share', '--role', 'guest', '--until', '+1d', '--to', who.publicKey, '--out', join(rig.dir, 'friend.carkey'), '--json');
    expect(share.code, share.stderr).toBe(0);
    expect((await carkey(socket, 'friend', 'accept', join(rig.dir, 'friend.carkey'))).code).toBe(0);
    const allowed = await carkey(socket, 'friend', 'unlock');
    expect(allowed.code, allowed.stderr).toBe(0);

    const revoke = await carkey(socket, 'owner', 'revoke', who.publicKey, '--json');
    expect(revoke.code, revoke.stderr).toBe(0);
    for (let attempt = 0; attempt < 3; attempt++) {
      const refused = await carkey(socket, 'friend', 'unlock', '--json');
      expect(refused.code, refused.stderr).toBe(ExitCode.denied);
      expect(JSON.parse(refused.stdout)).toMatchObject({ ok: false, error: { code: 'CK_PROTO_REFUSED' } });
    }
  }, 120_000);
});
