/**
 * The daemon's failure containment, unit by unit: the AuditWriter never
 * throws and reports failures (counters, last error, metrics, throttled
 * log); callback boundaries never throw or leave a rejection; the refusal
 * tally is bounded, fits the audit format, and loses no counts when the
 * summary cannot be written.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { validateAuditRecord, type AuditEntry, type AuditFields, type AuditKind } from '../../src/core/audit.js';
import { CarkeyError } from '../../src/core/errors.js';
import { AuditWriter } from '../../src/vehicle/audit-writer.js';
import { guarded } from '../../src/vehicle/boundary.js';
import { DaemonMetrics } from '../../src/vehicle/metrics.js';
import { MAX_REASONS, RefusalTally } from '../../src/vehicle/refusal-tally.js';

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const entry = (kind: AuditKind, fields: AuditFields): AuditEntry => ({ seq: 1, time: 0, kind, fields, hash: new Uint8Array(64) });
const full = (): never => {
  throw new CarkeyError('CK_STORE_IO', 'state.db: database or disk is full', { sqlite: 'SQLITE_FULL' });
};

describe('AuditWriter', () => {
  it('a failing store never throws: counted, kept as lastError, on metrics, logged once a minute', async () => {
    const { logger, lines } = capture();
    const metrics = new DaemonMetrics({ defaultMetrics: false });
    let now = 1000;
    let failing = true;
    const writer = new AuditWriter({ store: { appendAudit: (kind, fields) => (failing ? full() : entry(kind, fields)) }, logger, metrics, now: () => now });
    for (let i = 0; i < 5; i++) expect(writer.append('decision', { i })).toBeUndefined();
    expect(writer.failures).toBe(5);
    expect(writer.degraded).toBe(true);
    expect(writer.lastError).toMatchObject({ code: 'CK_STORE_IO', sqlite: 'SQLITE_FULL', kind: 'decision', at: 1000 });
    expect(lines().filter((l) => l.msg === 'audit append failed; carrying on without it')).toHaveLength(1);
    now += 61_000;
    writer.append('decision', {});
    expect(lines().filter((l) => l.msg === 'audit append failed; carrying on without it').at(-1)).toMatchObject({ errorCode: 'CK_STORE_IO', suppressed: 4 });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/carkey_audit_failures_total\{code="CK_STORE_IO"\} 6/);
    expect(text).toMatch(/carkey_audit_degraded 1/);
    failing = false;
    expect(writer.append('decision', { ok: true })).toMatchObject({ kind: 'decision' });
    expect(writer.degraded).toBe(false);
    expect(await metrics.registry.metrics()).toMatch(/carkey_audit_degraded 0/);
  });

  it('a store throwing a non-carkey error is contained too', () => {
    const { logger } = capture();
    const writer = new AuditWriter({
      store: {
        appendAudit: () => {
          throw new TypeError('boom');
        },
      },
      logger,
    });
    expect(writer.append('boot', {})).toBeUndefined();
    expect(writer.lastError?.code).toBe('CK_INTERNAL');
  });
});

describe('guarded callback boundaries', () => {
  it('sync throws and async rejections stop at the boundary; logging is throttled', async () => {
    const { logger, lines } = capture();
    let now = 0;
    const failures: string[] = [];
    const tick = guarded(logger, 'ticker', () => full(), { now: () => now, onFailure: (where, code) => failures.push(`${where}:${code}`) });
    for (let i = 0; i < 10; i++) expect(() => tick()).not.toThrow();
    const rejecting = guarded(logger, 'async', () => Promise.reject(new Error('later')));
    rejecting();
    await new Promise((r) => setTimeout(r, 10));
    expect(failures).toHaveLength(10);
    expect(failures[0]).toBe('ticker:CK_STORE_IO');
    expect(lines().filter((l) => l.where === 'ticker')).toHaveLength(1);
    expect(lines().filter((l) => l.where === 'async')).toHaveLength(1);
    now = 60_000;
    tick();
    expect(lines().filter((l) => l.where === 'ticker').at(-1)).toMatchObject({ suppressed: 9, errorCode: 'CK_STORE_IO' });
  });
});

describe('RefusalTally', () => {
  it('counts by reason and writes one summary entry that fits the audit format', () => {
    const tally = new RefusalTally();
    for (let i = 0; i < 1000; i++) tally.record(i % 3 === 0 ? 'unknown-key' : 'CK_PROTO_BAD_PHONE_SIGNATURE', 5000 + i);
    const written: AuditFields[] = [];
    const result = tally.flush((fields) => {
      written.push(fields);
      return entry('refusal-summary', fields);
    }, 70_000);
    expect(result).toBeDefined();
    expect(written).toEqual([{ total: 1000, since: 5000, until: 70_000, 'CK_PROTO_BAD_PHONE_SIGNATURE': 666, 'unknown-key': 334 }]);
    expect(tally.pending).toBe(0);
    expect(tally.flush(() => entry('refusal-summary', {}), 80_000)).toBeUndefined(); // nothing new: no entry
  });

  it('stays bounded: more reasons than fit go to "other"; the entry is a valid audit record', () => {
    const tally = new RefusalTally();
    for (let i = 0; i < 100; i++) tally.record(`reason-${i}`, i);
    tally.record('bad reason with spaces', 100);
    const fields = tally.summary(200);
    expect(fields).toBeDefined();
    if (fields === undefined) return;
    expect(Object.keys(fields)).toHaveLength(MAX_REASONS + 4);
    expect(fields.other).toBe(100 - MAX_REASONS + 1);
    expect(validateAuditRecord({ seq: 1, time: 200, kind: 'refusal-summary', fields }).ok).toBe(true);
  });

  it('keeps its counts when the summary cannot be written, and reports them later', () => {
    const tally = new RefusalTally();
    tally.record('unknown-key', 10);
    expect(tally.flush(() => undefined, 20)).toBeUndefined();
    tally.record('unknown-key', 30);
    const written: AuditFields[] = [];
    tally.flush((fields) => {
      written.push(fields);
      return entry('refusal-summary', fields);
    }, 40);
    expect(written).toEqual([{ total: 2, since: 10, until: 40, 'unknown-key': 2 }]);
  });
});
