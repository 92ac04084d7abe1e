/**
 * `npm run demo`: the outage story, on a machine with no car, no Bluetooth
 * adapter and no server to install.
 *
 * Starts carkey-cloud (SQLite, fault switch on), the sim radio broker, the
 * body-controller simulator and carkeyd (with a `cloud` section) as separate
 * processes, then plays the story with the real `carkey` CLI and prints a
 * timeline with the time each step took:
 *
 *   owner pairs (code on the car's display, button held) → registers the car
 *   with the cloud → unlocks → shares a time-boxed key with a friend through
 *   the cloud mailbox → the friend accepts from the inbox and unlocks over BLE
 *   → the cloud answers 500, then hangs, then resets connections → owner and
 *   friend still unlock (latency beside the healthy one) → the owner revokes
 *   the friend over BLE while the cloud is down → the friend is denied → the
 *   cloud comes back: the car uploads its audit log, the owner verifies the
 *   chain from the cloud, and a revocation made through the cloud
 *   (`revoke --offline` + `sync`) reaches the parked car within seconds.
 *
 * `--json` prints the same events as JSON lines (one per step, then a
 * summary); `--verbose` prints, under each step, the `carkey` command it ran
 * and that command's stderr (progress) and stdout (result) interleaved in the
 * order they happened; `--keep` leaves everything running, prints where every
 * file is, and on Ctrl-C says what it stops and removes.
 *
 * Exit code: 0 when every step behaved as described, 1 otherwise.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hardwareCtl, runCli, startDaemonProcess, startProgram, startRig, stopProgram, stopRig, type CarRig, type CliResult, type Started } from '../firmware-sim/rig.js';

const keep = process.argv.includes('--keep');
const jsonOut = process.argv.includes('--json');
const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(
    'usage: npm run demo [-- --keep] [-- --json] [-- --verbose]\n\n' +
      '  --keep      leave the cloud and the simulated car running afterwards, print where everything is and how to use it\n' +
      '  --json      print the timeline as JSON lines (one event per step, then a summary)\n' +
      '  --verbose   under each step, show the carkey command and its output (progress and result in the order they happened)\n',
  );
  process.exit(0);
}
/** The car's name as the owner's phone stores it: the CLI then says "unlocked Test Car". */
const CAR_NAME = 'Test Car';

const CLOUD_FAULTS = ['500', 'hang', 'reset'] as const;
type Who = 'owner' | 'friend' | 'neighbour' | 'car' | 'cloud' | 'demo';

interface DemoEvent {
  readonly step: string;
  readonly who: Who;
  readonly ok: boolean;
  /** seconds since the demo started, at the end of the step */
  readonly at: number;
  /** how long the step took (ms) */
  readonly ms: number;
  readonly detail?: string;
  readonly data?: Record<string, unknown>;
}

const startedAt = performance.now();
const events: DemoEvent[] = [];

function section(text: string): void {
  if (!jsonOut) process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`);
}

function record(event: Omit<DemoEvent, 'at'>): DemoEvent {
  const full: DemoEvent = { ...event, at: Math.round((performance.now() - startedAt) / 100) / 10 };
  events.push(full);
  if (jsonOut) {
    process.stdout.write(`${JSON.stringify({ event: 'step', ...full })}\n`);
  } else {
    const mark = full.ok ? '\x1b[32m✓\x1b[0m' : '\x1b[31m✗\x1b[0m';
    const at = `${full.at.toFixed(1)}s`.padStart(7);
    const ms = `${Math.round(full.ms)} ms`.padStart(9);
    process.stdout.write(`[${at}] ${mark} ${full.who.padEnd(9)} ${full.step.padEnd(58)} ${ms}${full.detail === undefined ? '' : `  ${full.detail}`}\n`);
  }
  return full;
}

/** Time `fn`; record it as passed when `check` says so. */
async function timed<T>(who: Who, step: string, fn: () => Promise<T>, check: (value: T) => string | true, describe?: (value: T) => string | undefined, data?: (value: T) => Record<string, unknown>): Promise<{ value: T; ms: number; ok: boolean }> {
  const t0 = performance.now();
  let value: T;
  try {
    value = await fn();
  } catch (error) {
    const ms = performance.now() - t0;
    record({ step, who, ok: false, ms, detail: error instanceof Error ? error.message.split('\n')[0] : String(error) });
    throw error;
  }
  const ms = performance.now() - t0;
  const verdict = check(value);
  const detail = verdict === true ? describe?.(value) : verdict;
  const extra = data?.(value);
  record({ step, who, ok: verdict === true, ms, ...(detail === undefined ? {} : { detail }), ...(extra === undefined ? {} : { data: extra }) });
  return { value, ms, ok: verdict === true };
}

let rig: CarRig | undefined;
let cloud: Started | undefined;
let cloudUrl = '';

function carkey(who: Who, args: readonly string[]): Promise<CliResult> {
  if (rig === undefined) throw new Error('no rig');
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, who), '--transport', 'sim', '--radio', rig.radio, '--timeout', '5000', '--json', ...args]);
}

function parsed(result: CliResult): Record<string, unknown> {
  try {
    return JSON.parse(result.stdout) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function errorCode(result: CliResult): string {
  const error = parsed(result).error as { code?: unknown } | undefined;
  return typeof error?.code === 'string' ? error.code : '';
}

function exitedWith(code: number): (result: CliResult) => string | true {
  return (result) => (result.code === code ? true : `exit ${result.code} (expected ${code}) ${(errorCode(result) || result.stderr.trim().split('\n')[0]) ?? ''}`);
}

const VERBOSE_LINE_MAX = 200;

/** With --verbose: the command as a person types it, then its output lines in arrival order (⋮ progress on stderr, → stdout). */
function showRun(args: readonly string[], result: CliResult): void {
  if (!verbose || jsonOut) return;
  process.stdout.write(`            $ carkey ${args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(' ')}\n`);
  for (const chunk of result.output) {
    for (const line of chunk.text.split('\n')) {
      if (line.trim() === '') continue;
      const shown = line.length > VERBOSE_LINE_MAX ? `${line.slice(0, VERBOSE_LINE_MAX)}…` : line;
      process.stdout.write(`              ${chunk.stream === 'stderr' ? '⋮' : '→'} ${shown}\n`);
    }
  }
}

/** A CLI step: `carkey ARGS` as WHO, passing when it exits with `expect`. */
async function cli(who: Who, step: string, args: readonly string[], expect = 0, describe?: (result: CliResult) => string | undefined): Promise<{ value: CliResult; ms: number; ok: boolean }> {
  const step_ = await timed(who, step, () => carkey(who, args), exitedWith(expect), describe);
  showRun(args, step_.value);
  return step_;
}

async function carState(): Promise<Record<string, unknown>> {
  const response = await fetch(`${String(rig?.daemon?.ready.status)}/state`);
  return (await response.json()) as Record<string, unknown>;
}

async function syncState(): Promise<Record<string, unknown>> {
  return ((await carState()).sync as Record<string, unknown> | undefined) ?? {};
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function display(): Promise<string> {
  if (rig === undefined) return '';
  const out = await hardwareCtl(rig, 'state', '--json');
  return (JSON.parse(out.stdout) as { display: string[] }).display.join(' | ');
}

async function setFault(mode: string): Promise<void> {
  const response = await fetch(`${cloudUrl}/_faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ route: '*', mode }) });
  if (response.status !== 200) throw new Error(`POST /_faults answered ${response.status}`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const UNLOCK_RUNS = 3;

/** RUNS unlocks (each followed by a lock) as WHO; one event with the median. */
async function unlocks(who: 'owner' | 'friend', label: string, healthy?: number): Promise<number> {
  const times: number[] = [];
  let failed = '';
  let shown: CliResult | undefined;
  const t0 = performance.now();
  for (let i = 0; i < UNLOCK_RUNS; i++) {
    const started = performance.now();
    const run = await carkey(who, ['unlock']);
    times.push(performance.now() - started);
    if (i === 0) shown = run;
    if (run.code !== 0) failed = `unlock ${i + 1}: exit ${run.code} ${errorCode(run)}`;
    const lock = await carkey(who, ['lock']);
    if (lock.code !== 0) failed = `lock ${i + 1}: exit ${lock.code} ${errorCode(lock)}`;
  }
  const p50 = median(times);
  const vs = healthy === undefined ? '' : ` (healthy ${Math.round(healthy)} ms, ×${(p50 / healthy).toFixed(2)})`;
  record({
    step: `${label}: ${UNLOCK_RUNS}× unlock + lock`,
    who,
    ok: failed === '',
    ms: performance.now() - t0,
    detail: failed === '' ? `unlock median ${Math.round(p50)} ms${vs}` : failed,
    data: { unlockMs: times.map(Math.round), medianMs: Math.round(p50), ...(healthy === undefined ? {} : { healthyMedianMs: Math.round(healthy), ratio: Math.round((p50 / healthy) * 100) / 100 }) },
  });
  if (shown !== undefined) showRun(['unlock'], shown);
  return p50;
}

async function main(): Promise<void> {
  section('Starting carkey-cloud (SQLite), the simulated radio, the simulated body controller and carkeyd: each its own process');
  await timed(
    'demo',
    'start carkey-cloud, sim radio, body controller, carkeyd',
    async () => {
      rig = await startRig({ config: { startPin: '4711', logLevel: 'warn' } });
      cloud = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', join(rig.dir, 'cloud-data'), '--faults', '--log-level', 'warn'], { env: { DATABASE_URL: '' } });
      cloudUrl = String(cloud.ready.url);
      const config = JSON.parse(readFileSync(rig.configPath, 'utf8')) as Record<string, unknown>;
      config.cloud = { url: cloudUrl, longPollSeconds: 5, requestTimeoutMs: 2000, auditUploadIntervalMs: 1000 };
      writeFileSync(rig.configPath, JSON.stringify(config));
      return startDaemonProcess(rig);
    },
    () => true,
    (daemon) => `cloud ${cloudUrl}, car key ${String(daemon.ready.vehicleKeyId)}`,
  );
  if (rig === undefined) throw new Error('no rig');
  const car = rig;

  section('1. The owner pairs: physical button, the same code on the car and the phone, confirmed by holding the button');
  for (const who of ['owner', 'friend', 'neighbour'] as const) await cli(who, 'keygen', ['keygen']);
  for (const who of ['owner', 'friend'] as const) await cli(who, 'cloud use', ['cloud', 'use', cloudUrl]);
  await timed('owner', 'pair: code on the car and the phone, button held', async () => {
    await hardwareCtl(car, 'press-button');
    const pairing = carkey('owner', ['pair', '--yes', '--name', CAR_NAME]);
    const prompt = await until('the car to show the code', async () => {
      const shown = await display();
      return /Code \d{6}.*Hold button/.test(shown) ? shown : undefined;
    }, 15_000);
    await hardwareCtl(car, 'long-press');
    const result = await pairing;
    return { result, prompt };
  }, ({ result }) => exitedWith(0)(result), ({ prompt }) => `display: "${prompt}"`).then((step) => showRun(['pair', '--yes', '--name', CAR_NAME], step.value.result));

  section('2. The owner registers the car with the cloud (the car signs; the cloud only relays)');
  await timed('car', 'the car announces itself to the cloud (its own modem)', () => until('the car to register', async () => ((await syncState()).registered === true ? true : undefined), 20_000), () => true);
  await cli('owner', 'cloud register (the car-signed statement, via the phone)', ['cloud', 'register'], 0, (r) => `cloud follows key list version ${String(parsed(r).version)}`);

  section('3. Unlock: decided by the car alone, over Bluetooth');
  const ownerHealthy = await unlocks('owner', 'cloud healthy');

  section('4. A time-boxed key for a friend, through the cloud mailbox (sealed to the friend; the cloud cannot read it)');
  const friendKey = String(parsed(await carkey('friend', ['whoami'])).publicKey);
  await cli('owner', 'share --role guest --until +2h --via-cloud', ['share', '--role', 'guest', '--until', '+2h', '--to', friendKey, '--via-cloud'], 0, (r) => `mailbox item ${String((parsed(r).mailbox as { id?: unknown } | undefined)?.id)}, until ${String(parsed(r).notAfter)}`);
  await cli('friend', 'inbox', ['inbox'], 0, (r) => `${(parsed(r).items as unknown[] | undefined)?.length ?? 0} item(s)`);
  await cli('friend', 'accept --from-cloud', ['accept', '--from-cloud'], 0);
  const friendHealthy = await unlocks('friend', 'cloud healthy');

  section('5. The cloud fails: 500, then no answer at all, then connection resets. The car and the phones do not need it.');
  for (const mode of CLOUD_FAULTS) {
    await timed('cloud', `fault switch: every route ${mode === '500' ? 'answers 500' : mode === 'hang' ? 'hangs (never answers)' : 'resets the connection'}`, () => setFault(mode), () => true);
    await cli('friend', 'inbox (the cloud is down: must fail)', ['--timeout', '1500', 'inbox'], mode === 'hang' ? 5 : 6, (r) => errorCode(r));
    await unlocks('owner', `cloud ${mode}`, ownerHealthy);
    await unlocks('friend', `cloud ${mode}`, friendHealthy);
  }

  section('6. While the cloud is still down, the owner revokes the friend over Bluetooth');
  await cli('owner', 'revoke FRIEND (over BLE, cloud down)', ['revoke', friendKey], 0, (r) => `key list version ${String(parsed(r).version)} in force: ${String(parsed(r).delivered)}`);
  await cli('friend', 'unlock (revoked: must be denied)', ['unlock'], 3, (r) => `denied: ${errorCode(r)}`);

  section('7. The cloud comes back: the car uploads its audit log, the owner verifies the chain from the cloud');
  await timed('cloud', 'fault switch off', () => setFault('off'), () => true);
  const back = performance.now();
  const lastSeq = await timed('car', 'uploads its audit log to the cloud', async () => {
    const target = Number((await carState()).auditLastSeq);
    return until('the audit upload', async () => {
      const seq = (await syncState()).auditUploadedSeq;
      return typeof seq === 'number' && seq >= target ? seq : undefined;
    }, 120_000);
  }, () => true, (seq) => `entries up to #${seq} uploaded ${((performance.now() - back) / 1000).toFixed(1)} s after the cloud came back`);
  await cli('owner', 'audit --from-cloud --verify', ['audit', '--from-cloud', '--verify', '--limit', '1000'], 0, (r) => {
    const verified = parsed(r).verified as { entries?: unknown; checkpoints?: unknown } | undefined;
    return `chain verified against the pinned car key: ${String(verified?.entries)} entries, ${String(verified?.checkpoints)} checkpoint(s) (car uploaded #${lastSeq.value})`;
  });

  section('8. A revocation through the cloud reaches the parked car: no phone near it');
  const neighbourKey = String(parsed(await carkey('neighbour', ['whoami'])).publicKey);
  const shareFile = join(car.dir, 'neighbour.carkey');
  await cli('owner', 'share --role guest --until +1d (a file, offline)', ['share', '--role', 'guest', '--until', '+1d', '--to', neighbourKey, '--out', shareFile]);
  await cli('neighbour', 'accept the share', ['accept', shareFile]);
  await cli('neighbour', 'unlock', ['unlock']);
  await cli('neighbour', 'lock', ['lock']);
  const before = Number((await carState()).keyListVersion);
  await cli('owner', 'revoke NEIGHBOUR --offline (queued on the phone)', ['revoke', neighbourKey, '--offline']);
  const syncStarted = performance.now();
  await cli('owner', 'sync (publishes the list on the cloud)', ['sync'], 0, (r) => {
    const vehicle = (parsed(r).vehicles as { published?: unknown; rebasedOn?: unknown }[] | undefined)?.[0];
    return `published version ${String(vehicle?.published)}${typeof vehicle?.rebasedOn === 'number' ? ` (rebased on ${vehicle.rebasedOn})` : ''}`;
  });
  await timed('car', 'applies the new key list (long-poll wake-up)', () => until('the car to apply the cloud list', async () => {
    const version = Number((await carState()).keyListVersion);
    return version > before ? version : undefined;
  }, 30_000), () => true, (version) => `key list version ${before} → ${version}, ${Math.round(performance.now() - syncStarted)} ms after \`carkey sync\` started`);
  await cli('neighbour', 'unlock (revoked through the cloud: must be denied)', ['unlock'], 3, (r) => `denied: ${errorCode(r)}`);
  await cli('owner', 'unlock (the owner, of course, still can)', ['unlock']);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : typeof error === 'string' ? error : JSON.stringify(error);
}

async function finish(error?: unknown): Promise<never> {
  if (error !== undefined && !events.some((e) => !e.ok)) record({ step: 'demo', who: 'demo', ok: false, ms: 0, detail: messageOf(error).split('\n')[0] });
  const failed = events.filter((e) => !e.ok);
  const totalMs = Math.round(performance.now() - startedAt);
  if (jsonOut) process.stdout.write(`${JSON.stringify({ event: 'summary', ok: failed.length === 0 && error === undefined, steps: events.length, failed: failed.map((e) => e.step), totalMs })}\n`);
  else section(failed.length === 0 && error === undefined ? `Demo complete: all ${events.length} steps behaved as described (${(totalMs / 1000).toFixed(1)} s).` : `Demo FAILED: ${failed.map((e) => e.step).join('; ')}`);
  if (error !== undefined) process.stderr.write(`demo failed: ${messageOf(error)}\n`);
  if (failed.length > 0 || error !== undefined) process.stderr.write(`\n--- carkey-cloud stderr (tail) ---\n${cloud?.stderr().slice(-4000) ?? ''}\n--- carkeyd stderr (tail) ---\n${rig?.daemon?.stderr().slice(-4000) ?? ''}\n`);
  if (keep && rig !== undefined) {
    const dir = rig.dir;
    process.stderr.write(
      `\nThe cloud and the simulated car keep running. Everything lives in ${dir}:\n` +
        `  ${join(dir, 'owner')}, ${join(dir, 'friend')}, ${join(dir, 'neighbour')}   the phones' key stores (private keys)\n` +
        `  ${rig.stateDir}   carkeyd's state (car identity, key list, audit log); config ${rig.configPath}\n` +
        `  ${join(dir, 'cloud-data')}   carkey-cloud's SQLite database, at ${cloudUrl}\n` +
        `  ${rig.radio} (sim radio), ${rig.hardware} (body controller)\n` +
        `Try:\n` +
        `  export CARKEY_TRANSPORT=sim CARKEY_RADIO=${rig.radio} CARKEY_HOME=${join(dir, 'owner')} CARKEY_CLOUD=${cloudUrl}\n` +
        `  node bin/carkey.js unlock\n` +
        `  node bin/carkey.js audit --from-cloud --verify\n` +
        `  curl -X POST -H 'content-type: application/json' -d '{"route":"*","mode":"hang"}' ${cloudUrl}/_faults\n` +
        `  node dist/firmware-sim/hardware/ctl.js --socket ${rig.hardware} state\n` +
        `Ctrl-C stops carkey-cloud, carkeyd, the body controller and the radio, then DELETES ${dir} with every key in it\n` +
        `(copy what you want to keep first; these are demo keys for a simulated car).\n`,
    );
    waitingForCtrlC = true;
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    process.stderr.write(`\nstopping carkey-cloud, carkeyd, the body controller and the radio; removing ${dir} (the demo's keys, car state and cloud database)\n`);
  }
  await stopProgram(cloud);
  await stopRig(rig);
  if (keep) process.stderr.write('stopped; removed.\n');
  process.exit(failed.length === 0 && error === undefined ? 0 : 1);
}

/** Ctrl-C in the middle of the story: say what is stopped and removed, then do it (exit 130). */
let waitingForCtrlC = false;
process.on('SIGINT', () => {
  if (waitingForCtrlC) return;
  waitingForCtrlC = true;
  process.stderr.write(`\ninterrupted: stopping carkey-cloud, carkeyd, the body controller and the radio${rig === undefined ? '' : `; removing ${rig.dir} (the demo's keys, car state and cloud database)`}\n`);
  void stopProgram(cloud)
    .then(() => stopRig(rig))
    .finally(() => process.exit(130));
});

main().then(
  () => finish(),
  (error: unknown) => finish(error),
);
