/**
 * `--timeout` is a deadline for the whole command (CarkeyClient deadlineMs):
 * each step gets at most what is left, retries stop when nothing is left, and
 * without a deadline the per-attempt timeouts apply as before. Time is a fake
 * monotonic clock (performance.now) that the stub radio advances by exactly
 * the time each step was allowed: no real waiting, no timing assertions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { createCrypto } from '../../src/core/crypto/index.js';
import { CarkeyError } from '../../src/core/errors.js';
import { ADV_FLAG_PAIRING, encodeServiceData } from '../../src/core/identity.js';
import { CarkeyClient, MAX_BACKOFF_MS, type ClientTimeouts } from '../../src/phone/client.js';
import { KeyStore } from '../../src/phone/keystore.js';
import type { CentralTransport, Discovery } from '../../src/transport/types.js';
import { seededRandom } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
const dir = mkdtempSync(join(tmpdir(), 'ck-deadline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

const car: Discovery = { address: 'car', localName: 'carkey', serviceData: encodeServiceData(ADV_FLAG_PAIRING, new Uint8Array(8)), rssi: -50 };

/** A car that is seen after 100 ms but whose connection attempts hang until their timeout, then fail. */
function run(timeouts: Partial<ClientTimeouts>): Promise<{ error: CarkeyError; scans: number[]; connects: number[]; elapsed: number }> {
  let now = 1000;
  vi.spyOn(performance, 'now').mockImplementation(() => now);
  const scans: number[] = [];
  const connects: number[] = [];
  const transport: CentralTransport = {
    scan: (options) => {
      scans.push(options.timeoutMs);
      now += 100;
      return Promise.resolve({ match: car, seen: [car] });
    },
    connect: (_discovery, options) => {
      connects.push(options.timeoutMs);
      now += options.timeoutMs;
      return Promise.reject(new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', 'timed out'));
    },
    close: () => Promise.resolve(),
  };
  const random = seededRandom('deadline');
  const store = new KeyStore(join(dir, `phone-${Math.random().toString(16).slice(2)}`), { crypto, random, clock: () => Date.now(), sleep: () => Promise.resolve() });
  const client = new CarkeyClient(
    {
      crypto,
      random,
      clock: () => Date.now(),
      sleep: (ms) => {
        now += ms;
        return Promise.resolve();
      },
      openTransport: () => Promise.resolve(transport),
      store,
    },
    timeouts,
  );
  const started = now;
  return client.pair({ seed: new Uint8Array(32), phoneName: 'phone', confirmCode: () => Promise.resolve(true) }).then(
    () => {
      throw new Error('paired');
    },
    (error: unknown) => ({ error: error as CarkeyError, scans, connects, elapsed: now - started }),
  );
}

describe('the whole-command deadline', () => {
  it('without one, every attempt gets the full per-step timeouts (3 attempts of 10 s)', async () => {
    const result = await run({});
    expect(result.connects).toEqual([10_000, 10_000, 10_000]);
    expect(result.error.code).toBe('CK_TRANSPORT_CONNECT_FAILED');
  });

  it('with deadlineMs 2000 the command ends within 2000 ms: the connect gets what is left, no retry', async () => {
    const result = await run({ deadlineMs: 2000 });
    expect(result.scans).toEqual([2000]);
    expect(result.connects).toEqual([1900]);
    expect(result.elapsed).toBeLessThanOrEqual(2000);
    expect(result.error.code).toBe('CK_TRANSPORT_CONNECT_FAILED');
  });

  it('retries while time is left (not only 3 attempts), each bounded by the rest of the deadline', async () => {
    const result = await run({ deadlineMs: 5000, connectMs: 1000, backoffMs: 100 });
    // 100 scan + 1000 connect, 100 backoff; 1100, 200 backoff; 1100, 400 backoff (4000 ms);
    // 100 scan + the 900 ms left for the 4th connect: 5000 ms, and the next backoff does not fit.
    expect(result.connects).toEqual([1000, 1000, 1000, 900]);
    expect(result.elapsed).toBe(5000);
  });

  it('with a deadline the backoff doubles up to MAX_BACKOFF_MS (1000 ms) and no further', async () => {
    expect(MAX_BACKOFF_MS).toBe(1000);
    const result = await run({ deadlineMs: 20_000, connectMs: 100, backoffMs: 250 });
    // Attempts of 200 ms (100 scan + 100 connect); backoffs 250, 500, then 1000 each:
    // attempt 3 ends at 1350, attempt k ≥ 3 at 1350 + (k - 3) × 1200; attempt 18 ends at 19350,
    // and the next 1000 ms backoff does not fit in the 650 ms left. (Doubling without the cap
    // would give 8 attempts.)
    expect(result.connects.length).toBe(18);
    expect(result.elapsed).toBe(19_350);
  });

  it('nothing starts once the deadline has passed', async () => {
    const result = await run({ deadlineMs: 1100, connectMs: 1000, backoffMs: 1 });
    // 100 scan + 1000 connect = 1100: the retry's 1 ms backoff does not fit.
    expect(result.connects).toEqual([1000]);
    expect(result.elapsed).toBe(1100);
  });
});
