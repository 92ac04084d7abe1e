/**
 * End-to-end unlock latency through real processes: `carkey unlock` as a
 * user runs it (process start → exit, BLE over the sim radio) against
 * carkeyd syncing with a real `carkey-cloud serve` (SQLite), on the rig of the
 * chaos suite (test/integration/chaos-rig.ts).
 *
 * Rows:
 * - e2e-unlock/cloud-healthy: CARKEY_BENCH_E2E_RUNS unlocks (default 20);
 * - e2e-unlock/cloud-FAULT ×R: for each fault-switch mode, a block of unlocks
 *   with the fault in force on every route, then a healthy block in the same
 *   run; the row is the faulted block, R its p50 ÷ the healthy block's p50.
 * ops/s is unlocks per second of wall time (sequential); cpu/op is '-'.
 * The rig is started by the first row and stopped by `stopE2e()` (run.ts).
 */
import { compareUnlocks, pct, startCloudCar, SWITCH_FAULTS, type CloudCar } from '../integration/chaos-rig.js';
import { registerBench, summarize, type BenchResult } from './harness.js';

const RUNS = Math.max(2, Number(process.env.CARKEY_BENCH_E2E_RUNS ?? '20'));
let car: Promise<CloudCar> | undefined;

/** The rig the e2e rows share (started on first use, stopped by `stopE2e`); latency.bench.ts uses it too. */
export function rig(): Promise<CloudCar> {
  car ??= startCloudCar();
  return car;
}

export async function stopE2e(): Promise<void> {
  if (car === undefined) return;
  const started = car;
  car = undefined;
  await (await started).stop();
}

const noop = (): void => undefined;
/**
 * The car's relay bound (a REQUEST more than 500 ms after its CHALLENGE is refused, "too far
 * away") is what a starved process on an overloaded machine trips; such a run is not a cloud
 * effect. It is counted in the row's note (its time stays in the samples), not a failure of the run.
 */
const RELAY_REFUSAL = 'too far away';
const relayNote = (count: number): { note?: string } => (count === 0 ? {} : { note: `${count} run(s) refused by the car's relay bound (machine overloaded); their times are included` });

registerBench('e2e-unlock/cloud-healthy', {
  setup: async () => {
    await rig();
    return noop;
  },
  measureSelf: async (name): Promise<BenchResult> => {
    const theCar = await rig();
    await theCar.unlock(); // warm-up (page cache, first scan)
    const samples: number[] = [];
    let refused = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < RUNS; i++) {
      const run = await theCar.unlock();
      if (run.code === 3 && run.stderr.includes(RELAY_REFUSAL)) refused += 1;
      else if (run.code !== 0) throw new Error(`${name}: carkey unlock exited ${run.code}: ${run.stderr}`);
      samples.push(run.ms * 1e6);
    }
    return { ...summarize(name, samples, Number(process.hrtime.bigint() - t0)), ...relayNote(refused) };
  },
});

for (const mode of SWITCH_FAULTS) {
  const base = `e2e-unlock/cloud-${mode}`;
  registerBench(base, {
    setup: async () => {
      await rig();
      return noop;
    },
    measureSelf: async (name): Promise<BenchResult> => {
      const theCar = await rig();
      const half = Math.max(2, Math.ceil(RUNS / 2));
      const t0 = process.hrtime.bigint();
      const run = await compareUnlocks(theCar, mode, half, () => theCar.setFault('*', mode), () => theCar.setFault('*', 'off'));
      const elapsed = Number(process.hrtime.bigint() - t0) / 2;
      const failures = run.failures.filter((failure) => !failure.includes(RELAY_REFUSAL));
      if (failures.length > 0) throw new Error(`${name}: ${failures.join('; ')}`);
      const ratio = pct(run.faulted, 0.5) / pct(run.healthy, 0.5);
      return { ...summarize(`${name} ×${ratio.toFixed(2)}`, run.faulted.map((ms) => ms * 1e6), elapsed), ...relayNote(run.failures.length) };
    },
  });
}
