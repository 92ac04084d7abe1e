/**
 * Exposes the simulator's host socket as a pseudo-terminal, so the daemon's
 * driver can be exercised on a real tty exactly as on a UART.
 *
 * Guarantees:
 * - Uses `socat PTY,link=<path>,rawer,echo=0,wait-slave UNIX-CONNECT:<socket>`:
 *   socat connects to the host socket only once a process opens the pty, and
 *   exits when that process closes it. Opening the pty is therefore "plugging a
 *   host into the UART", and the one-host rule of the host socket applies.
 * - After each session the bridge re-creates the pty (a fresh /dev/pts/N behind
 *   the same symlink); repeated quick failures back off up to 5 s.
 * - `startPtyBridge` resolves only once the symlink exists; it rejects with a
 *   clear message when socat is missing or cannot start.
 * - `close()` stops socat (the one child this module spawned) and removes the
 *   symlink; it is idempotent.
 */

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { lstat, unlink } from 'node:fs/promises';
import { CarkeyError } from '../../src/core/errors.js';
import type { SimLogger } from './sim-log.js';

export interface PtyBridgeOptions {
  /** Where the pty symlink appears. */
  readonly linkPath: string;
  /** The simulator's host socket. */
  readonly socketPath: string;
  readonly logger: SimLogger;
}

export interface PtyBridge {
  readonly linkPath: string;
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 5000;
const POLL_MS = 20;
const MAX_BACKOFF_MS = 5000;
/** socat's own options cannot quote these characters inside an address. */
const UNSAFE_FOR_SOCAT = /[,:!'"\\\s]/;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function isSymlink(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Remove a stale symlink left by a crashed run; refuse to touch anything else. */
async function clearStaleLink(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isSymbolicLink()) throw new CarkeyError('CK_CONFIG_INVALID', `--pty ${path} exists and is not a symlink; refusing to replace it`);
    await unlink(path);
  } catch (err) {
    if (err instanceof CarkeyError) throw err;
    // ENOENT: nothing to clear
  }
}

class SocatPtyBridge implements PtyBridge {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoffMs = 0;
  private lastStderr = '';

  constructor(private readonly options: PtyBridgeOptions) {}

  get linkPath(): string {
    return this.options.linkPath;
  }

  async start(): Promise<void> {
    const { linkPath, socketPath } = this.options;
    if (UNSAFE_FOR_SOCAT.test(linkPath) || UNSAFE_FOR_SOCAT.test(socketPath)) {
      throw new CarkeyError('CK_CONFIG_INVALID', 'the --pty and --socket paths must not contain , : ! quotes, backslashes or spaces (socat address syntax)');
    }
    await clearStaleLink(linkPath);
    const child = this.spawnSocat();
    const spawnError = new Promise<never>((_, reject) => {
      child.once('error', (err) => reject(new CarkeyError('CK_CONFIG_INVALID', `cannot run socat (install it: apt-get install socat): ${err.message}`)));
      child.once('exit', () => reject(new CarkeyError('CK_CONFIG_INVALID', `socat exited at start: ${this.lastStderr.trim() || 'no output'}`)));
    });
    spawnError.catch(() => undefined);
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      while (!(await isSymlink(linkPath))) {
        if (Date.now() > deadline) throw new CarkeyError('CK_CONFIG_INVALID', `socat did not create ${linkPath} within ${START_TIMEOUT_MS} ms`);
        await Promise.race([sleep(POLL_MS), spawnError]);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  private spawnSocat(): ChildProcess {
    const { linkPath, socketPath, logger } = this.options;
    const spawnedAt = Date.now();
    const child = spawn('socat', [`PTY,link=${linkPath},rawer,echo=0,wait-slave,pty-interval=0.05`, `UNIX-CONNECT:${socketPath}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    this.lastStderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      this.lastStderr = (this.lastStderr + text).slice(-2000);
    });
    child.on('error', (err) => logger.warn('socat failed to run', { error: err.message }));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      const quickFailure = code !== 0 && Date.now() - spawnedAt < 1000;
      this.backoffMs = quickFailure ? Math.min(Math.max(this.backoffMs * 2, 100), MAX_BACKOFF_MS) : 0;
      const level = quickFailure ? 'warn' : 'info';
      logger[level]('pty session ended; re-creating the pty', { code, signal, retryInMs: this.backoffMs, socat: this.lastStderr.trim().slice(-300) });
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (!this.stopping) this.spawnSocat();
      }, this.backoffMs);
    });
    return child;
  }

  async close(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(2000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    this.child = undefined;
    if (await isSymlink(this.options.linkPath)) await unlink(this.options.linkPath).catch(() => undefined);
  }
}

/** Start socat and wait until the pty symlink exists. */
export async function startPtyBridge(options: PtyBridgeOptions): Promise<PtyBridge> {
  const bridge = new SocatPtyBridge(options);
  await bridge.start();
  return bridge;
}
