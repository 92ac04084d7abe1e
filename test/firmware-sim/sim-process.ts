// Test helpers: spawn the compiled hardware simulator and its ctl CLI as real
// processes, wait for readiness, and wait for hardware events. Every process
// started here is tracked so afterEach/afterAll can kill it.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ActuatorPort, HardwareEvent } from '../../src/vehicle/actuator.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SIM_MAIN = join(REPO_ROOT, 'dist/firmware-sim/hardware/main.js');
export const SIM_CTL = join(REPO_ROOT, 'dist/firmware-sim/hardware/ctl.js');

/** Fail loudly when the compiled simulator is missing. */
export function requireBuilt(): void {
  for (const file of [SIM_MAIN, SIM_CTL]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` before the firmware-sim integration tests`);
  }
}

export function socatAvailable(): boolean {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

export interface SimProcess {
  readonly child: ChildProcess;
  readonly ready: { readonly socket: string; readonly control: string; readonly pty: string | null; readonly doors: number };
  /** Everything the simulator logged on stderr so far (for failure messages). */
  stderr(): string;
  /** SIGTERM and wait for exit; resolves with the exit code (null if killed by a signal). */
  stop(): Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Kill every process these helpers started that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            done();
            return;
          }
          child.once('exit', () => done());
          child.kill('SIGKILL');
        }),
    ),
  );
  running.clear();
}

function track(child: ChildProcess): ChildProcess {
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

/** Start the simulator and resolve once it printed its ready line. */
export function startSim(args: readonly string[], timeoutMs = 10_000): Promise<SimProcess> {
  const child = track(spawn(process.execPath, [SIM_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  let stdout = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderr += text;
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return new Promise((resolveReady, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`simulator not ready within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`simulator exited (${code}) before it was ready; stderr:\n${stderr}`));
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => {
      stdout += text;
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      const ready = JSON.parse(stdout.slice(0, newline)) as SimProcess['ready'] & { ready: boolean };
      if (!ready.ready) reject(new Error(`unexpected first line: ${stdout}`));
      resolveReady({ child, ready, stderr: () => stderr, stop });
    });
  });
}

export interface CtlResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the ctl CLI to completion. */
export function runCtl(args: readonly string[]): Promise<CtlResult> {
  const child = track(spawn(process.execPath, [SIM_CTL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (t: string) => (stdout += t));
  child.stderr?.on('data', (t: string) => (stderr += t));
  return new Promise((done) => child.once('exit', (code) => done({ code, stdout, stderr })));
}

/** Collects a port's events so a test can wait for one that matches. */
export class EventRecorder {
  readonly events: HardwareEvent[] = [];
  private readonly waiters: { match: (e: HardwareEvent) => boolean; done: (e: HardwareEvent) => void }[] = [];
  readonly unsubscribe: () => void;

  constructor(port: ActuatorPort) {
    this.unsubscribe = port.onEvent((event) => {
      this.events.push(event);
      for (const waiter of [...this.waiters]) {
        if (waiter.match(event)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          waiter.done(event);
        }
      }
    });
  }

  /** Resolve with the first event (already seen after `fromIndex`, or future) that matches. */
  waitFor(match: (e: HardwareEvent) => boolean, fromIndex = 0, timeoutMs = 10_000): Promise<HardwareEvent> {
    const seen = this.events.slice(fromIndex).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((done, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching hardware event within ${timeoutMs} ms; saw ${JSON.stringify(this.events)}`)), timeoutMs);
      this.waiters.push({
        match,
        done: (e) => {
          clearTimeout(timer);
          done(e);
        },
      });
    });
  }
}

/** Poll `attempt` until it resolves (bounded); for things that become true eventually, not for timing. */
export async function eventually<T>(attempt: () => Promise<T>, timeoutMs = 10_000, pauseMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }
}
