/**
 * Tests of the pure audit chain (src/core/audit.ts): the canonical encoding
 * and link hash against an independent node:crypto computation, record
 * validation, a table of tamper cases that must each give
 * CK_AUDIT_CHAIN_BROKEN naming the place, the reporting of the unsigned tail,
 * and a property test (fixed seed) that any rewrite of a checkpointed entry is
 * caught even when the attacker re-hashes the chain.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import type { Result } from '../../src/core/errors.js';
import {
  AUDIT_GENESIS_HASH,
  auditLinkHash,
  canonicalAuditRecord,
  checkpointPayload,
  signCheckpoint,
  validateAuditRecord,
  verifyAudit,
  type AuditCheckpoint,
  type AuditEntry,
  type AuditRecord,
  type AuditVerification,
} from '../../src/core/audit.js';

const crypto = createCrypto('node');
const vehicleSeed = new Uint8Array(32).fill(7);
const vehicleKey = crypto.publicKeyFromSeed(vehicleSeed);
const otherSeed = new Uint8Array(32).fill(9);
const otherKey = crypto.publicKeyFromSeed(otherSeed);

interface Log {
  entries: AuditEntry[];
  checkpoints: AuditCheckpoint[];
}

function recordAt(seq: number): AuditRecord {
  return {
    seq,
    time: 1_700_000_000_000 + seq * 1000,
    kind: seq % 3 === 0 ? 'key-list' : 'decision',
    fields: { result: seq % 4 === 0 ? 'deny' : 'allow', rssi: -40 - seq, keyId: `k${seq}`, responseTimeMs: seq / 4 },
  };
}

/** Re-link `records` from genesis (what an attacker without the key can do). */
function chain(records: readonly AuditRecord[]): AuditEntry[] {
  let previous = AUDIT_GENESIS_HASH;
  return records.map((record) => {
    const hash = auditLinkHash(crypto, previous, record);
    previous = hash;
    return { ...record, hash };
  });
}

/** A log of `count` entries with a checkpoint every `interval`. */
function buildLog(count: number, interval: number, seed = vehicleSeed): Log {
  const entries = chain(Array.from({ length: count }, (_, i) => recordAt(i + 1)));
  const checkpoints = entries.filter((e) => e.seq % interval === 0).map((e) => signCheckpoint(crypto, seed, e.seq, e.hash));
  return { entries, checkpoints };
}

function expectBroken(result: Result<AuditVerification>, detail: RegExp): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.error.code).toBe('CK_AUDIT_CHAIN_BROKEN');
  expect(result.error.message).toMatch(detail);
}

describe('canonical encoding and hashes', () => {
  it('is sorted-key JSON without whitespace (RFC 8785 for flat values)', () => {
    const record: AuditRecord = {
      seq: 12,
      time: 1_700_000_000_123,
      kind: 'decision',
      fields: { rssi: -61, result: 'allow', command: 'unlock', late: false, note: null, responseTimeMs: 8.25, text: 'a"b\\c\u00e9\n', zero: -0 },
    };
    const text = new TextDecoder().decode(canonicalAuditRecord(record));
    expect(text).toBe(
      '{"fields":{"command":"unlock","late":false,"note":null,"responseTimeMs":8.25,"result":"allow","rssi":-61,"text":"a\\"b\\\\c\u00e9\\n","zero":0},' +
        '"kind":"decision","seq":12,"time":1700000000123}',
    );
  });

  it('does not depend on the order fields were inserted', () => {
    const a = canonicalAuditRecord({ seq: 1, time: 5, kind: 'boot', fields: { b: 1, a: 2 } });
    const b = canonicalAuditRecord({ seq: 1, time: 5, kind: 'boot', fields: { a: 2, b: 1 } });
    expect(toHex(a)).toBe(toHex(b));
  });

  it('link hash = SHA-512(label ‖ prevHash ‖ canonical), checked with node:crypto directly', () => {
    const record = recordAt(1);
    const label = Buffer.from('carkey/v1/audit-entry\0', 'latin1');
    const expected = createHash('sha512').update(label).update(new Uint8Array(64)).update(canonicalAuditRecord(record)).digest();
    expect(toHex(auditLinkHash(crypto, AUDIT_GENESIS_HASH, record))).toBe(expected.toString('hex'));
  });

  it('checkpoint payload = label ‖ u64be(seq) ‖ hash', () => {
    const hash = new Uint8Array(64).fill(0xab);
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(300n);
    const expected = Buffer.concat([Buffer.from('carkey/v1/audit-checkpoint\0', 'latin1'), seq, hash]);
    expect(toHex(checkpointPayload(300, hash))).toBe(expected.toString('hex'));
  });

  it('gives identical hashes and signatures on the tweetnacl backend', () => {
    const nacl = createCrypto('tweetnacl');
    const record = recordAt(3);
    expect(toHex(auditLinkHash(nacl, AUDIT_GENESIS_HASH, record))).toBe(toHex(auditLinkHash(crypto, AUDIT_GENESIS_HASH, record)));
    const log = buildLog(8, 4);
    expect(verifyAudit(log.entries, log.checkpoints, vehicleKey, nacl).ok).toBe(true);
  });
});

describe('record validation', () => {
  const base = recordAt(1);
  const invalid: readonly [string, AuditRecord][] = [
    ['seq 0', { ...base, seq: 0 }],
    ['fractional seq', { ...base, seq: 1.5 }],
    ['negative time', { ...base, time: -1 }],
    ['fractional time', { ...base, time: 1.5 }],
    ['upper-case kind', { ...base, kind: 'Decision' }],
    ['empty kind', { ...base, kind: '' }],
    ['nested object', { ...base, fields: { nested: { a: 1 } } as unknown as AuditRecord['fields'] }],
    ['array value', { ...base, fields: { list: [1, 2] } as unknown as AuditRecord['fields'] }],
    ['NaN', { ...base, fields: { x: Number.NaN } }],
    ['Infinity', { ...base, fields: { x: Number.POSITIVE_INFINITY } }],
    ['undefined value', { ...base, fields: { x: undefined } as unknown as AuditRecord['fields'] }],
    ['bad field name', { ...base, fields: { 'has space': 1 } }],
    ['too long string', { ...base, fields: { x: 'a'.repeat(1025) } }],
    ['too many fields', { ...base, fields: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}`, i])) }],
  ];
  it.each(invalid)('rejects %s with CK_CODEC_BAD_VALUE', (_name, record) => {
    const result = validateAuditRecord(record);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.code).toBe('CK_CODEC_BAD_VALUE');
  });

  it('accepts the documented value types', () => {
    expect(validateAuditRecord({ ...base, fields: { s: 'x', n: -1.25, b: true, z: null } }).ok).toBe(true);
  });
});

describe('verifyAudit', () => {
  it('accepts an intact log and reports the unsigned tail', () => {
    const log = buildLog(22, 5);
    const result = verifyAudit(log.entries, log.checkpoints, vehicleKey, crypto);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({ entries: 22, checkpoints: 4, lastSeq: 22, lastCheckpointSeq: 20, uncovered: 2 });
    expect(toHex(result.value.headHash)).toBe(toHex(log.entries[21]?.hash ?? new Uint8Array()));
  });

  it('accepts an empty log', () => {
    const result = verifyAudit([], [], vehicleKey, crypto);
    expect(result.ok && result.value).toMatchObject({ entries: 0, lastSeq: 0, uncovered: 0 });
  });

  it('cannot see a truncated unsigned tail, and says so through `uncovered`', () => {
    const log = buildLog(22, 5);
    const result = verifyAudit(log.entries.slice(0, 21), log.checkpoints, vehicleKey, crypto);
    expect(result.ok && result.value).toMatchObject({ lastSeq: 21, lastCheckpointSeq: 20, uncovered: 1 });
  });

  type Tamper = (log: Log) => Log;
  const at = (entries: AuditEntry[], seq: number): AuditEntry => {
    const entry = entries[seq - 1];
    if (entry === undefined) throw new Error(`no entry ${seq}`);
    return entry;
  };
  const replaceEntry = (log: Log, seq: number, change: (e: AuditEntry) => AuditEntry): Log => ({
    ...log,
    entries: log.entries.map((e) => (e.seq === seq ? change(e) : e)),
  });
  const replaceCheckpoint = (log: Log, seq: number, change: (c: AuditCheckpoint) => AuditCheckpoint): Log => ({
    ...log,
    checkpoints: log.checkpoints.map((c) => (c.seq === seq ? change(c) : c)),
  });
  const flipFirstBit = (bytes: Uint8Array): Uint8Array => {
    const copy = Uint8Array.from(bytes);
    copy[0] = (copy[0] ?? 0) ^ 1;
    return copy;
  };

  const cases: readonly { name: string; tamper: Tamper; detail: RegExp; details: Record<string, unknown>; key?: Uint8Array }[] = [
    {
      name: 'a changed field',
      tamper: (log) => replaceEntry(log, 7, (e) => ({ ...e, fields: { ...e.fields, result: 'deny' } })),
      detail: /entry seq 7: content does not match/,
      details: { seq: 7 },
    },
    {
      name: 'a changed time',
      tamper: (log) => replaceEntry(log, 2, (e) => ({ ...e, time: e.time + 1 })),
      detail: /entry seq 2: content/,
      details: { seq: 2 },
    },
    {
      name: 'a changed kind',
      tamper: (log) => replaceEntry(log, 9, (e) => ({ ...e, kind: 'boot' })),
      detail: /entry seq 9: content/,
      details: { seq: 9 },
    },
    {
      name: 'an added field',
      tamper: (log) => replaceEntry(log, 1, (e) => ({ ...e, fields: { ...e.fields, extra: 1 } })),
      detail: /entry seq 1: content/,
      details: { seq: 1 },
    },
    {
      name: 'a changed field with the chain re-hashed (no key)',
      tamper: (log) => ({ ...log, entries: chain(log.entries.map((e) => (e.seq === 7 ? { ...e, fields: { ...e.fields, result: 'deny' } } : e))) }),
      detail: /checkpoint at seq 10 does not match the chain: an entry with seq in 6\.\.10/,
      details: { checkpointSeq: 10, fromSeq: 6 },
    },
    {
      name: 'a deleted entry',
      tamper: (log) => ({ ...log, entries: log.entries.filter((e) => e.seq !== 12) }),
      detail: /entry seq 12 is missing \(found seq 13 in its place\)/,
      details: { expectedSeq: 12, foundSeq: 13 },
    },
    {
      name: 'a deleted entry, renumbered and re-hashed',
      tamper: (log) => ({
        ...log,
        entries: chain(log.entries.filter((e) => e.seq !== 12).map((e, i) => ({ seq: i + 1, time: e.time, kind: e.kind, fields: e.fields }))),
      }),
      detail: /checkpoint at seq 15 does not match the chain: an entry with seq in 11\.\.15/,
      details: { checkpointSeq: 15 },
    },
    {
      name: 'two swapped entries',
      tamper: (log) => ({ ...log, entries: log.entries.map((e) => (e.seq === 3 ? at(log.entries, 4) : e.seq === 4 ? at(log.entries, 3) : e)) }),
      detail: /entry seq 3 is missing \(found seq 4 in its place\)/,
      details: { expectedSeq: 3, foundSeq: 4 },
    },
    {
      name: 'two swapped entries keeping their seq numbers',
      tamper: (log) =>
        replaceEntry(replaceEntry(log, 3, (e) => ({ ...at(log.entries, 4), seq: e.seq })), 4, (e) => ({ ...at(log.entries, 3), seq: e.seq })),
      detail: /entry seq 3: content/,
      details: { seq: 3 },
    },
    {
      name: 'a duplicated entry',
      tamper: (log) => ({ ...log, entries: [...log.entries.slice(0, 5), at(log.entries, 5), ...log.entries.slice(5)] }),
      detail: /entry seq 5 appears where seq 6 was expected/,
      details: { expectedSeq: 6 },
    },
    {
      name: 'a forged checkpoint signature',
      tamper: (log) => replaceCheckpoint(log, 10, (c) => ({ ...c, signature: flipFirstBit(c.signature) })),
      detail: /checkpoint at seq 10: signature does not verify/,
      details: { checkpointSeq: 10 },
    },
    {
      name: 'a checkpoint signed by another key',
      tamper: (log) => replaceCheckpoint(log, 15, (c) => signCheckpoint(crypto, otherSeed, c.seq, c.hash)),
      detail: /checkpoint at seq 15: signature does not verify/,
      details: { checkpointSeq: 15 },
    },
    {
      name: 'a checkpoint whose hash was changed',
      tamper: (log) => replaceCheckpoint(log, 5, (c) => ({ ...c, hash: flipFirstBit(c.hash) })),
      detail: /checkpoint at seq 5: signature/,
      details: { checkpointSeq: 5 },
    },
    {
      name: 'a checkpoint moved to another seq',
      tamper: (log) => replaceCheckpoint(log, 20, (c) => ({ ...c, seq: 19 })),
      detail: /checkpoint at seq 19: signature/,
      details: { checkpointSeq: 19 },
    },
    {
      name: 'checkpoints out of order',
      tamper: (log) => ({ ...log, checkpoints: [...log.checkpoints].reverse() }),
      detail: /checkpoint seq 15 follows checkpoint seq 20/,
      details: { checkpointSeq: 15 },
    },
    {
      name: 'the wrong vehicle key',
      tamper: (log) => log,
      key: otherKey,
      detail: /checkpoint at seq 5: signature does not verify with the vehicle key/,
      details: { checkpointSeq: 5 },
    },
    {
      name: 'truncation below the last checkpoint',
      tamper: (log) => ({ ...log, entries: log.entries.slice(0, 17) }),
      detail: /checkpoint at seq 20 refers past the end of the log \(last entry seq 17\)/,
      details: { checkpointSeq: 20, lastSeq: 17 },
    },
    {
      name: 'a malformed stored entry',
      tamper: (log) => replaceEntry(log, 4, (e) => ({ ...e, fields: { ...e.fields, bad: Number.NaN } })),
      detail: /entry seq 4 is malformed/,
      details: { seq: 4 },
    },
  ];

  it.each(cases)('detects $name', ({ tamper, detail, details, key }) => {
    const log = tamper(buildLog(22, 5));
    const result = verifyAudit(log.entries, log.checkpoints, key ?? vehicleKey, crypto);
    expectBroken(result, detail);
    if (!result.ok) expect(result.error.details).toMatchObject(details);
  });

  it('property: rewriting any checkpointed entry is caught, even with the chain re-hashed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.string({ maxLength: 8 }),
        fc.boolean(),
        (count, interval, pick, value, rehash) => {
          const log = buildLog(count, interval);
          const lastCheckpointSeq = log.checkpoints.at(-1)?.seq ?? 0;
          const target = (pick % count) + 1;
          const changed = log.entries.map((e) => (e.seq === target ? { ...e, fields: { ...e.fields, keyId: `${String(e.fields['keyId'])}${value}!` } } : e));
          const entries = rehash ? chain(changed) : changed;
          const result = verifyAudit(entries, log.checkpoints, vehicleKey, crypto);
          // Without re-hashing every change is caught; with it, exactly the signed part is protected.
          const mustFail = !rehash || target <= lastCheckpointSeq;
          expect(result.ok).toBe(!mustFail);
          if (!result.ok) expect(result.error.code).toBe('CK_AUDIT_CHAIN_BROKEN');
        },
      ),
      { seed: 4242, numRuns: 200 },
    );
  });
});
