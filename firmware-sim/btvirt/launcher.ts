/**
 * Starts BlueZ `btvirt -s` (emulated Bluetooth controllers in user space) for
 * the emulated-BLE test tier and for running carkey by hand without a radio.
 *
 * Guarantees:
 * - Each instance runs in its own fresh private directory: the LD_PRELOAD shim
 *   (native/build/libafalg_shim.so) redirects btvirt's fixed
 *   `/tmp/bt-server-*` sockets into it, so concurrent runs never collide and
 *   nothing is left in /tmp. The same shim fakes the AF_ALG sockets btvirt's
 *   LE controllers need, and makes btvirt die with its launcher.
 * - `startBtvirt` resolves only after the LE socket exists AND a probe
 *   controller answered HCI Reset with success; otherwise it stops what it
 *   started and rejects with CK_TRANSPORT_EMULATOR_UNAVAILABLE whose `details.reason`
 *   says why (binary missing, shim missing, exited, socket never appeared,
 *   controller reset the connection, probe timeout).
 * - `stop()` is idempotent: SIGTERM, SIGKILL after a grace period, then the
 *   private directory is removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CarkeyError } from '../../src/core/errors.js';
import { H4Splitter } from '../../src/transport/h4-stream.js';

export const BTVIRT_FAILURE_REASONS = ['binary-missing', 'shim-missing', 'spawn-failed', 'exited', 'socket-timeout', 'controller-reset', 'probe-timeout'] as const;
export type BtvirtFailureReason = (typeof BTVIRT_FAILURE_REASONS)[number];

function isFailureReason(value: unknown): value is BtvirtFailureReason {
  return typeof value === 'string' && (BTVIRT_FAILURE_REASONS as readonly string[]).includes(value);
}

export interface BtvirtOptions {
  /** btvirt executable; default: env CARKEY_BTVIRT, then PATH, /usr/bin, /usr/sbin. */
  readonly btvirtPath?: string;
  /** LD_PRELOAD shim; default: env CARKEY_AFALG_SHIM, then <repo>/native/build/libafalg_shim.so. */
  readonly shimPath?: string;
  /** Where the private directory is created; default os.tmpdir(). */
  readonly parentDir?: string;
  /** How long to wait for the socket and the probe reset; default 5000 ms. */
  readonly readyTimeoutMs?: number;
}

export interface Btvirt {
  /** Private directory holding the bt-server-* sockets. */
  readonly socketDir: string;
  /** `<socketDir>/bt-server-le`: each connection is a new LE controller on the shared virtual air. */
  readonly leSocketPath: string;
  readonly pid: number;
  /** Last bytes btvirt wrote to stdout/stderr (diagnostics). */
  output(): string;
  /** Stop btvirt and remove the private directory. Idempotent. */
  stop(): Promise<void>;
}

const OUTPUT_LIMIT = 64 * 1024;
const STOP_GRACE_MS = 2000;
const POLL_MS = 25;
const HCI_RESET = Uint8Array.of(0x01, 0x03, 0x0c, 0x00);

/** Find the btvirt binary, or undefined. An explicit path is the only candidate. */
export function findBtvirt(explicit?: string): string | undefined {
  if (explicit !== undefined) return isExecutableFile(explicit) ? explicit : undefined;
  const candidates = [process.env.CARKEY_BTVIRT]
    .concat((process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '').map((dir) => path.join(dir, 'btvirt')))
    .concat(['/usr/bin/btvirt', '/usr/sbin/btvirt']);
  for (const candidate of candidates) {
    if (candidate !== undefined && candidate !== '' && isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** The repository root (the directory holding native/Makefile), searched upward from this file. */
export function findRepoRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'native', 'Makefile'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Find the AF_ALG shim, or undefined. An explicit path is the only candidate. */
export function findShim(explicit?: string): string | undefined {
  if (explicit !== undefined) return existsSync(explicit) ? path.resolve(explicit) : undefined;
  const root = findRepoRoot();
  const candidates = [process.env.CARKEY_AFALG_SHIM, root === undefined ? undefined : path.join(root, 'native', 'build', 'libafalg_shim.so')];
  for (const candidate of candidates) {
    if (candidate !== undefined && candidate !== '' && existsSync(candidate)) return path.resolve(candidate);
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    const info = statSync(file);
    return info.isFile() && (info.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

function unavailable(reason: BtvirtFailureReason, detail: string): CarkeyError {
  return new CarkeyError('CK_TRANSPORT_EMULATOR_UNAVAILABLE', `${reason}: ${detail}`, { reason, detail });
}

/** Start btvirt in a private directory and wait until an LE controller answers. */
export async function startBtvirt(options: BtvirtOptions = {}): Promise<Btvirt> {
  const timeoutMs = options.readyTimeoutMs ?? 5000;
  const binary = findBtvirt(options.btvirtPath);
  if (binary === undefined) {
    throw unavailable('binary-missing', `${options.btvirtPath ?? 'btvirt'} not found (Debian: apt-get install bluez-test-tools)`);
  }
  const shim = findShim(options.shimPath);
  if (shim === undefined) {
    throw unavailable('shim-missing', `${options.shimPath ?? 'native/build/libafalg_shim.so'} not found (run: make -C native)`);
  }
  const socketDir = await mkdtemp(path.join(options.parentDir ?? os.tmpdir(), 'carkey-btvirt-'));
  const leSocketPath = path.join(socketDir, 'bt-server-le');

  let output = '';
  const collect = (data: Buffer): void => {
    output = (output + data.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  const preload = [shim, process.env.LD_PRELOAD].filter((entry) => entry !== undefined && entry !== '').join(':');
  let child: ChildProcess;
  try {
    child = spawn(binary, ['-s'], {
      cwd: socketDir,
      env: { ...process.env, LD_PRELOAD: preload, CARKEY_BTVIRT_SOCKET_DIR: socketDir, CARKEY_BTVIRT_PARENT_PID: String(process.pid) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    await rm(socketDir, { recursive: true, force: true });
    throw unavailable('spawn-failed', error instanceof Error ? error.message : String(error));
  }
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);

  let exited: string | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = signal === null ? `exit code ${code ?? 'unknown'}` : `signal ${signal}`;
      resolve();
    });
    child.once('error', (error) => {
      exited = `spawn error: ${error.message}`;
      resolve();
    });
  });
  const killOnExit = (): void => {
    if (exited === undefined) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const terminate = async (): Promise<void> => {
    if (exited === undefined) {
      child.kill('SIGTERM');
      const grace = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exitPromise;
      clearTimeout(grace);
    }
    process.removeListener('exit', killOnExit);
    await rm(socketDir, { recursive: true, force: true });
  };
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= terminate());

  try {
    await waitForSocket(leSocketPath, timeoutMs, () => exited);
    await probeController(leSocketPath, timeoutMs);
  } catch (error) {
    await stop();
    const said = output.trim();
    const reason = error instanceof CarkeyError ? error.details?.reason : undefined;
    const detail = error instanceof CarkeyError ? error.details?.detail : undefined;
    if (said !== '' && isFailureReason(reason) && typeof detail === 'string') {
      throw unavailable(reason, `${detail}; btvirt said: ${said.slice(-500)}`);
    }
    throw error;
  }

  const pid = child.pid ?? -1;
  return { socketDir, leSocketPath, pid, output: () => output, stop };
}

async function waitForSocket(socketPath: string, timeoutMs: number, exitedReason: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reason = exitedReason();
    if (reason !== undefined) throw unavailable('exited', `btvirt exited before creating its sockets (${reason})`);
    try {
      if ((await stat(socketPath)).isSocket()) return;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) {
      throw unavailable('socket-timeout', `${socketPath} did not appear within ${timeoutMs} ms (is the shim redirecting /tmp/bt-server-*?)`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Open one LE controller, send HCI Reset, expect Command Complete with status 0,
 * close it. btvirt binds its socket before it listens, so ECONNREFUSED on the
 * existing path means "not listening yet" and is retried until the deadline.
 */
export async function probeController(socketPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const outcome = await probeOnce(socketPath, Math.max(1, deadline - Date.now()));
    if (outcome === 'ok') return;
    if (outcome !== 'refused') throw outcome;
    if (Date.now() > deadline) throw unavailable('probe-timeout', `${socketPath} refused connections for ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function probeOnce(socketPath: string, timeoutMs: number): Promise<'ok' | 'refused' | CarkeyError> {
  return new Promise((resolve) => {
    const splitter = new H4Splitter();
    const socket = net.connect(socketPath);
    let settled = false;
    const finish = (outcome: 'ok' | 'refused' | CarkeyError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish(unavailable('probe-timeout', `no answer to HCI Reset on ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
    socket.on('connect', () => socket.write(HCI_RESET));
    socket.on('data', (data: Buffer) => {
      for (const packet of splitter.push(data).packets) {
        // 04 0e len ncmd opcode(03 0c) status
        if (packet[0] === 0x04 && packet[1] === 0x0e && packet[4] === 0x03 && packet[5] === 0x0c) {
          const status = packet[6];
          finish(status === 0 ? 'ok' : unavailable('controller-reset', `HCI Reset failed with status 0x${(status ?? 0xff).toString(16)}`));
        }
      }
    });
    const lost = (why: string): void =>
      finish(unavailable('controller-reset', `the LE controller dropped the connection (${why}); the kernel probably lacks AF_ALG and the shim did not take effect`));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') finish('refused');
      else lost(error.message);
    });
    socket.on('close', () => lost('closed'));
  });
}
