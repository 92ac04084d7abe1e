/**
 * Runs the compiled `carkey` CLI (dist/src/cli/carkey.js) as a child process
 * for tests, asynchronously so an in-process fake car keeps running. Every
 * child is tracked; `killAllCarkey()` ends any that are still running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
export const CARKEY_MAIN = join(REPO_ROOT, 'dist/src/cli/carkey.js');

export interface CarkeyRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed as one JSON object (throws with the output when it is not) */
  json(): Record<string, unknown>;
}

const running = new Set<ChildProcess>();

export function requireBuiltCarkey(): void {
  if (!existsSync(CARKEY_MAIN)) throw new Error(`${CARKEY_MAIN} is missing: run \`npm run build\` first`);
}

/** Run `carkey ARGS` with a clean environment plus `env`; resolves when it exits. */
export function runCarkey(args: readonly string[], env: Readonly<Record<string, string>> = {}, timeoutMs = 30_000): Promise<CarkeyRun> {
  const base: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  const child = spawn(process.execPath, [CARKEY_MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...base, ...env } });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`carkey ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolvePromise({
        code,
        stdout,
        stderr,
        json: () => {
          try {
            return JSON.parse(stdout) as Record<string, unknown>;
          } catch {
            throw new Error(`carkey ${args.join(' ')}: stdout is not one JSON object\nstdout: ${stdout}\nstderr: ${stderr}`);
          }
        },
      });
    });
  });
}

export async function killAllCarkey(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((done) => {
          child.once('exit', () => done());
          child.kill('SIGKILL');
        }),
    ),
  );
  running.clear();
}
