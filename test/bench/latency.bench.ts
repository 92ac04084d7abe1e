/**
 * Where the time of `carkey unlock` goes, on the sim radio, through real
 * processes (the e2e rig of e2e.bench.ts: carkeyd, carkey-cloud, the radio
 * broker, the body-controller sim), and what carkeyd costs to start and to
 * keep running.
 *
 * Rows (ops/s is runs per second of wall time; cpu/op '-'; the note column
 * carries counts, medians of the phase split, the floor and the ratio):
 * - unlock-gatt/round-trips: the GATT traffic one owner unlock makes,
 *   counted from the CLI's CARKEY_TRACE=1 marks; the row's times are
 *   connect → subscribed (the connection set-up).
 * - unlock-radio/first-write-to-result-{30,7.5}ms: HELLO written → RESULT,
 *   with connection events counted from connect to RESULT against the minimum.
 * - unlock-cli/e2e-{30,7.5}ms: `carkey unlock` process start → exit as the
 *   parent sees it, with the phase split, the floor and p50 ÷ floor.
 * - carkeyd/cold-start-to-advertising: spawning `carkeyd run` → the first
 *   advertisement a scanning central hears (its own rig, no cloud).
 * - carkeyd/rss-10k-unlocks: 10,000 unlock commands against that carkeyd
 *   from several phones at once (raw sessions, 100 commands per session);
 *   times are per command; the note has the RSS samples along the way.
 * CARKEY_BENCH_LATENCY_RUNS sets the runs per interval (default 15),
 * CARKEY_BENCH_RSS_UNLOCKS the unlocks of the RSS row (default 10,000).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startBtvirt, type Btvirt } from '../../firmware-sim/btvirt/launcher.js';
import { hardwareCtl, runCli, startDaemonProcess, startProgram, startRig, stopProgram, stopRig, type CarRig } from '../../firmware-sim/rig.js';
import { fromHex, toHex } from '../../src/core/bytes.js';
import type { PhoneCredential } from '../../src/core/phone-session.js';
import { decodeShare } from '../../src/phone/share.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { createSimCentral, setLinkProfile, setRadioSettings } from '../../src/transport/sim.js';
import { KeyStore } from '../../src/phone/keystore.js';
import { until } from '../integration/chaos-rig.js';
import type { RawOutcome } from '../helpers/raw-phone.js';
import { openRawSession, type RawSession } from '../helpers/raw-session.js';
import { rig as e2eRig } from './e2e.bench.js';
import { registerBench, summarize, type BenchResult } from './harness.js';
import { connectionEvents, countGatt, MIN_EVENTS_OWNER_UNLOCK, parseTrace, splitPhases, unlockFloorMs, type PhaseSplit, type TraceMark } from './phases.js';

const RUNS = Math.max(3, Number(process.env.CARKEY_BENCH_LATENCY_RUNS ?? '15'));
const RSS_UNLOCKS = Math.max(100, Number(process.env.CARKEY_BENCH_RSS_UNLOCKS ?? '10000'));
/** The sim radio's defaults (docs/firmware-sim.md): what the floor is computed from. */
const ADV_INTERVAL_MS = 100;
const ADV_DELAY_MEAN_MS = 5;
const JITTER_MS = 1;
const INTERVALS = [30, 7.5] as const;

const noop = (): void => undefined;
/**
 * The car refuses a REQUEST that comes more than relayBoundMs (500 ms) after its CHALLENGE
 * ("too far away"): on an overloaded machine a starved process can take that long. Such a run
 * is not an unlock to time; it is re-run (at most this many times per sample) and counted in the note.
 */
const MAX_RELAY_RERUNS = 3;
let relayReruns = 0;
const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.ceil(sorted.length / 2) - 1] ?? Number.NaN;
};
const ms = (value: number): string => value.toFixed(value < 10 ? 1 : 0);

interface TracedRun {
  readonly wallMs: number;
  readonly marks: readonly TraceMark[];
  readonly split: PhaseSplit;
}

interface IntervalRuns {
  readonly intervalMs: number;
  readonly runs: readonly TracedRun[];
  readonly elapsedNs: number;
}

/** A bare `node -e 0`, median of 5: the process-start part of the floor. */
let processStart: number | undefined;
function processStartMs(): number {
  if (processStart !== undefined) return processStart;
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    times.push(performance.now() - t0);
  }
  processStart = median(times);
  return processStart;
}

const byInterval = new Map<number, Promise<IntervalRuns>>();

/** RUNS traced `carkey unlock` runs on the e2e rig with every link at `intervalMs`. */
function runsAt(intervalMs: number): Promise<IntervalRuns> {
  let pending = byInterval.get(intervalMs);
  if (pending === undefined) {
    pending = traceRuns(intervalMs);
    byInterval.set(intervalMs, pending);
  }
  return pending;
}

async function traceRuns(intervalMs: number): Promise<IntervalRuns> {
  const car = await e2eRig();
  await setLinkProfile(car.rig.radio, { connectionIntervalMs: intervalMs });
  try {
    const args = ['--home', join(car.rig.dir, 'owner'), '--transport', 'sim', '--radio', car.rig.radio, '--cloud', car.cloudUrl, '--timeout', '5000', '--quiet', 'unlock'];
    const one = async (): Promise<TracedRun> => {
      let t0 = performance.now();
      let run = await runCli('src/cli/carkey.js', args, { env: { CARKEY_TRACE: '1' } });
      for (let rerun = 0; run.code === 3 && run.stderr.includes('too far away') && rerun < MAX_RELAY_RERUNS; rerun++) {
        relayReruns += 1;
        t0 = performance.now();
        run = await runCli('src/cli/carkey.js', args, { env: { CARKEY_TRACE: '1' } });
      }
      const wallMs = performance.now() - t0;
      if (run.code !== 0) throw new Error(`carkey unlock exited ${run.code}: ${run.stderr}`);
      const marks = parseTrace(run.stderr);
      const split = splitPhases(marks);
      if (split === undefined) throw new Error(`carkey unlock wrote an incomplete trace: ${run.stderr}`);
      return { wallMs, marks, split };
    };
    await one(); // warm-up (page cache, first scan)
    const runs: TracedRun[] = [];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < RUNS; i++) runs.push(await one());
    return { intervalMs, runs, elapsedNs: Number(process.hrtime.bigint() - t0) };
  } finally {
    await setLinkProfile(car.rig.radio, { connectionIntervalMs: 30 });
  }
}

function eventsOf(set: IntervalRuns): number[] {
  return set.runs.map((run) => connectionEvents(run.marks, set.intervalMs, JITTER_MS) ?? Number.NaN);
}

function row(name: string, samplesMs: readonly number[], elapsedNs: number, note: string): BenchResult {
  return { ...summarize(name, samplesMs.map((value) => value * 1e6), elapsedNs), note };
}

registerBench('unlock-gatt/round-trips', {
  setup: () => noop,
  measureSelf: async (name): Promise<BenchResult> => {
    const set = await runsAt(30);
    const counts = set.runs.map((run) => countGatt(run.marks));
    const same = counts.every((c) => c.writes === counts[0]?.writes && c.notifications === counts[0]?.notifications && c.roundTrips === counts[0]?.roundTrips);
    const c = counts[0] ?? { writes: 0, notifications: 0, roundTrips: 0 };
    const events = eventsOf(set);
    const note =
      `round trips ${c.roundTrips} (min 5: MTU, discovery, CCCD, HELLO, REQUEST), writes ${c.writes}, notifications ${c.notifications}` +
      `${same ? '' : ' (varied between runs)'}; connection events connect→RESULT p50 ${median(events)} (min ${MIN_EVENTS_OWNER_UNLOCK}); times: link up→subscribed`;
    return row(name, set.runs.map((run) => run.split.setup), set.elapsedNs, note);
  },
});

for (const intervalMs of INTERVALS) {
  registerBench(`unlock-radio/first-write-to-result-${intervalMs}ms`, {
    setup: () => noop,
    measureSelf: async (name): Promise<BenchResult> => {
      const set = await runsAt(intervalMs);
      const events = eventsOf(set);
      const floor = 4 * intervalMs;
      const p50 = median(set.runs.map((run) => run.split.firstWriteToResult));
      const note = `events connect→RESULT p50 ${median(events)} (min ${MIN_EVENTS_OWNER_UNLOCK}); floor first write→RESULT 4 events = ${ms(floor)} ms, p50 ÷ floor ×${(p50 / floor).toFixed(2)}`;
      return row(name, set.runs.map((run) => run.split.firstWriteToResult), set.elapsedNs, note);
    },
  });
  registerBench(`unlock-cli/e2e-${intervalMs}ms`, {
    setup: () => noop,
    measureSelf: async (name): Promise<BenchResult> => {
      const set = await runsAt(intervalMs);
      const p = (pick: (split: PhaseSplit) => number): string => ms(median(set.runs.map((run) => pick(run.split))));
      const start = processStartMs();
      const floor = unlockFloorMs({ advertisingIntervalMs: ADV_INTERVAL_MS, advDelayMeanMs: ADV_DELAY_MEAN_MS, connectionIntervalMs: intervalMs, events: MIN_EVENTS_OWNER_UNLOCK, processStartMs: start });
      const wall = set.runs.map((run) => run.wallMs);
      const spawnAndExit = median(set.runs.map((run) => run.wallMs - run.split.total));
      const note =
        `p50 ms: load ${p((s) => s.load)}, prepare ${p((s) => s.prepare)}, scan ${p((s) => s.scan)}, connect ${p((s) => s.connect)}, ` +
        `MTU+discovery+CCCD ${p((s) => s.setup)}, HELLO→CHALLENGE ${p((s) => s.challenge)}, phone CPU ${p((s) => s.think)}, REQUEST→RESULT ${p((s) => s.result)}, ` +
        `after RESULT ${p((s) => s.finish)}, spawn+exit ${ms(spawnAndExit)}; floor ${ms(floor)} ms (node start ${ms(start)} + adv wait ${ms((ADV_INTERVAL_MS + ADV_DELAY_MEAN_MS) / 2)} + 1.25 + ${MIN_EVENTS_OWNER_UNLOCK}×${intervalMs}), ` +
        `p50 ÷ floor ×${(median(wall) / floor).toFixed(2)}` +
        (relayReruns === 0 ? '' : `; ${relayReruns} run(s) so far refused by the car's relay bound (machine overloaded) and re-run`);
      return row(name, wall, set.elapsedNs, note);
    },
  });
}

// --- the same unlock over real bleno + noble on btvirt emulated controllers -------------------

const BLE_RUNS = Math.max(3, Number(process.env.CARKEY_BENCH_BLE_RUNS ?? '8'));

function notMeasured(name: string, why: string): BenchResult {
  return { name, samples: 0, elapsedNs: 0, opsPerSecond: Number.NaN, meanNs: Number.NaN, medianNs: Number.NaN, p99Ns: Number.NaN, minNs: Number.NaN, maxNs: Number.NaN, cpuNsPerOp: undefined, note: `not measured: ${why}` };
}

let btvirt: Btvirt | undefined;
let bleRig: CarRig | undefined;

registerBench('unlock-ble/e2e-btvirt', {
  setup: () => noop,
  measureSelf: async (name): Promise<BenchResult> => {
    try {
      btvirt = await startBtvirt();
    } catch (error) {
      return notMeasured(name, `btvirt did not start (${error instanceof Error ? error.message : String(error)})`);
    }
    const socket = btvirt.leSocketPath;
    bleRig = await startRig({ config: { transport: 'ble', hciSocket: socket, logLevel: 'warn' } });
    await startDaemonProcess(bleRig);
    const car = bleRig;
    const args = (...rest: string[]): string[] => ['--home', join(car.dir, 'owner'), '--transport', 'ble', '--hci-socket', socket, '--quiet', ...rest];
    const keygen = await runCli('src/cli/carkey.js', args('keygen'));
    if (keygen.code !== 0) throw new Error(`${name}: keygen: ${keygen.stderr}`);
    await hardwareCtl(car, 'press-button');
    const pairing = runCli('src/cli/carkey.js', args('pair', '--yes'), { timeoutMs: 60_000 });
    const display = async (): Promise<string> => (JSON.parse((await hardwareCtl(car, 'state', '--json')).stdout) as { display: string[] }).display.join(' | ');
    await until(async () => /Hold button/.test(await display()), 'the confirmation prompt', 30_000);
    await hardwareCtl(car, 'long-press');
    const paired = await pairing;
    if (paired.code !== 0) throw new Error(`${name}: pair: ${paired.stderr}`);
    const wall: number[] = [];
    const toHello: number[] = [];
    const exchange: number[] = [];
    const loads: number[] = [];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i <= BLE_RUNS; i++) {
      const started = performance.now();
      const run = await runCli('src/cli/carkey.js', args('unlock'), { env: { CARKEY_TRACE: '1' }, timeoutMs: 60_000 });
      const elapsed = performance.now() - started;
      if (run.code !== 0) throw new Error(`${name}: carkey unlock exited ${run.code}: ${run.stderr}`);
      if (i === 0) continue; // warm-up
      const marks = parseTrace(run.stderr);
      const at = (phase: string): number => marks.find((m) => m.phase === phase)?.t ?? Number.NaN;
      wall.push(elapsed);
      loads.push(at('main-loaded'));
      toHello.push(at('hello') - at('main-loaded'));
      exchange.push(at('result') - at('hello'));
    }
    const note =
      `p50 ms: load ${median(loads).toFixed(0)}, module loaded → HELLO (noble start, scan, connect, MTU, discovery, CCCD) ${median(toHello).toFixed(0)}, ` +
      `HELLO → RESULT ${median(exchange).toFixed(0)}; btvirt's controllers use their own connection parameters, not the sim radio's`;
    return row(name, wall, Number(process.hrtime.bigint() - t0), note);
  },
  teardown: async () => {
    await stopRig(bleRig);
    bleRig = undefined;
    await btvirt?.stop();
    btvirt = undefined;
  },
});

// --- carkeyd: cold start and memory ----------------------------------------------------

let ownRig: Promise<CarRig> | undefined;

/** A car without cloud, rate limits raised so 10,000 unlocks can run back to back (16 slots). */
/** The Node flags deploy/carkeyd.service starts carkeyd with. */
export const CARKEYD_NODE_OPTIONS = '--max-semi-space-size=1';

function carRig(): Promise<CarRig> {
  ownRig ??= (async () => {
    const made = await startRig({ config: { logLevel: 'warn', slots: 16, perLinkRate: 1000, perLinkBurst: 1000, globalRate: 10_000, globalBurst: 10_000, sessionIdleMs: 60_000 } });
    // As deployed (deploy/carkeyd.service): V8's young generation capped at 1 MiB per semi-space.
    await startDaemonProcess(made, { env: { NODE_OPTIONS: CARKEYD_NODE_OPTIONS } });
    return made;
  })();
  return ownRig;
}

export async function stopLatency(): Promise<void> {
  if (ownRig === undefined) return;
  const started = ownRig;
  ownRig = undefined;
  await stopRig(await started.catch(() => undefined));
}

registerBench('carkeyd/cold-start-to-advertising', {
  setup: async () => {
    await carRig();
    return noop;
  },
  measureSelf: async (name): Promise<BenchResult> => {
    const car = await carRig();
    const samples: number[] = [];
    const toReady: number[] = [];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 5; i++) {
      await stopProgram(car.daemon);
      car.daemon = undefined;
      const central = createSimCentral({ socketPath: car.radio, name: `bench-cold-${i}` });
      try {
        const heard = central.scan({ timeoutMs: 10_000, accept: (d) => d.serviceData?.length === 10 });
        const start = performance.now();
        car.daemon = await startProgram('src/cli/carkeyd.js', ['--config', car.configPath], { env: { NODE_OPTIONS: CARKEYD_NODE_OPTIONS } }); // as deployed
        toReady.push(performance.now() - start);
        const found = await heard;
        if (found.match === undefined) throw new Error(`${name}: no advertisement within 10 s of starting carkeyd`);
        samples.push(performance.now() - start);
      } finally {
        await central.close();
      }
    }
    return row(name, samples, Number(process.hrtime.bigint() - t0), `spawn → first advertisement heard; spawn → ready line p50 ${ms(median(toReady))} ms; goal ≤ 1000 ms`);
  },
});

/** A phone for the RSS loop: the car keeps one link per key, so each phone has its own key. */
interface Phone {
  readonly seed: Uint8Array;
  readonly credential: PhoneCredential;
}

/**
 * Pair an owner phone through the CLI as a person does (button, code, long press), then give
 * `guests` more phones a guest grant each (`carkey share --to`).
 */
async function pairPhones(car: CarRig, guests: number): Promise<Phone[]> {
  const crypto = createCrypto('node');
  const home = join(car.dir, 'owner');
  const carkey = (...args: string[]): ReturnType<typeof runCli> => runCli('src/cli/carkey.js', ['--home', home, '--transport', 'sim', '--radio', car.radio, '--quiet', ...args]);
  const keygen = await carkey('keygen');
  if (keygen.code !== 0) throw new Error(`keygen: ${keygen.stderr}`);
  await hardwareCtl(car, 'press-button');
  const pairing = carkey('pair', '--yes', '--name', 'car');
  const display = async (): Promise<string> => (JSON.parse((await hardwareCtl(car, 'state', '--json')).stdout) as { display: string[] }).display.join(' | ');
  await until(async () => /Code \d{6}.*Hold button/.test(await display()), 'the confirmation prompt');
  await hardwareCtl(car, 'long-press');
  const paired = await pairing;
  if (paired.code !== 0) throw new Error(`pair: ${paired.stderr}`);
  const store = new KeyStore(home, { crypto: createCrypto('node'), random: (n) => new Uint8Array(randomBytes(n)), clock: () => Date.now(), sleep: (t) => new Promise((r) => setTimeout(r, t)) });
  const phones: Phone[] = [{ seed: await store.unlockSeed(() => Promise.resolve(undefined)), credential: { kind: 'owner' } }];
  for (let i = 0; i < guests; i++) {
    const seed = new Uint8Array(randomBytes(32));
    const share = await carkey('share', '--role', 'guest', '--until', '+1d', '--to', toHex(crypto.publicKeyFromSeed(seed)), '--json');
    if (share.code !== 0) throw new Error(`share: ${share.stderr}`);
    const bundle = decodeShare(crypto, (JSON.parse(share.stdout) as { share: string }).share);
    if (!bundle.ok) throw bundle.error;
    phones.push({ seed, credential: { kind: 'grant', bytes: bundle.value.grant.bytes } });
  }
  return phones;
}

const isOk = (outcome: RawOutcome): boolean => outcome.kind === 'result' && outcome.result.status === 'ok';
const isProximityDenial = (outcome: RawOutcome): boolean => outcome.kind === 'result' && outcome.result.status === 'denied' && outcome.result.category === 'proximity';

/** V8 heap used and external memory (MiB) from carkeyd's Prometheus metrics (prom-client's defaults). */
async function heapMiB(statusUrl: string): Promise<{ heap: number; external: number }> {
  const text = await (await fetch(`${statusUrl}/metrics`)).text();
  const read = (metric: string): number => Number(new RegExp(`^${metric} ([0-9.e+]+)$`, 'm').exec(text)?.[1] ?? Number.NaN) / 2 ** 20;
  return { heap: read('carkey_nodejs_heap_size_used_bytes'), external: read('carkey_nodejs_external_memory_bytes') };
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match === null ? Number.NaN : Number(match[1]);
}

registerBench('carkeyd/rss-10k-unlocks', {
  setup: async () => {
    await carRig();
    return noop;
  },
  measureSelf: async (name): Promise<BenchResult> => {
    const car = await carRig();
    const pid = car.daemon?.child.pid;
    if (pid === undefined) throw new Error(`${name}: carkeyd is not running`);
    return rssLoop(name, car, pid);
  },
});

async function rssLoop(name: string, car: CarRig, pid: number): Promise<BenchResult> {
  const crypto = createCrypto('node');
  const carIdentityKey = fromHex(String(car.daemon?.ready.vehicleKey));
  if (carIdentityKey === undefined) throw new Error(`${name}: no vehicle key in the ready line`);
  // The e2e rig pairs its owner through the CLI; this car has none, so pair one the same way.
  const PHONES = 6;
  const phones = await pairPhones(car, PHONES - 1);
  await setRadioSettings(car.radio, { advertisingIntervalMs: 20 });
  await setLinkProfile(car.radio, { connectionIntervalMs: 7.5 });
  const PER_SESSION = 100;
  const samples: number[] = [];
  const rss: number[] = [rssKiB(pid)];
  const statusUrl = String(car.daemon?.ready.status);
  const heaps: Promise<{ heap: number; external: number }>[] = [heapMiB(statusUrl)];
  let done = 0;
  let nextSample = 1000;
  let proximityRetries = 0;
  const t0 = process.hrtime.bigint();
  const phone = async (index: number): Promise<void> => {
    while (done < RSS_UNLOCKS) {
      const mine = phones[index];
      if (mine === undefined) throw new Error(`${name}: no phone ${index}`);
      const { seed, credential } = mine;
      const session: RawSession = await openRawSession({ crypto, radio: car.radio, carIdentityKey, identitySeed: seed, credential, command: 'unlock', name: `rss-${index}-${randomBytes(2).toString('hex')}` });
      try {
        if (isProximityDenial(session.first) && proximityRetries < 50) {
          proximityRetries += 1; // relay bound exceeded by a starved process (see MAX_RELAY_RERUNS)
          continue;
        }
        if (!isOk(session.first)) throw new Error(`${name}: unlock answered ${JSON.stringify(session.first)}`);
        done += 1;
        for (let i = 1; i < PER_SESSION && done < RSS_UNLOCKS; i++) {
          const started = performance.now();
          const outcome = await session.command('unlock');
          if (!isOk(outcome)) throw new Error(`${name}: unlock command answered ${JSON.stringify(outcome)}`);
          samples.push(performance.now() - started);
          done += 1;
          if (done >= nextSample) {
            rss.push(rssKiB(pid));
            heaps.push(heapMiB(statusUrl));
            nextSample += 1000;
          }
        }
      } finally {
        await session.close();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: PHONES }, (_unused, i) => phone(i)));
  } finally {
    await setRadioSettings(car.radio, { advertisingIntervalMs: ADV_INTERVAL_MS });
    await setLinkProfile(car.radio, { connectionIntervalMs: 30 });
  }
  const mib = rss.map((kib) => kib / 1024);
  const firstK = mib[1] ?? mib[0] ?? Number.NaN;
  const last = mib[mib.length - 1] ?? Number.NaN;
  const heap = await Promise.all(heaps.map((p) => p.catch(() => ({ heap: Number.NaN, external: Number.NaN }))));
  const note =
    `${done} unlocks, ${PHONES} phones; RSS MiB every 1000: ${mib.map((v) => v.toFixed(1)).join(' ')}; after the first 1000 → end ${last - firstK >= 0 ? '+' : ''}${(last - firstK).toFixed(1)} MiB; ` +
    `V8 heap used MiB: ${heap.map((h) => h.heap.toFixed(1)).join(' ')}; external MiB: ${heap.map((h) => h.external.toFixed(1)).join(' ')}; goal ≤ 64 MiB and flat` +
    (proximityRetries === 0 ? '' : `; ${proximityRetries} session(s) refused by the relay bound (machine overloaded) and reopened`);
  return row(name, samples, Number(process.hrtime.bigint() - t0), note);
}
