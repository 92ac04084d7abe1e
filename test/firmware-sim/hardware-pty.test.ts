// Integration over a real pseudo-terminal: the simulator exposes its host link
// through socat as a tty, and the driver opens it exactly as it would a UART.
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCarkeyError } from '../../src/core/errors.js';
import { openHardware } from '../../src/vehicle/hw-driver.js';
import type { ActuatorPort } from '../../src/vehicle/actuator.js';
import { EventRecorder, eventually, killAll, requireBuilt, runCtl, socatAvailable, startSim } from './sim-process.js';
import type { SimProcess } from './sim-process.js';

const HAVE_SOCAT = socatAvailable();
if (!HAVE_SOCAT) {
  console.warn(
    '\n!!! firmware-sim pty tests SKIPPED: socat is not installed. The driver\'s tty path is NOT tested.\n' +
      '!!! Install it with `apt-get install -y socat` (scripts/install.sh does this as root).\n',
  );
}

const TIMEOUT_MS = 5000;

describe.skipIf(!HAVE_SOCAT)('simulator + driver over a pty (socat)', () => {
  let dir: string;
  let sim: SimProcess;
  let socketPath: string;
  let ptyPath: string;
  const ports: ActuatorPort[] = [];

  beforeAll(async () => {
    requireBuilt();
    dir = mkdtempSync(join(tmpdir(), 'carkey-hwpty-'));
    socketPath = join(dir, 'car.sock');
    ptyPath = join(dir, 'ttyCAR');
    sim = await startSim(['--socket', socketPath, '--pty', ptyPath]);
  });

  afterAll(async () => {
    await Promise.all(ports.map((p) => p.close()));
    if (sim.child.exitCode === null) await sim.stop();
    await killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The pty is re-created after each session; wait until it is back and answering. */
  const openPty = async (): Promise<ActuatorPort> => {
    const port = await eventually(() => openHardware(ptyPath, { timeoutMs: TIMEOUT_MS }));
    ports.push(port);
    return port;
  };

  it('exposes a character device (a tty) at the --pty path', () => {
    expect(sim.ready.pty).toBe(ptyPath);
    expect(lstatSync(ptyPath).isSymbolicLink()).toBe(true);
    expect(statSync(ptyPath).isCharacterDevice()).toBe(true);
  });

  it('drives locks, drive, trunk and display over the tty and receives button/keycard events', async () => {
    const hw = await openPty();
    const recorder = new EventRecorder(hw);
    await hw.unlock(['front-right']);
    await hw.setDrive(true);
    await hw.display(['654321', 'Confirm on phone']);
    await hw.openTrunk();
    await recorder.waitFor((e) => e.kind === 'trunk' && e.state === 'open');
    expect(await hw.state()).toEqual({
      doors: { 'front-left': 'locked', 'front-right': 'unlocked', 'rear-left': 'locked', 'rear-right': 'locked' },
      positions: { 'front-left': 'closed', 'front-right': 'closed', 'rear-left': 'closed', 'rear-right': 'closed' },
      drive: 'ready',
      trunk: 'open',
      display: ['654321', 'Confirm on phone'],
    });
    expect((await runCtl(['--socket', socketPath, 'press-button'])).code).toBe(0);
    expect((await runCtl(['--socket', socketPath, 'tap-keycard', 'CARD-42'])).code).toBe(0);
    await recorder.waitFor((e) => e.kind === 'keycard' && e.cardId === 'CARD-42');
    expect(recorder.events.filter((e) => e.kind === 'button')).toEqual([{ kind: 'button', press: 'short' }]);
    await hw.close();
  });

  it('can be opened again after the previous host closed it (same controller state)', async () => {
    const hw = await openPty();
    expect((await hw.state()).doors['front-right']).toBe('unlocked');
    await hw.close();
  });

  it('is refused with BUSY while another host holds the socket', async () => {
    const socketHost = await eventually(() => openHardware(socketPath, { timeoutMs: TIMEOUT_MS }));
    ports.push(socketHost);
    try {
      // Right after the previous session the pty may still be being re-created
      // (ENOENT, or a hang-up from the old socat): retry until the new one answers.
      const refusal = await eventually(async () => {
        try {
          const unexpected = await openHardware(ptyPath, { timeoutMs: TIMEOUT_MS });
          ports.push(unexpected);
        } catch (err) {
          if (isCarkeyError(err, 'CK_HW_UNAVAILABLE') && err.message.includes('BUSY')) return err;
          throw err;
        }
        throw new Error('the pty host was accepted while the socket host was connected');
      });
      expect(refusal.message).toContain('another host is connected');
    } finally {
      await socketHost.close();
    }
    const hw = await openPty();
    expect((await hw.state()).drive).toBe('ready');
    await hw.close();
  });

  it('reports link down when the simulator stops, and removes the pty link', async () => {
    const hw = await openPty();
    const recorder = new EventRecorder(hw);
    expect(await sim.stop()).toBe(0);
    await recorder.waitFor((e) => e.kind === 'link' && e.state === 'down');
    expect(existsSync(ptyPath)).toBe(false);
    expect(existsSync(socketPath)).toBe(false);
    await hw.close();
  });
});
