/**
 * Keyless peers cannot grow the car's disk, and a full disk never blocks an
 * owner, through real processes (carkeyd, sim radio, body controller, the
 * `carkey` and `carkeyd` CLIs):
 * - refusals to unrecognised peers become one 'refusal-summary' entry per
 *   period, not one audit row each;
 * - the audit log stays within auditMaxEntries, and after pruning it still
 *   verifies on the car (`carkeyd audit verify`) and from the owner's phone
 *   over BLE (`carkey audit --verify`), while running and after a restart;
 * - with the state directory on a small tmpfs filled up while the car runs,
 *   the owner still unlocks, /state and /metrics report the audit failure,
 *   the daemon survives its timers, restarts on the full disk (also with no
 *   room for SQLite's shared-memory file) and serves the owner; once space
 *   is back, audit resumes and the chain verifies.
 *
 * The full-disk part needs root (mount -t tmpfs); without it it is skipped
 * with the reason in its name.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromHex } from '../../src/core/bytes.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopProgram, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { rawRequest, type RawOutcome } from '../helpers/raw-phone.js';
import { openRawSession } from '../helpers/raw-session.js';

const crypto = createCrypto('node');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cli(rig: CarRig, home: string, ...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, '--quiet', ...args]);
}

async function pairOwner(rig: CarRig): Promise<Uint8Array> {
  expect((await cli(rig, 'owner', 'keygen')).code).toBe(0);
  await hardwareCtl(rig, 'press-button');
  const pairing = cli(rig, 'owner', 'pair', '--yes');
  for (let i = 0; i < 100; i++) {
    const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
    if (state.display.join(' ').includes('Hold button')) break;
    await sleep(100);
  }
  await hardwareCtl(rig, 'long-press');
  const paired = await pairing;
  expect(paired.code, paired.stderr).toBe(0);
  const store = new KeyStore(join(rig.dir, 'owner'), { crypto, random: (n) => new Uint8Array(randomBytes(n)), clock: () => Date.now(), sleep });
  return store.unlockSeed(() => Promise.resolve(undefined));
}

const carKey = (rig: CarRig): Uint8Array => fromHex(String(rig.daemon?.ready.vehicleKey)) ?? new Uint8Array(32);

async function state(rig: CarRig): Promise<Record<string, unknown>> {
  return (await (await fetch(`${String(rig.daemon?.ready.status)}/state`)).json()) as Record<string, unknown>;
}

async function metrics(rig: CarRig): Promise<string> {
  return (await fetch(`${String(rig.daemon?.ready.status)}/metrics`)).text();
}

async function locks(rig: CarRig): Promise<string[]> {
  return Object.values((JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { locks: Record<string, string> }).locks);
}

/** A phone with a random key the car has never seen: one refusal each. */
function keylessRequest(rig: CarRig): Promise<RawOutcome> {
  return rawRequest({ crypto, radio: rig.radio, carIdentityKey: carKey(rig), identitySeed: new Uint8Array(randomBytes(32)), credential: { kind: 'owner' }, command: 'unlock' });
}

interface Entry {
  readonly seq: number;
  readonly kind: string;
  readonly fields: Record<string, unknown>;
}

describe('keyless peers cannot grow the audit log; the log stays within its cap and verifies', () => {
  let rig: CarRig;
  let ownerSeed: Uint8Array;

  beforeAll(async () => {
    rig = await startRig({ config: { auditCheckpointEvery: 8, auditMaxEntries: 100, auditSummaryEveryMs: 1000, perLinkRate: 500, perLinkBurst: 500, globalRate: 1000, globalBurst: 1000 } });
    await startDaemonProcess(rig);
    ownerSeed = await pairOwner(rig);
  }, 60_000);

  afterAll(async () => {
    await stopRig(rig);
  });

  it('refusals to unrecognised peers are one summary entry, not one row each', async () => {
    const before = Number((await state(rig)).auditLastSeq);
    const started = performance.now();
    let refused = 0;
    for (let batch = 0; batch < 10; batch++) {
      const outcomes = await Promise.all([0, 1, 2].map(() => keylessRequest(rig)));
      refused += outcomes.filter((o) => o.kind === 'refused' && o.code === 'CK_PROTO_REFUSED').length;
    }
    const elapsedMs = performance.now() - started;
    expect(refused).toBeGreaterThan(20);
    await sleep(1500); // one summary period
    const audit = await cli(rig, 'owner', 'audit', '--json', '--from', String(before + 1));
    expect(audit.code, audit.stderr).toBe(0);
    const entries = (JSON.parse(audit.stdout) as { entries: Entry[] }).entries;
    const perRefusal = entries.filter((e) => e.kind === 'decision' && e.fields.reason === 'unknown-key');
    expect(perRefusal).toEqual([]);
    const summaries = entries.filter((e) => e.kind === 'refusal-summary');
    const counted = summaries.reduce((sum, e) => sum + Number(e.fields['unknown-key'] ?? 0), 0);
    expect(counted).toBe(refused);
    // At most one summary per period (plus one at the end and the owner's own audit read), whatever the number of refusals.
    const written = Number((await state(rig)).auditLastSeq) - before;
    expect(written).toBeLessThanOrEqual(Math.ceil(elapsedMs / 1000) + 3);
    expect(written).toBeLessThan(refused);
  }, 60_000);

  it('the log is pruned to auditMaxEntries and still verifies on the car and over BLE', async () => {
    const session = await openRawSession({ crypto, radio: rig.radio, carIdentityKey: carKey(rig), identitySeed: ownerSeed, credential: { kind: 'owner' }, command: 'status' });
    try {
      for (let i = 0; i < 250; i++) expect(await session.command('status')).toMatchObject({ kind: 'result', result: { status: 'ok' } });
    } finally {
      await session.close();
    }
    await sleep(1500); // housekeeping prunes
    const after = await state(rig);
    expect(Number(after.auditLastSeq)).toBeGreaterThan(250);
    expect(Number(after.auditEntries)).toBeLessThanOrEqual(101);
    expect(await metrics(rig)).toMatch(/carkey_audit_pruned_entries_total [1-9]/);

    const local = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir, '--json']);
    expect(local.code, local.stdout + local.stderr).toBe(0);
    const verified = JSON.parse(local.stdout) as { anchorSeq: number; firstSeq: number; entries: number };
    expect(verified.anchorSeq).toBeGreaterThan(0);
    expect(verified.firstSeq).toBe(verified.anchorSeq + 1);
    const text = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir]);
    expect(text.stdout).toMatch(/pruned/);
    const remote = await cli(rig, 'owner', 'audit', '--verify', '--json');
    expect(remote.code, remote.stderr).toBe(0);
    const phone = JSON.parse(remote.stdout) as { verified: { anchorSeq: number }; entries: Entry[] };
    expect(phone.verified.anchorSeq).toBeGreaterThan(0);
    expect(phone.entries.some((e) => e.kind === 'audit-pruned')).toBe(true);

    expect(await stopProgram(rig.daemon)).toBe(0);
    expect((await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', rig.stateDir])).code).toBe(0);
    await startDaemonProcess(rig);
    expect((await cli(rig, 'owner', 'audit', '--verify')).code).toBe(0);
  }, 120_000);
});

/** Mount a 2 MiB tmpfs at `dir`, or say why not. */
function mountTmpfs(dir: string): string | undefined {
  if (process.getuid?.() !== 0) return 'not root, cannot mount a small tmpfs';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed: ${(error as Error).message.split('\n')[0] ?? ''}`;
  }
}

function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    // not mounted
  }
}

/** Can this machine mount a tmpfs? Decided at collection time (mount, then unmount at once). */
function mountProblemHere(): string | undefined {
  const probe = mkdtempSync(join(tmpdir(), 'carkey-mount-probe-'));
  try {
    const problem = mountTmpfs(probe);
    if (problem === undefined) unmount(probe);
    return problem;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Write a file until the filesystem is full (ENOSPC). */
function fillUp(path: string): number {
  const fd = openSync(path, 'w');
  let written = 0;
  try {
    for (const size of [1 << 16, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 0x55);
      for (;;) {
        try {
          written += writeSync(fd, chunk);
        } catch {
          break;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

const mountProblem = mountProblemHere();

describe.skipIf(mountProblem !== undefined)(`a full state disk never blocks the owner${mountProblem === undefined ? '' : ` (skipped: ${mountProblem})`}`, () => {
  let rig: CarRig;
  const fsRoot = mkdtempSync(join(tmpdir(), 'carkey-fullfs-'));
  const mountPoint = join(fsRoot, 'mnt');
  const stateDir = join(mountPoint, 'state');
  const filler = join(mountPoint, 'filler');

  beforeAll(async () => {
    mkdirSync(mountPoint);
    const problem = mountTmpfs(mountPoint);
    if (problem !== undefined) throw new Error(problem);
    rig = await startRig({ config: { stateDir, auditSummaryEveryMs: 1000 } });
    await startDaemonProcess(rig);
    await pairOwner(rig);
    expect((await cli(rig, 'owner', 'unlock')).code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await stopRig(rig);
    unmount(mountPoint);
    rmSync(fsRoot, { recursive: true, force: true });
  });

  it('the owner unlocks on a full disk; status and metrics report the audit failure; the daemon survives its timers', async () => {
    expect(fillUp(filler)).toBeGreaterThan(0);
    await cli(rig, 'owner', 'lock');
    const unlock = await cli(rig, 'owner', 'unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(await locks(rig)).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    const status = await state(rig);
    expect(Number(status.auditFailures)).toBeGreaterThan(0);
    expect(status).toMatchObject({ auditDegraded: true, auditLastError: { code: 'CK_STORE_IO', sqlite: 'SQLITE_FULL' } });
    const text = await metrics(rig);
    expect(text).toMatch(/carkey_audit_failures_total\{code="CK_STORE_IO"\} [1-9]/);
    expect(text).toMatch(/carkey_audit_degraded 1/);
    // A refusal makes the housekeeping timer try (and fail) to write a summary every second.
    await keylessRequest(rig);
    await sleep(3500);
    expect(rig.daemon?.child.exitCode).toBe(null);
    expect((await cli(rig, 'owner', 'lock')).code).toBe(0);
  }, 60_000);

  it('restarts on the full disk and serves the owner', async () => {
    expect(await stopProgram(rig.daemon)).toBe(0);
    await startDaemonProcess(rig);
    const unlock = await cli(rig, 'owner', 'unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(await locks(rig)).toContain('unlocked');
  }, 60_000);

  it('comes up even with no room for the shared-memory file, and audit resumes once space is back', async () => {
    // A clean stop with space removes the WAL and -shm; then the disk fills while the car is off.
    rmSync(filler);
    expect(await stopProgram(rig.daemon)).toBe(0);
    fillUp(filler);
    await startDaemonProcess(rig);
    expect(await state(rig)).toMatchObject({ storeSharedMemory: false });
    await cli(rig, 'owner', 'lock');
    const unlock = await cli(rig, 'owner', 'unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    expect(await locks(rig)).toContain('unlocked');
    rmSync(filler);
    expect((await cli(rig, 'owner', 'lock')).code).toBe(0);
    expect(await state(rig)).toMatchObject({ auditDegraded: false });
    expect(await stopProgram(rig.daemon)).toBe(0);
    const verify = await runCli('src/cli/carkeyd.js', ['audit', 'verify', '--state', stateDir, '--json']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    await startDaemonProcess(rig);
  }, 90_000);
});
