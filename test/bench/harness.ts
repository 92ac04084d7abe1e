/**
 * A small, honest benchmark harness.
 *
 * Guarantees:
 * - Benchmarks register by name (`registerBench`) and run in registration
 *   order; a `--filter` selects by case-insensitive substring. A setup runs
 *   only for selected benchmarks, and its teardown always runs.
 * - Each benchmark is warmed up, then timed op by op with a monotonic
 *   nanosecond clock (process.hrtime.bigint) until both a minimum duration
 *   and a minimum sample count are reached. ops/s is samples / wall time of
 *   the timed phase (so it includes the two clock reads per op, whose cost is
 *   measured and printed); median and p99 are nearest-rank percentiles of the
 *   per-op times. An op that returns a promise is awaited inside its timing.
 *   Process CPU time per op (user + system, all threads of the process, so
 *   GC is included) is reported too: unlike wall time it hardly moves when
 *   other programs compete for the CPU.
 * - Pure parts (argument parsing, statistics, formatting) are separate from
 *   the clock and the registry, and the clock is injectable, so they are tested.
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { CarkeyError, fail, ok, type Result } from '../../src/core/errors.js';

/** One operation to time. It may return a promise, which is awaited. */
export type BenchOp = () => unknown;

/** A benchmark with state: `setup` runs once (only if selected) and returns the op. */
export interface BenchSpec {
  readonly setup: () => BenchOp | Promise<BenchOp>;
  readonly teardown?: () => void | Promise<void>;
  /**
   * A benchmark that measures itself (a load generator such as autocannon,
   * whose requests overlap): called after setup instead of timing the op one
   * by one, with the timed duration; it returns its own result.
   */
  readonly measureSelf?: (name: string, seconds: number) => Promise<BenchResult>;
}

export interface Benchmark {
  readonly name: string;
  readonly spec: BenchSpec;
}

export class BenchRegistry {
  readonly #benchmarks: Benchmark[] = [];

  register(name: string, op: BenchOp | BenchSpec): void {
    if (name.trim() === '') throw new CarkeyError('CK_USAGE', 'benchmark name is empty');
    if (this.#benchmarks.some((b) => b.name === name)) throw new CarkeyError('CK_USAGE', `benchmark registered twice: ${name}`);
    const spec: BenchSpec = typeof op === 'function' ? { setup: () => op } : op;
    this.#benchmarks.push({ name, spec });
  }

  /** Registered benchmarks in order; with a filter, those whose name contains it (any case). */
  select(filter?: string): Benchmark[] {
    if (filter === undefined) return [...this.#benchmarks];
    const needle = filter.toLowerCase();
    return this.#benchmarks.filter((b) => b.name.toLowerCase().includes(needle));
  }
}

/** The registry `run.ts` runs; benchmark modules add to it on import. */
export const defaultRegistry = new BenchRegistry();

/** Register a benchmark: a plain op, or `{ setup, teardown }` for one that needs state. */
export function registerBench(name: string, op: BenchOp | BenchSpec): void {
  defaultRegistry.register(name, op);
}

// --- command line --------------------------------------------------------------

export interface BenchArgs {
  readonly json: boolean;
  readonly filter: string | undefined;
  readonly seconds: number;
  readonly list: boolean;
  readonly help: boolean;
}

export const DEFAULT_SECONDS = 2;
const MAX_SECONDS = 3600;

export const USAGE = `usage: node dist/test/bench/run.js [--filter NAME] [--seconds N] [--json] [--list]

  --filter NAME   run only benchmarks whose name contains NAME (case-insensitive)
  --seconds N     timed duration per benchmark, after warm-up (default ${DEFAULT_SECONDS})
  --json          print results as JSON on stdout (progress goes to stderr)
  --list          print the registered benchmark names and exit
  --help          print this help`;

/** Parse `--json`, `--list`, `--help`, `--filter NAME`, `--seconds N` (also `--flag=value`). */
export function parseBenchArgs(argv: readonly string[]): Result<BenchArgs> {
  let json = false;
  let list = false;
  let help = false;
  let filter: string | undefined;
  let seconds = DEFAULT_SECONDS;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const takeValue = (): string | undefined => {
      if (inline !== undefined) return inline;
      i += 1;
      return argv[i];
    };
    switch (flag) {
      case '--json':
        json = true;
        break;
      case '--list':
        list = true;
        break;
      case '--help':
      case '-h':
        help = true;
        break;
      case '--filter': {
        const value = takeValue();
        if (value === undefined || value === '') return fail('CK_USAGE', '--filter needs a NAME');
        filter = value;
        break;
      }
      case '--seconds': {
        const value = takeValue();
        const parsed = value === undefined || value.trim() === '' ? Number.NaN : Number(value);
        if (!Number.isFinite(parsed) || parsed <= 0 || parsed > MAX_SECONDS) {
          return fail('CK_USAGE', `--seconds needs a number of seconds in (0, ${MAX_SECONDS}], got ${value ?? 'nothing'}`);
        }
        seconds = parsed;
        break;
      }
      default:
        return fail('CK_USAGE', `unknown argument: ${arg}`);
    }
  }
  return ok({ json, filter, seconds, list, help });
}

// --- statistics ------------------------------------------------------------------

export interface BenchResult {
  readonly name: string;
  readonly samples: number;
  /** Wall time of the timed phase, ns. */
  readonly elapsedNs: number;
  readonly opsPerSecond: number;
  readonly meanNs: number;
  readonly medianNs: number;
  readonly p99Ns: number;
  readonly minNs: number;
  readonly maxNs: number;
  /** Process CPU time (user + system) per op during the timed phase, ns; undefined without a CPU clock. */
  readonly cpuNsPerOp: number | undefined;
  /** What the times alone do not say (counts, a phase split, a floor and the ratio to it); printed after the table. */
  readonly note?: string;
}

/** Nearest-rank percentile (q in (0, 1]) of an ascending, non-empty array. */
export function percentile(sortedAscending: ArrayLike<number>, q: number): number {
  const n = sortedAscending.length;
  if (n === 0) throw new RangeError('percentile of no samples');
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sortedAscending[rank - 1] ?? Number.NaN;
}

export function summarize(name: string, samplesNs: ArrayLike<number>, elapsedNs: number, cpuNs?: number): BenchResult {
  const sorted = Float64Array.from(samplesNs).sort();
  if (sorted.length === 0) throw new RangeError(`benchmark ${name} produced no samples`);
  let total = 0;
  for (const value of sorted) total += value;
  return {
    name,
    samples: sorted.length,
    elapsedNs,
    opsPerSecond: elapsedNs > 0 ? (sorted.length * 1e9) / elapsedNs : Number.POSITIVE_INFINITY,
    meanNs: total / sorted.length,
    medianNs: percentile(sorted, 0.5),
    p99Ns: percentile(sorted, 0.99),
    minNs: sorted[0] ?? Number.NaN,
    maxNs: sorted[sorted.length - 1] ?? Number.NaN,
    cpuNsPerOp: cpuNs === undefined ? undefined : cpuNs / sorted.length,
  };
}

// --- timing ------------------------------------------------------------------------

export type NanoClock = () => bigint;
export const hrtimeClock: NanoClock = () => process.hrtime.bigint();

/** Process CPU time used so far (user + system), microseconds. */
export type CpuClock = () => number;
export const processCpuClock: CpuClock = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

export interface TimingOptions {
  /** Minimum timed duration per benchmark. */
  readonly seconds: number;
  /** Warm-up duration (not recorded). */
  readonly warmupSeconds: number;
  /** Minimum timed samples, even if the duration has passed. */
  readonly minSamples: number;
  /** Minimum warm-up runs. */
  readonly minWarmup: number;
  /** Hard cap on samples, so a nanosecond op cannot exhaust memory. */
  readonly maxSamples: number;
  readonly now: NanoClock;
  /** Optional CPU-time clock; without it `cpuNsPerOp` is undefined. */
  readonly cpuTime?: CpuClock;
  /** Called before each benchmark (progress on stderr). */
  readonly onStart?: (name: string) => void;
}

/** Warm-up is a quarter of the timed duration, at most one second. */
export function timingFor(seconds: number, now: NanoClock = hrtimeClock, cpuTime: CpuClock | undefined = processCpuClock): TimingOptions {
  return { seconds, warmupSeconds: Math.min(1, seconds / 4), minSamples: 20, minWarmup: 3, maxSamples: 5_000_000, now, cpuTime };
}

/** Keeps results reachable so the engine cannot drop an op as dead code. */
let sink: unknown;
/** The last op's result (read so `sink` is live; handy when debugging a benchmark). */
export function lastSink(): unknown {
  return sink;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && 'then' in value && typeof value.then === 'function';
}

/**
 * Warm up, then time `op` until the duration and sample minimums are both met.
 * A synchronous op is timed without any await in the loop (an await costs a
 * microtask turn, about a microsecond, which would swamp fast ops).
 */
export async function measure(name: string, op: BenchOp, options: TimingOptions): Promise<BenchResult> {
  const { now } = options;
  const warmupNs = BigInt(Math.round(options.warmupSeconds * 1e9));
  const warmupStart = now();
  for (let runs = 0; runs < options.minWarmup || now() - warmupStart < warmupNs; runs++) {
    const value = op();
    sink = isPromiseLike(value) ? await value : value;
  }

  const durationNs = BigInt(Math.round(options.seconds * 1e9));
  let samples = new Float64Array(1024);
  let count = 0;
  const cpuBegin = options.cpuTime?.();
  const begin = now();
  let elapsed = 0n;
  while ((count < options.minSamples || elapsed < durationNs) && count < options.maxSamples) {
    if (count === samples.length) {
      const grown = new Float64Array(Math.min(samples.length * 2, options.maxSamples));
      grown.set(samples);
      samples = grown;
    }
    const start = now();
    const value = op();
    sink = isPromiseLike(value) ? await value : value;
    const end = now();
    samples[count] = Number(end - start);
    count += 1;
    elapsed = end - begin;
  }
  const cpuEnd = options.cpuTime?.();
  const cpuNs = cpuBegin === undefined || cpuEnd === undefined ? undefined : (cpuEnd - cpuBegin) * 1000;
  return summarize(name, samples.subarray(0, count), Number(elapsed), cpuNs);
}

/**
 * Run the benchmarks in order. A benchmark's teardown runs even if its setup
 * or an op throws (a setup may have started something before failing); the
 * error then ends the run.
 */
export async function runBenchmarks(benchmarks: readonly Benchmark[], options: TimingOptions): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const benchmark of benchmarks) {
    options.onStart?.(benchmark.name);
    try {
      const op = await benchmark.spec.setup();
      const self = benchmark.spec.measureSelf;
      results.push(self === undefined ? await measure(benchmark.name, op, options) : await self(benchmark.name, options.seconds));
    } finally {
      await benchmark.spec.teardown?.();
    }
  }
  return results;
}

/** Median cost of one clock read pair, ns: the floor under every per-op time. */
export function timerOverheadNs(now: NanoClock = hrtimeClock, rounds = 10_001): number {
  const deltas = new Float64Array(rounds);
  for (let i = 0; i < rounds; i++) {
    const a = now();
    deltas[i] = Number(now() - a);
  }
  return percentile(deltas.sort(), 0.5);
}

// --- machine and report ------------------------------------------------------------

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  readonly openssl: string;
  readonly v8: string;
  readonly memoryMiB: number;
  /** 1-minute load average when the run started: other work on the machine skews every figure. */
  readonly loadAverage: number;
}

export function machineInfo(): MachineInfo {
  const cpuList = cpus();
  return {
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    platform: process.platform,
    arch: process.arch,
    node: process.version,
    openssl: process.versions.openssl ?? 'none',
    v8: process.versions.v8,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
  };
}

export interface BenchReport {
  readonly date: string;
  readonly machine: MachineInfo;
  readonly settings: {
    readonly seconds: number;
    readonly warmupSeconds: number;
    readonly filter: string | undefined;
    readonly timerOverheadNs: number;
  };
  readonly results: readonly BenchResult[];
}

export function formatDuration(ns: number): string {
  if (Number.isNaN(ns)) return '-'; // a row that was not measured (its note says why)
  if (!Number.isFinite(ns)) return String(ns);
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 2 : 1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

function formatRate(perSecond: number): string {
  if (Number.isNaN(perSecond)) return '-';
  if (!Number.isFinite(perSecond)) return String(perSecond);
  return perSecond >= 100
    ? Math.round(perSecond).toLocaleString('en-US')
    : perSecond.toLocaleString('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 });
}

/** The human-readable report: machine, settings, then one row per benchmark. */
export function formatReport(report: BenchReport): string {
  const m = report.machine;
  const s = report.settings;
  const header = ['benchmark', 'ops/s', 'median', 'p99', 'cpu/op', 'samples'];
  const rows = report.results.map((r) => [
    r.name,
    formatRate(r.opsPerSecond),
    formatDuration(r.medianNs),
    formatDuration(r.p99Ns),
    r.cpuNsPerOp === undefined ? '-' : formatDuration(r.cpuNsPerOp),
    r.samples.toLocaleString('en-US'),
  ]);
  const widths = header.map((title, col) => Math.max(title.length, ...rows.map((row) => (row[col] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, col) => (col === 0 ? cell.padEnd(widths[col] ?? 0) : cell.padStart(widths[col] ?? 0))).join('  ').trimEnd();
  return [
    `carkey benchmarks, ${report.date}`,
    `machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryMiB} MiB, ${m.platform}/${m.arch}; Node ${m.node} (V8 ${m.v8}, OpenSSL ${m.openssl})`,
    `load:    1-minute load average ${m.loadAverage} at start` + (m.loadAverage > m.cores / 2 ? ' (machine busy: figures are pessimistic and noisy)' : ''),
    `timing:  ${s.seconds} s per benchmark after ${s.warmupSeconds} s warm-up; per-op clock overhead ${formatDuration(s.timerOverheadNs)}` +
      (s.filter === undefined ? '' : `; filter "${s.filter}"`),
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    ...notesOf(report.results),
  ].join('\n');
}

/** The notes of the rows that have one, below the table (they are too long for a column). */
function notesOf(results: readonly BenchResult[]): string[] {
  const noted = results.filter((r) => r.note !== undefined && r.note !== '');
  return noted.length === 0 ? [] : ['', 'notes:', ...noted.map((r) => `  ${r.name}: ${r.note ?? ''}`)];
}
