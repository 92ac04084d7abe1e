/**
 * Tests of the benchmark harness: statistics, argument parsing, registry and
 * selection, the timing loop under an injected fake clock (so nothing depends
 * on real time), and the compiled runner end to end (dist/test/bench/run.js,
 * built by `npm run build`) with a tiny duration, asserting only the shape.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BenchRegistry,
  DEFAULT_SECONDS,
  formatDuration,
  formatReport,
  measure,
  parseBenchArgs,
  percentile,
  runBenchmarks,
  summarize,
  type BenchArgs,
  type NanoClock,
  type TimingOptions,
} from './harness.js';

/** A clock that advances `step` ns on every read; `advance` moves it from inside an op. */
function fakeClock(step = 1000n): { now: NanoClock; advance: (ns: bigint) => void } {
  let t = 0n;
  return {
    now: () => {
      const value = t;
      t += step;
      return value;
    },
    advance: (ns) => {
      t += ns;
    },
  };
}

function options(now: NanoClock, overrides: Partial<TimingOptions> = {}): TimingOptions {
  return { seconds: 100e-6, warmupSeconds: 0, minSamples: 20, minWarmup: 3, maxSamples: 1000, now, ...overrides };
}

describe('statistics', () => {
  it('percentile is nearest-rank', () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
    expect(() => percentile([], 0.5)).toThrow(RangeError);
  });

  it('summarize sorts, and derives ops/s from the wall time', () => {
    const r = summarize('x', [5, 1, 3, 2, 4], 20);
    expect(r).toEqual({ name: 'x', samples: 5, elapsedNs: 20, opsPerSecond: 250_000_000, meanNs: 3, medianNs: 3, p99Ns: 5, minNs: 1, maxNs: 5, cpuNsPerOp: undefined });
    expect(summarize('y', [1, 1], 4, 10).cpuNsPerOp).toBe(5);
  });

  it('formats durations in sensible units', () => {
    expect(formatDuration(850)).toBe('850 ns');
    expect(formatDuration(1750)).toBe('1.75 µs');
    expect(formatDuration(48_100)).toBe('48.1 µs');
    expect(formatDuration(2_345_000)).toBe('2.35 ms');
    expect(formatDuration(19_500_000)).toBe('19.5 ms');
    expect(formatDuration(3e9)).toBe('3.00 s');
  });
});

describe('parseBenchArgs', () => {
  const defaults: BenchArgs = { json: false, filter: undefined, seconds: DEFAULT_SECONDS, list: false, help: false };

  it.each([
    { argv: [], expected: defaults },
    { argv: ['--json'], expected: { ...defaults, json: true } },
    { argv: ['--filter', 'verify', '--seconds', '0.5'], expected: { ...defaults, filter: 'verify', seconds: 0.5 } },
    { argv: ['--filter=sign/node', '--seconds=3', '--json'], expected: { ...defaults, filter: 'sign/node', seconds: 3, json: true } },
    { argv: ['--list'], expected: { ...defaults, list: true } },
    { argv: ['-h'], expected: { ...defaults, help: true } },
  ])('accepts $argv', ({ argv, expected }) => {
    expect(parseBenchArgs(argv)).toEqual({ ok: true, value: expected });
  });

  it.each([['--seconds'], ['--seconds', 'abc'], ['--seconds', '0'], ['--seconds', '-1'], ['--seconds', 'Infinity'], ['--seconds', ''], ['--filter'], ['--filter='], ['--bogus'], ['verify']])(
    'refuses %j with CK_USAGE',
    (...argv) => {
      const result = parseBenchArgs(argv);
      expect(result.ok ? 'ok' : result.error.code).toBe('CK_USAGE');
    },
  );
});

describe('BenchRegistry', () => {
  it('keeps registration order and filters by case-insensitive substring', () => {
    const registry = new BenchRegistry();
    for (const name of ['ed25519-sign/node', 'ed25519-sign/tweetnacl', 'sha512-1KiB/node']) registry.register(name, () => 0);
    expect(registry.select().map((b) => b.name)).toEqual(['ed25519-sign/node', 'ed25519-sign/tweetnacl', 'sha512-1KiB/node']);
    expect(registry.select('/NODE').map((b) => b.name)).toEqual(['ed25519-sign/node', 'sha512-1KiB/node']);
    expect(registry.select('nothing')).toEqual([]);
  });

  it('refuses a duplicate or empty name', () => {
    const registry = new BenchRegistry();
    registry.register('a', () => 0);
    expect(() => registry.register('a', () => 0)).toThrow(/registered twice/);
    expect(() => registry.register(' ', () => 0)).toThrow(/empty/);
  });
});

describe('measure (fake clock)', () => {
  it('warms up, then samples until the duration is reached, timing each op', async () => {
    const clock = fakeClock(1000n);
    let calls = 0;
    const result = await measure('op', () => (calls += 1), options(clock.now));
    // Each sample spans one clock step; each iteration costs two reads, so 100 µs needs 50 samples.
    expect(result.samples).toBe(50);
    expect(result.medianNs).toBe(1000);
    expect(result.elapsedNs).toBe(100_000);
    expect(result.opsPerSecond).toBe(500_000);
    expect(calls).toBe(3 + 50);
    expect(result.cpuNsPerOp).toBeUndefined();
  });

  it('reports CPU time per op from the CPU clock over the timed phase', async () => {
    const clock = fakeClock(1000n);
    let cpuMicros = 0;
    const cpuTime = (): number => cpuMicros;
    // Each op burns 3 µs of CPU; warm-up CPU is not counted.
    const result = await measure('cpu', () => (cpuMicros += 3), options(clock.now, { cpuTime }));
    expect(result.samples).toBe(50);
    expect(result.cpuNsPerOp).toBe(3000);
  });

  it('keeps sampling past the duration until the minimum sample count', async () => {
    const clock = fakeClock(1_000_000n);
    const result = await measure('slow', () => 0, options(clock.now, { minSamples: 20 }));
    expect(result.samples).toBe(20);
  });

  it('stops at the sample cap', async () => {
    const clock = fakeClock(1n);
    const result = await measure('fast', () => 0, options(clock.now, { seconds: 10, maxSamples: 7 }));
    expect(result.samples).toBe(7);
  });

  it('awaits an op that returns a promise inside its timing', async () => {
    const clock = fakeClock(1000n);
    const op = async (): Promise<void> => {
      await Promise.resolve();
      clock.advance(5000n);
    };
    const result = await measure('async', op, options(clock.now, { seconds: 0, minSamples: 5 }));
    expect(result.medianNs).toBe(6000);
  });
});

describe('runBenchmarks', () => {
  it('runs setup once per selected benchmark, and teardown even when the setup or the op throws', async () => {
    const registry = new BenchRegistry();
    const log: string[] = [];
    registry.register('good', {
      setup: () => {
        log.push('setup good');
        return () => 0;
      },
      teardown: () => {
        log.push('teardown good');
      },
    });
    registry.register('bad op', {
      setup: () => {
        log.push('setup bad op');
        return () => {
          throw new Error('op failed');
        };
      },
      teardown: () => {
        log.push('teardown bad op');
      },
    });
    registry.register('bad setup', {
      setup: () => {
        log.push('setup bad setup');
        throw new Error('setup failed');
      },
      teardown: () => {
        log.push('teardown bad setup');
      },
    });
    registry.register('skipped', {
      setup: () => {
        log.push('setup skipped');
        return () => 0;
      },
    });
    const clock = fakeClock();
    const good = await runBenchmarks(registry.select('good'), options(clock.now));
    expect(good.map((r) => r.name)).toEqual(['good']);
    await expect(runBenchmarks(registry.select('bad op'), options(clock.now))).rejects.toThrow('op failed');
    await expect(runBenchmarks(registry.select('bad setup'), options(clock.now))).rejects.toThrow('setup failed');
    expect(log).toEqual(['setup good', 'teardown good', 'setup bad op', 'teardown bad op', 'setup bad setup', 'teardown bad setup']);
  });

  it('formats a report with the machine line and one row per result', () => {
    const text = formatReport({
      date: '2025-01-01T00:00:00.000Z',
      machine: { cpuModel: 'Test CPU', cores: 2, platform: 'linux', arch: 'x64', node: 'v20.0.0', openssl: '3.0.0', v8: '11', memoryMiB: 1024, loadAverage: 3.5 },
      settings: { seconds: 2, warmupSeconds: 0.5, filter: undefined, timerOverheadNs: 40 },
      results: [summarize('ed25519-sign/node', [50_000, 50_000], 100_000, 90_000)],
    });
    expect(text).toContain('Test CPU, 2 cores');
    expect(text).toContain('Node v20.0.0');
    expect(text).toContain('load average 3.5 at start (machine busy');
    expect(text).toMatch(/ed25519-sign\/node\s+20,000\s+50\.0 µs\s+50\.0 µs\s+45\.0 µs\s+2/);
    expect(text).not.toContain('notes:');
  });

  it('prints row notes under the table, and "-" for a row that was not measured', () => {
    const notMeasured = { ...summarize('ble/row', [1], 1), samples: 0, opsPerSecond: Number.NaN, medianNs: Number.NaN, p99Ns: Number.NaN, note: 'not measured: no emulator' };
    const text = formatReport({
      date: '2025-01-01T00:00:00.000Z',
      machine: { cpuModel: 'Test CPU', cores: 2, platform: 'linux', arch: 'x64', node: 'v20.0.0', openssl: '3.0.0', v8: '11', memoryMiB: 1024, loadAverage: 0.1 },
      settings: { seconds: 2, warmupSeconds: 0.5, filter: undefined, timerOverheadNs: 40 },
      results: [{ ...summarize('unlock/row', [2e6], 2e6), note: 'round trips 5' }, summarize('plain/row', [1000], 1000), notMeasured],
    });
    const lines = text.split('\n');
    const notes = lines.indexOf('notes:');
    expect(notes).toBeGreaterThan(lines.findIndex((line) => line.startsWith('unlock/row')));
    expect(lines.slice(notes + 1)).toEqual(['  unlock/row: round trips 5', '  ble/row: not measured: no emulator']);
    expect(lines.find((line) => line.startsWith('ble/row'))).toMatch(/^ble\/row\s+-\s+-\s+-\s+-\s+0$/);
  });
});

// --- the compiled runner ---------------------------------------------------------

const RUNNER = fileURLToPath(new URL('../../dist/test/bench/run.js', import.meta.url));
const children = new Set<ChildProcess>();

afterEach(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

function runRunner(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (!existsSync(RUNNER)) throw new Error(`${RUNNER} is missing: run \`npm run build\` first`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUNNER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

describe('dist/test/bench/run.js', () => {
  it('--list names every crypto benchmark for both backends', async () => {
    const { code, stdout } = await runRunner(['--list']);
    expect(code).toBe(0);
    const names = stdout.trim().split('\n');
    for (const op of ['ed25519-sign', 'ed25519-verify', 'x25519-keypair', 'x25519-shared-secret', 'sha512-1KiB', 'secretbox-seal-256B']) {
      expect(names).toContain(`${op}/node`);
      expect(names).toContain(`${op}/tweetnacl`);
    }
  });

  it('--json --filter --seconds prints one result per selected benchmark and the machine', async () => {
    const { code, stdout, stderr } = await runRunner(['--json', '--filter', 'sha512-1KiB', '--seconds', '0.02']);
    expect(code, stderr).toBe(0);
    const report: unknown = JSON.parse(stdout);
    if (!isRecord(report) || !isRecord(report.machine) || !Array.isArray(report.results)) throw new Error(`bad report: ${stdout}`);
    expect(report.machine.node).toBe(process.version);
    expect(typeof report.machine.cpuModel).toBe('string');
    const results: unknown[] = report.results;
    expect(results.map((r) => (isRecord(r) ? r.name : undefined))).toEqual(['sha512-1KiB/node', 'sha512-1KiB/tweetnacl']);
    for (const r of results) {
      if (!isRecord(r)) throw new Error('bad result');
      expect(r.samples).toEqual(expect.any(Number));
      expect(r.samples).toBeGreaterThanOrEqual(20);
      expect(r.opsPerSecond).toBeGreaterThan(0);
      expect(r.cpuNsPerOp).toBeGreaterThan(0);
    }
    expect(stderr).toContain('running sha512-1KiB/node');
  });

  it('exits 2 with the usage for a bad flag, and for a filter matching nothing', async () => {
    const bad = await runRunner(['--seconds', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('usage:');
    const none = await runRunner(['--filter', 'no-such-benchmark']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no benchmark matches');
  });
});
