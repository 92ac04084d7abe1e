/**
 * Spawns the compiled radio broker (dist/firmware-sim/radio/main.js) and
 * compiled radio helper programs for integration tests, in a temp dir that
 * is removed on stop. Every child is tracked so tests can kill them all.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const BROKER_MAIN = path.join(REPO_ROOT, 'dist/firmware-sim/radio/main.js');

export function compiled(relative: string): string {
  const file = path.join(REPO_ROOT, 'dist', relative);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  return file;
}

/** A child process whose stdout is read as JSON lines. */
export class JsonChild {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<() => void>();

  constructor(file: string, args: readonly string[]) {
    this.child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      resolve({ code, signal });
      this.notify();
    }));
    const stdout = this.child.stdout;
    if (stdout !== null) {
      createInterface({ input: stdout }).on('line', (line) => {
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ unparsed: line });
        }
        this.notify();
      });
    }
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Wait until a stdout line satisfies `match` (fails if the process exits first or after `timeoutMs`). */
  async waitForLine(match: (line: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found !== undefined) return found;
      if (!this.running) throw new Error(`process exited before the expected line; stdout=${JSON.stringify(this.lines)} stderr=${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for a line; stdout=${JSON.stringify(this.lines)} stderr=${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      const result = await this.exited;
      clearTimeout(timer);
      return result;
    }
    return this.exited;
  }

  private notify(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
}

export interface BrokerProcess {
  readonly dir: string;
  readonly socketPath: string;
  readonly process: JsonChild;
  readonly ready: Record<string, unknown>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startBroker(options: { config?: unknown; seed?: number; dir?: string } = {}): Promise<BrokerProcess> {
  const main = compiled('firmware-sim/radio/main.js');
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'ck-radio-'));
  const socketPath = path.join(dir, 'radio.sock');
  const args = ['--socket', socketPath];
  if (options.config !== undefined) {
    const configPath = path.join(dir, 'radio.json');
    writeFileSync(configPath, JSON.stringify(options.config));
    args.push('--config', configPath);
  }
  if (options.seed !== undefined) args.push('--seed', String(options.seed));
  const child = new JsonChild(main, args);
  let ready: Record<string, unknown>;
  try {
    ready = await child.waitForLine((line) => line.ready === true);
  } catch (error) {
    await child.stop();
    if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    socketPath,
    process: child,
    ready,
    stop: async () => {
      const result = await child.stop();
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
      return result;
    },
  };
}

/** Poll `probe` until it returns a value (10 ms steps); fails after `timeoutMs`. */
export async function eventually<T>(probe: () => T | undefined, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Settle `promise` into a value or the error it rejected with. */
export async function outcome<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}
