/**
 * The btvirt launcher: clear failure reasons, private socket directories
 * (concurrent runs cannot collide), clean stop, and no emulator left behind
 * when the launching process is killed.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { startBtvirt, type Btvirt } from '../../firmware-sim/btvirt/launcher.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { announceUnavailable, distPath, emulatorOrSkip } from '../helpers/ble-process.js';

const started: Btvirt[] = [];
const tempDirs: string[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((b) => b.stop()));
  await Promise.all(tempDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function failureReason(error: unknown): unknown {
  return isCarkeyError(error, 'CK_TRANSPORT_EMULATOR_UNAVAILABLE') ? error.details?.reason : `unexpected: ${String(error)}`;
}

/** Running (a zombie waiting to be reaped by init counts as gone). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

async function until(condition: () => boolean, limitMs: number): Promise<boolean> {
  for (let waited = 0; waited <= limitMs; waited += 20) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

async function startOrSkip(skip: (note?: string) => never): Promise<Btvirt> {
  try {
    const btvirt = await startBtvirt();
    started.push(btvirt);
    return btvirt;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    announceUnavailable('btvirt launcher tests (test/ble/btvirt-launcher.test.ts)', reason);
    return emulatorOrSkip<Btvirt>(undefined, reason, skip);
  }
}

describe('btvirt launcher failures say why', () => {
  it('binary missing', async () => {
    await expect(startBtvirt({ btvirtPath: '/nonexistent/btvirt' }).catch(failureReason)).resolves.toBe('binary-missing');
  });

  it('shim missing', async () => {
    await expect(startBtvirt({ btvirtPath: '/bin/true', shimPath: '/nonexistent/libafalg_shim.so' }).catch(failureReason)).resolves.toBe('shim-missing');
  });

  it('emulator exits before creating its sockets', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'carkey-launcher-'));
    tempDirs.push(dir);
    const notALibrary = path.join(dir, 'empty.so'); // the dynamic loader ignores it with a warning
    await writeFile(notALibrary, '');
    await expect(startBtvirt({ btvirtPath: '/bin/false', shimPath: notALibrary }).catch(failureReason)).resolves.toBe('exited');
  });
});

describe('btvirt instances', () => {
  it('run side by side in private directories and leave nothing behind', async ({ skip }) => {
    const fixedBefore = existsSync('/tmp/bt-server-le');
    const first = await startOrSkip(skip);
    const second = await startOrSkip(skip);
    expect(first.leSocketPath).not.toBe(second.leSocketPath);
    expect(path.basename(first.leSocketPath)).toBe('bt-server-le');
    expect(existsSync(first.leSocketPath) && existsSync(second.leSocketPath)).toBe(true);
    if (!fixedBefore) expect(existsSync('/tmp/bt-server-le')).toBe(false);

    await first.stop();
    await first.stop(); // idempotent
    expect(existsSync(first.socketDir)).toBe(false);
    expect(await until(() => !isAlive(first.pid), 3000)).toBe(true);
    expect(existsSync(second.leSocketPath)).toBe(true); // the other run is untouched
  });

  it('die with the process that launched them', async ({ skip }) => {
    await startOrSkip(skip); // availability check (stopped in afterEach)
    const launcher = spawn(process.execPath, [distPath('firmware-sim/btvirt/main.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const [socketLine, pidLine] = await Promise.all([
        firstLine(launcher.stdout, /^CARKEY_HCI_SOCKET=(.+)$/),
        firstLine(launcher.stderr, /^btvirt pid (\d+) running/),
      ]);
      const pid = Number.parseInt(pidLine, 10);
      tempDirs.push(path.dirname(socketLine));
      expect(isAlive(pid)).toBe(true);
      launcher.kill('SIGKILL');
      expect(await until(() => !isAlive(pid), 5000)).toBe(true);
    } finally {
      launcher.kill('SIGKILL');
    }
  });
});

function firstLine(stream: NodeJS.ReadableStream | null, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    if (stream === null) {
      reject(new Error('no stream'));
      return;
    }
    const lines = createInterface({ input: stream });
    lines.on('line', (line) => {
      const match = pattern.exec(line);
      if (match?.[1] !== undefined) {
        resolve(match[1]); // before close(): its 'close' event would reject first
        lines.close();
      }
    });
    lines.on('close', () => reject(new Error(`stream ended without ${String(pattern)}`)));
  });
}
