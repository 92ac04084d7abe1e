/**
 * Test-side control of the compiled BLE helper programs and of the btvirt
 * emulator for test/ble/*.test.ts.
 *
 * Guarantees:
 * - `HelperProcess.start` spawns `process.execPath dist/<script>` from the
 *   repository root and parses its stdout as JSON-line events; `waitFor`
 *   resolves with the first matching event (past or future) and rejects with
 *   the child's stderr if it exits first or the wait times out.
 * - `kill()` is idempotent and resolves once the child has exited.
 * - `emulatorOrSkip` makes an unavailable emulator LOUD: the reason is printed
 *   as a console.error banner; the test fails when CARKEY_REQUIRE_BTVIRT=1,
 *   and is reported as skipped (never passed) otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { findRepoRoot } from '../../firmware-sim/btvirt/launcher.js';
import type { HelperEvent } from './ble-helper-io.js';

export function repoRoot(): string {
  const root = findRepoRoot();
  if (root === undefined) throw new Error('cannot find the repository root (native/Makefile)');
  return root;
}

/** Absolute path of a compiled program, e.g. distPath('test/helpers/ble-central-probe.js'). */
export function distPath(relative: string): string {
  const file = path.join(repoRoot(), 'dist', relative);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  return file;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

type Waiter = { readonly match: (event: HelperEvent) => boolean; readonly resolve: (event: HelperEvent) => void };

export class HelperProcess {
  readonly events: HelperEvent[] = [];
  private stderrText = '';
  private exit: Exit | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly exited: Promise<Exit>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    child.stderr?.on('data', (data: Buffer) => {
      this.stderrText = (this.stderrText + data.toString('utf8')).slice(-16_384);
    });
    if (child.stdout !== null) {
      createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    }
  }

  static start(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): HelperProcess {
    const child = spawn(process.execPath, [distPath(script), ...args], {
      cwd: repoRoot(),
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    return new HelperProcess(path.basename(script), child);
  }

  stderr(): string {
    return this.stderrText;
  }

  /** First event named `event` (and matching `predicate`), already seen or yet to come. */
  waitFor(event: string, timeoutMs = 15_000, predicate: (e: HelperEvent) => boolean = () => true): Promise<HelperEvent> {
    const match = (e: HelperEvent): boolean => e.event === event && predicate(e);
    const seen = this.events.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<HelperEvent>((resolve, reject) => {
      const fail = (why: string): void => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`${this.name}: ${why} while waiting for "${event}"\nevents: ${JSON.stringify(this.events)}\nstderr: ${this.stderrText}`));
      };
      const waiter: Waiter = {
        match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => fail(`no event after ${timeoutMs} ms`), timeoutMs);
      this.waiters.add(waiter);
      void this.exited.then((exit) => {
        if (this.waiters.has(waiter)) fail(`exited (code ${exit.code ?? 'none'}, signal ${exit.signal ?? 'none'})`);
      });
    });
  }

  /** Resolves with the exit status (kills the child after `timeoutMs`). */
  async waitForExit(timeoutMs = 15_000): Promise<Exit> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Write one JSON command line to the child's stdin. */
  send(command: Record<string, unknown>): void {
    this.child.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  async kill(): Promise<void> {
    if (this.exit !== undefined) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(timer);
  }

  private onLine(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.stderrText += `[stdout, not JSON] ${line}\n`;
      return;
    }
    if (typeof parsed !== 'object' || parsed === null || typeof (parsed as { event?: unknown }).event !== 'string') return;
    const event = parsed as HelperEvent;
    this.events.push(event);
    for (const waiter of [...this.waiters]) {
      if (waiter.match(event)) {
        this.waiters.delete(waiter);
        waiter.resolve(event);
      }
    }
  }
}

/** Print the reason an emulated tier cannot run, impossible to miss in CI logs. */
export function announceUnavailable(tier: string, reason: string): void {
  const line = '!'.repeat(78);
  const required = process.env.CARKEY_REQUIRE_BTVIRT === '1';
  console.error(
    [
      line,
      `!! ${tier}: NOT RUN`,
      `!! reason: ${reason}`,
      required
        ? '!! CARKEY_REQUIRE_BTVIRT=1 is set: these tests FAIL.'
        : '!! Tests are reported as SKIPPED. Set CARKEY_REQUIRE_BTVIRT=1 to make this a failure.',
      '!! Fix: apt-get install bluez-test-tools && make -C native (see docs/ble-emulation.md)',
      line,
    ].join('\n'),
  );
}

/**
 * The emulator for this test, or: throw (CARKEY_REQUIRE_BTVIRT=1) / skip.
 * `skip` is vitest's context.skip.
 */
export function emulatorOrSkip<T>(emulator: T | undefined, reason: string | undefined, skip: (note?: string) => never): T {
  if (emulator !== undefined) return emulator;
  const why = reason ?? 'btvirt was not started';
  if (process.env.CARKEY_REQUIRE_BTVIRT === '1') {
    throw new Error(`CARKEY_REQUIRE_BTVIRT=1 but the emulated BLE tier cannot run: ${why}`);
  }
  return skip(`btvirt unavailable: ${why}`);
}
