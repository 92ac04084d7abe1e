// Audit pages as the car's auditRead returns them: bounded decoding, and
// verification of the assembled chain against the pinned car key.
import { describe, expect, it } from 'vitest';
import { createCrypto } from '../../src/core/crypto/index.js';
import { MAX_AUDIT_PAGE } from '../../src/core/payloads.js';
import { AuditCollector, decodeAuditPage, encodeAuditPage, type AuditPage } from '../../src/core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, signCheckpoint, type AuditCheckpoint, type AuditEntry } from '../../src/core/audit.js';
import { fixedSeed } from '../helpers/core-fixtures.js';

const crypto = createCrypto('node');
const carSeed = fixedSeed('car');
const carKey = crypto.publicKeyFromSeed(carSeed);

function log(count: number, every = 3): { entries: AuditEntry[]; checkpoints: AuditCheckpoint[] } {
  const entries: AuditEntry[] = [];
  const checkpoints: AuditCheckpoint[] = [];
  let previous = AUDIT_GENESIS_HASH;
  for (let seq = 1; seq <= count; seq++) {
    const record = { seq, time: 1_700_000_000_000 + seq, kind: 'decision', fields: { command: 'unlock', allow: seq % 2 === 0, n: seq } };
    const hash = auditLinkHash(crypto, previous, record);
    entries.push({ ...record, hash });
    if (seq % every === 0) checkpoints.push(signCheckpoint(crypto, carSeed, seq, hash));
    previous = hash;
  }
  return { entries, checkpoints };
}

function pages(all: { entries: AuditEntry[]; checkpoints: AuditCheckpoint[] }, size: number): AuditPage[] {
  const out: AuditPage[] = [];
  for (let i = 0; i < all.entries.length; i += size) {
    const entries = all.entries.slice(i, i + size);
    out.push({ entries, checkpoints: all.checkpoints.filter((c) => entries.some((e) => e.seq === c.seq)), last: all.entries.length });
  }
  return out;
}

function collect(list: readonly AuditPage[]): AuditCollector {
  const collector = new AuditCollector();
  for (const page of list) {
    const decoded = decodeAuditPage(encodeAuditPage(page));
    if (!decoded.ok) throw decoded.error;
    expect(decoded.value.entries[0]?.seq).toBe(collector.nextSeq);
    if (!collector.add(decoded.value)) break;
  }
  return collector;
}

describe('audit pages', () => {
  it('decode what the car encodes, page by page, and verify against the car key', () => {
    const all = log(10);
    const collector = collect(pages(all, 4));
    expect(collector.all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const verdict = collector.verify(crypto, carKey);
    expect(verdict.ok && verdict.value).toMatchObject({ entries: 10, checkpoints: 3, lastCheckpointSeq: 9, uncovered: 1 });
    expect(collector.verify(crypto, crypto.publicKeyFromSeed(fixedSeed('other'))).ok).toBe(false);
  });

  it('detects a changed or missing entry', () => {
    const all = log(9);
    const changed = all.entries.map((e) => (e.seq === 5 ? { ...e, fields: { ...e.fields, allow: true, n: 55 } } : e));
    const broken = collect(pages({ entries: changed, checkpoints: all.checkpoints }, 4)).verify(crypto, carKey);
    expect(!broken.ok && broken.error.code).toBe('CK_AUDIT_CHAIN_BROKEN');
    const missing = all.entries.filter((e) => e.seq !== 2);
    const gap = collect([{ entries: missing, checkpoints: all.checkpoints, last: 9 }]).verify(crypto, carKey);
    expect(!gap.ok && gap.error.code).toBe('CK_AUDIT_CHAIN_BROKEN');
  });

  it('rejects malformed pages without throwing', () => {
    const good = JSON.parse(new TextDecoder().decode(encodeAuditPage(pages(log(2), 2)[0] ?? { entries: [], checkpoints: [], last: 0 }))) as Record<string, unknown>;
    const variants: unknown[] = [
      'not json',
      { ...good, entries: 'x' },
      { ...good, last: -1 },
      { ...good, entries: Array.from({ length: MAX_AUDIT_PAGE + 1 }, () => (good.entries as unknown[])[0]) },
      { ...good, entries: [{ ...((good.entries as Record<string, unknown>[])[0] ?? {}), hash: 'AB' }] },
      { ...good, entries: [{ ...((good.entries as Record<string, unknown>[])[0] ?? {}), fields: { nested: { a: 1 } } }] },
      { ...good, checkpoints: [{ seq: 1, hash: '00', signature: '00' }] },
    ];
    for (const variant of variants) {
      const bytes = new TextEncoder().encode(typeof variant === 'string' ? variant : JSON.stringify(variant));
      const decoded = decodeAuditPage(bytes);
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) expect(decoded.error.code).toBe('CK_CODEC_BAD_VALUE');
    }
    expect(decodeAuditPage(Uint8Array.of(0xff, 0xfe)).ok).toBe(false);
  });

  it('stops reading at the end of the log and refuses to verify a partial read', () => {
    const collector = new AuditCollector(5);
    expect(collector.add({ entries: [], checkpoints: [], last: 4 })).toBe(false);
    expect(collector.verify(crypto, carKey).ok).toBe(false);
  });
});
