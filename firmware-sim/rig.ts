/**
 * The simulated car rig: real processes over real sockets. Starts the sim
 * radio broker, the simulated body controller and carkeyd as separate
 * processes (compiled dist/ programs), runs the `carkey` CLI as a user would,
 * and drives the car's button/keycard through the hardware control CLI.
 * Used by the demo (`npm run demo`) and the end-to-end tests.
 *
 * Guarantees: every process it starts is killed in `stop()`; every temp dir
 * is removed; a process that exits early or never prints its ready line fails
 * the test with its stderr attached.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** The repository root, found from this file in source (firmware-sim/) or compiled (dist/firmware-sim/) form. */
function findRepo(start: string): string {
  let dir = start;
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the carkey repository above ${start}`);
    dir = parent;
  }
  return dir;
}

export const REPO = findRepo(import.meta.dirname);
export const DIST = join(REPO, 'dist');

export interface Started {
  readonly child: ChildProcess;
  readonly ready: Record<string, unknown>;
  readonly stderr: () => string;
}

/** Spawn a compiled program and wait for its `{"ready":true}` line on stdout. */
export function startProgram(script: string, args: readonly string[], options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Started> {
  const child = spawn(process.execPath, [join(DIST, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (data: Buffer) => {
    stderr += data.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} did not become ready in time\n${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.stdout.on('data', (data: Buffer) => {
      stdout += data.toString();
      const line = stdout.split('\n').find((l) => l.includes('"ready":true'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolvePromise({ child, ready: JSON.parse(line) as Record<string, unknown>, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before it was ready\n${stderr}`));
    });
  });
}

/** One chunk of a program's output, in the order it arrived. */
export interface OutputChunk {
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved in arrival order (progress before the result). */
  readonly output: readonly OutputChunk[];
}

/** Run a compiled CLI to completion. */
export function runCli(script: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [join(DIST, script), ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stdout = '';
  let stderr = '';
  const output: OutputChunk[] = [];
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    output.push({ stream: 'stdout', text: d.toString() });
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    output.push({ stream: 'stderr', text: d.toString() });
  });
  child.stdin.end(options.input ?? '');
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    // 'close', not 'exit': the streams are drained by then, so no tail of the output is lost.
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr, output });
    });
  });
}

export async function stopProgram(started: Started | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (started === undefined || started.child.exitCode !== null) return started?.child.exitCode ?? null;
  const exited = new Promise<number | null>((r) => started.child.once('exit', (code) => r(code)));
  started.child.kill(signal);
  const timer = setTimeout(() => started.child.kill('SIGKILL'), 5000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

export interface CarRig {
  readonly dir: string;
  readonly radio: string;
  readonly hardware: string;
  readonly stateDir: string;
  readonly configPath: string;
  radioProc: Started | undefined;
  hardwareProc: Started | undefined;
  daemon: Started | undefined;
}

export interface RigOptions {
  readonly config?: Record<string, unknown>;
}

/** Temp dir with the radio broker and the hardware sim running; carkeyd not yet. */
export async function startRig(options: RigOptions = {}): Promise<CarRig> {
  const dir = mkdtempSync(join(tmpdir(), 'carkey-e2e-'));
  const rig: CarRig = {
    dir,
    radio: join(dir, 'radio.sock'),
    hardware: join(dir, 'hw.sock'),
    stateDir: join(dir, 'car-state'),
    configPath: join(dir, 'carkeyd.json'),
    radioProc: undefined,
    hardwareProc: undefined,
    daemon: undefined,
  };
  writeFileSync(
    rig.configPath,
    JSON.stringify({
      transport: 'sim',
      radio: rig.radio,
      hardware: rig.hardware,
      stateDir: rig.stateDir,
      name: 'Test Car',
      statusPort: 0,
      logLevel: 'info',
      keycards: ['card-1'],
      ...options.config,
    }),
  );
  rig.radioProc = await startProgram('firmware-sim/radio/main.js', ['--socket', rig.radio, '--seed', '7']);
  rig.hardwareProc = await startProgram('firmware-sim/hardware/main.js', ['--socket', rig.hardware]);
  return rig;
}

/** `carkeyd init` with the rig's config (creates the car identity; a no-op when it exists), then `carkeyd run`. */
export async function startDaemonProcess(rig: CarRig, options: { env?: NodeJS.ProcessEnv } = {}): Promise<Started> {
  const init = await runCli('src/cli/carkeyd.js', ['init', '--config', rig.configPath, '--log-level', 'warn'], options.env === undefined ? {} : { env: options.env });
  if (init.code !== 0) throw new Error(`carkeyd init exited with ${init.code}\n${init.stderr}`);
  rig.daemon = await startProgram('src/cli/carkeyd.js', ['--config', rig.configPath], options.env === undefined ? {} : { env: options.env });
  return rig.daemon;
}

export async function stopRig(rig: CarRig | undefined): Promise<void> {
  if (rig === undefined) return;
  await stopProgram(rig.daemon);
  await stopProgram(rig.hardwareProc);
  await stopProgram(rig.radioProc);
  rmSync(rig.dir, { recursive: true, force: true });
}

/** Act on the car as a person: press-button, long-press, tap-keycard ID, display, state. */
export function hardwareCtl(rig: CarRig, ...args: string[]): Promise<CliResult> {
  return runCli('firmware-sim/hardware/ctl.js', ['--socket', rig.hardware, ...args]);
}
