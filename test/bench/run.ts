/**
 * Benchmark entry point: `npm run bench` (builds, then runs
 * dist/test/bench/run.js). Flags: --filter NAME, --seconds N, --json, --list.
 *
 * Guarantees: the benchmark modules below are the complete, explicit list of
 * what runs, in this order; the table (or JSON with --json) goes to stdout,
 * progress to stderr; exit code 0 on success, 2 for bad flags or a filter
 * matching nothing, 1 if a benchmark fails.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../firmware-sim/rig.js';
import { toCarkeyError } from '../../src/core/errors.js';
import {
  USAGE,
  defaultRegistry,
  formatReport,
  hrtimeClock,
  machineInfo,
  parseBenchArgs,
  runBenchmarks,
  timerOverheadNs,
  timingFor,
  type BenchReport,
} from './harness.js';

// Benchmark modules. Each one calls registerBench() when imported; they run in this order.
import './crypto.bench.js';
// ---------------------------------------------------------------------------
// Full vehicle-side unlock (lead): register it in test/bench/unlock.bench.ts,
// then add here:
import './unlock.bench.js';
// ---------------------------------------------------------------------------
// End to end through real processes: `carkey unlock` over the sim radio, cloud healthy and each fault (rig stopped at the end):
import { stopE2e } from './e2e.bench.js';
// Where `carkey unlock`'s time goes (phases, GATT round trips, connection events, floors at 30 and 7.5 ms),
// carkeyd cold start and RSS over 10,000 unlocks (its own rig, stopped at the end):
import { stopLatency } from './latency.bench.js';
// carkey-cloud under load (autocannon against a carkey-cloud process; SQLite, and PostgreSQL when reachable):
import './cloud.bench.js';

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseBenchArgs(argv);
  if (!parsed.ok) {
    process.stderr.write(`${parsed.error.message}\n\n${USAGE}\n`);
    return parsed.error.exitCode;
  }
  const args = parsed.value;
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const selected = defaultRegistry.select(args.filter);
  if (args.list) {
    process.stdout.write(selected.map((b) => `${b.name}\n`).join(''));
    return 0;
  }
  if (selected.length === 0) {
    process.stderr.write(`no benchmark matches --filter ${args.filter ?? ''}; try --list\n`);
    return 2;
  }

  const timing = {
    ...timingFor(args.seconds, hrtimeClock),
    onStart: (name: string) => process.stderr.write(`running ${name} ...\n`),
  };
  const overhead = timerOverheadNs();
  let results: Awaited<ReturnType<typeof runBenchmarks>>;
  try {
    results = await runBenchmarks(selected, timing);
  } finally {
    await stopE2e();
    await stopLatency();
  }
  const report: BenchReport = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings: { seconds: timing.seconds, warmupSeconds: timing.warmupSeconds, filter: args.filter, timerOverheadNs: overhead },
    results,
  };
  process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
  // The whole run, for docs/performance.md and comparisons between runs. A --filter run (tests,
  // quick checks) does not overwrite it: bench/results.json always holds a complete run.
  if (args.filter === undefined) {
    mkdirSync(join(REPO, 'bench'), { recursive: true });
    writeFileSync(join(REPO, 'bench', 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(`wrote ${join(REPO, 'bench', 'results.json')}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`benchmark failed: ${toCarkeyError(error).message}\n`);
    process.exitCode = 1;
  },
);
