/**
 * Child process for the crash-safety and lock tests (compiled to
 * dist/test/helpers/crash-writer.js by `npm run build`).
 *
 *   node crash-writer.js <stateDir> churn <seed> <checkpointInterval>
 *   node crash-writer.js <stateDir> hold
 *
 * Opens the VehicleStore in <stateDir> and prints `ready <keyListVersion> <lastAuditSeq>`.
 * `churn` then loops forever over seeded random operations and prints one
 * line after each COMMITTED operation (the call has returned, so the commit
 * is fsynced):
 *   ack keylist <version>   replaceKeyList(keyListBytesFor(version), version)
 *   ack audit <seq>         an audit entry with this seq exists
 *   ack floor <ms>          the time floor is at least ms
 * `hold` keeps the store (and its lock) open and idle. Either way the parent
 * ends it with SIGKILL; a watchdog exits after MAX_LIFETIME_MS so an orphan
 * cannot outlive a crashed test run. If open fails the writer prints
 * `error <CK_CODE>` and exits with status 4.
 *
 * Each line is written with writeSync on fd 1 only after the call returned,
 * so the parent never sees an ack for an operation that was not committed.
 */
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createCrypto } from '../../src/core/crypto/index.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { VehicleStore } from '../../src/vehicle/store.js';

const MAX_LIFETIME_MS = 20_000;

/** mulberry32: a tiny deterministic PRNG (test data only). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The key-list bytes the writer stores for `version`: a pure function of it (16..527 bytes). */
export function keyListBytesFor(version: number): Uint8Array {
  const next = seededRandom(version ^ 0x5eed_cafe);
  const out = new Uint8Array(16 + (Math.imul(version, 2654435761) >>> 0) % 512);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(next() * 256);
  return out;
}

function say(line: string): void {
  writeSync(1, `${line}\n`);
}

function churn(store: VehicleStore, seed: number, deadline: number): never {
  const next = seededRandom(seed);
  for (;;) {
    if (Date.now() > deadline) process.exit(3);
    const pick = next();
    if (pick < 0.3) {
      const version = store.keyListVersion() + 1;
      const { auditEntry } = store.replaceKeyList(keyListBytesFor(version), version, { source: 'crash-test' });
      say(`ack keylist ${version}`);
      say(`ack audit ${auditEntry.seq}`);
    } else if (pick < 0.4) {
      const floor = store.raiseTimeFloor(store.timeFloor() + 1 + Math.floor(next() * 1000));
      say(`ack floor ${floor}`);
    } else if (pick < 0.5) {
      // several statements in one transaction
      const entry = store.atomically(() => {
        store.setMeta('crash.counter', store.lastAuditSeq());
        store.appendAudit('config', { note: 'meta and audit together' });
        return store.appendAudit('config', { note: 'second entry of the batch' });
      });
      say(`ack audit ${entry.seq}`);
    } else {
      const entry = store.appendAudit('decision', {
        result: next() < 0.8 ? 'allow' : 'deny',
        command: 'unlock',
        rssi: -40 - Math.floor(next() * 50),
        responseTimeMs: Math.round(next() * 10_000) / 100,
        keyId: `k${Math.floor(next() * 1e6)}`,
      });
      say(`ack audit ${entry.seq}`);
    }
  }
}

function main(argv: readonly string[]): void {
  const [stateDir, mode, seedText, intervalText] = argv;
  if (stateDir === undefined || (mode !== 'churn' && mode !== 'hold')) {
    process.stderr.write('usage: crash-writer <stateDir> churn <seed> <checkpointInterval> | crash-writer <stateDir> hold\n');
    process.exit(2);
  }
  setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();
  let store: VehicleStore;
  try {
    store = VehicleStore.open(stateDir, {
      crypto: createCrypto('node'),
      now: () => Date.now(),
      random: (length) => new Uint8Array(randomBytes(length)),
      checkpointInterval: Number(intervalText ?? '64'),
    });
  } catch (error) {
    const code = isCarkeyError(error) ? error.code : 'UNKNOWN';
    say(`error ${code}`);
    process.exit(4);
  }
  say(`ready ${store.keyListVersion()} ${store.lastAuditSeq()}`);
  if (mode === 'hold') {
    setInterval(() => undefined, 1000);
    return;
  }
  // churn never yields to the event loop, so it checks the deadline itself.
  churn(store, Number(seedText ?? '1'), Date.now() + MAX_LIFETIME_MS);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) main(process.argv.slice(2));
