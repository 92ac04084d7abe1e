/**
 * The bounded audit log: `VehicleStore.pruneAudit` deletes the oldest entries
 * up to a signed checkpoint (the anchor) and records it; the retained log
 * verifies from the anchor on the car (store, read-only database check) and
 * on the phone (audit pages with their anchor, AuditCollector); removing
 * more than the car recorded, or forging the anchor, breaks the chain.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditCollector, decodeAuditPage, encodeAuditPage } from '../../src/core/audit-page.js';
import { verifyAudit, type AuditCheckpoint } from '../../src/core/audit.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { resolveConfig } from '../../src/vehicle/config.js';
import { AUDIT_ANCHOR_META, verifyAuditDatabase, VehicleStore } from '../../src/vehicle/store.js';

const crypto = createCrypto('node');
let root: string;
let dir: string;
let store: VehicleStore | undefined;
let clock = 1_700_000_000_000;

function open(checkpointInterval = 8): VehicleStore {
  let n = 1;
  store = VehicleStore.open(dir, { crypto, now: () => clock++, random: (length) => Uint8Array.from({ length }, () => n++ & 0xff), checkpointInterval });
  return store;
}

function fill(s: VehicleStore, count: number): void {
  for (let i = 0; i < count; i++) s.appendAudit('decision', { i, result: 'allow' });
}

/** Read the log as the phone does: pages from seq 1 with their anchor. */
function readAsPhone(s: VehicleStore, pageSize = 50): AuditCollector {
  const collector = new AuditCollector();
  for (;;) {
    const entries = s.readAudit({ fromSeq: collector.nextSeq, limit: pageSize });
    const first = entries[0]?.seq ?? 0;
    const anchor = s.auditAnchor();
    const page = decodeAuditPage(
      encodeAuditPage({ entries, checkpoints: first === 0 ? [] : s.checkpoints({ fromSeq: first }), last: s.lastAuditSeq(), anchor: anchor !== undefined && anchor.seq + 1 === first ? anchor : undefined }),
    );
    if (!page.ok) throw page.error;
    if (!collector.add(page.value)) return collector;
  }
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'carkey-prune-'));
  dir = join(root, 'state');
});

afterEach(() => {
  store?.close();
  store = undefined;
  rmSync(root, { recursive: true, force: true });
});

describe('audit log pruning', () => {
  it('keeps the log within the cap, records the pruning, and the chain verifies from the anchor', () => {
    const s = open();
    fill(s, 300);
    expect(s.pruneAudit(1000)).toBeUndefined();
    const pruned = s.pruneAudit(100);
    expect(pruned).toBeDefined();
    if (pruned === undefined) return;
    expect(pruned.fromSeq).toBe(1);
    expect(pruned.throughSeq % 8).toBe(0); // an anchor is always a signed checkpoint
    expect(pruned.deleted).toBe(pruned.throughSeq);
    expect(pruned.auditEntry).toMatchObject({ kind: 'audit-pruned', fields: { fromSeq: 1, throughSeq: pruned.throughSeq, entries: pruned.deleted, maxEntries: 100 } });
    expect(s.auditEntryCount()).toBeLessThanOrEqual(100);
    expect(s.readAudit()[0]?.seq).toBe(pruned.throughSeq + 1);
    expect(s.auditAnchor()?.seq).toBe(pruned.throughSeq);
    const verified = s.verifyAuditInStore();
    expect(verified).toMatchObject({ ok: true, value: { anchorSeq: pruned.throughSeq, firstSeq: pruned.throughSeq + 1, lastSeq: 301 } });
    expect(verifyAuditDatabase(dir, crypto)).toMatchObject({ ok: true, value: { anchorSeq: pruned.throughSeq } });
    expect(readAsPhone(s).verify(crypto, s.identity.publicKey)).toMatchObject({ ok: true, value: { anchorSeq: pruned.throughSeq } });
  });

  it('keeps entries the cloud does not hold yet (keepAfterSeq) until the log reaches twice its cap', () => {
    const s = open();
    fill(s, 150);
    expect(s.pruneAudit(100, { keepAfterSeq: 0 })).toBeUndefined();
    const partial = s.pruneAudit(100, { keepAfterSeq: 20 });
    expect(partial?.throughSeq).toBe(16); // the newest checkpoint not after the uploaded seq
    fill(s, 100); // now more than twice the cap: the disk wins over the upload
    const forced = s.pruneAudit(100, { keepAfterSeq: 20 });
    expect(forced?.throughSeq ?? 0).toBeGreaterThan(20);
    expect(s.verifyAuditInStore().ok).toBe(true);
  });

  it('prunes again and again as the log grows; every state verifies on the car and on the phone', () => {
    const s = open();
    for (let round = 0; round < 6; round++) {
      fill(s, 70);
      s.pruneAudit(120);
      expect(s.auditEntryCount()).toBeLessThanOrEqual(120 + 1);
      expect(s.verifyAuditInStore().ok).toBe(true);
      expect(readAsPhone(s, 32).verify(crypto, s.identity.publicKey).ok).toBe(true);
    }
    s.close();
    expect(verifyAuditDatabase(dir, crypto).ok).toBe(true);
  });

  it('the phone starts over from the newer anchor when the car prunes while it reads', () => {
    const s = open();
    fill(s, 200);
    s.pruneAudit(150);
    const collector = new AuditCollector();
    const page = (fromSeq: number): ReturnType<typeof encodeAuditPage> => {
      const entries = s.readAudit({ fromSeq, limit: 20 });
      const first = entries[0]?.seq ?? 0;
      const anchor = s.auditAnchor();
      return encodeAuditPage({ entries, checkpoints: s.checkpoints({ fromSeq: first }), last: s.lastAuditSeq(), anchor: anchor !== undefined && anchor.seq + 1 === first ? anchor : undefined });
    };
    const decoded = decodeAuditPage(page(collector.nextSeq));
    if (!decoded.ok) throw decoded.error;
    collector.add(decoded.value);
    fill(s, 100);
    s.pruneAudit(150); // the entries the phone would read next are gone now
    for (;;) {
      const next = decodeAuditPage(page(collector.nextSeq));
      if (!next.ok) throw next.error;
      if (!collector.add(next.value)) break;
    }
    expect(collector.verify(crypto, s.identity.publicKey)).toMatchObject({ ok: true, value: { anchorSeq: s.auditAnchor()?.seq } });
  });

  it('removing more than the car recorded is detected (anchor moved to a later checkpoint)', () => {
    const s = open();
    fill(s, 300);
    s.pruneAudit(200);
    fill(s, 20);
    s.close();
    store = undefined;
    const db = new Database(join(dir, 'state.db'));
    const later = db.prepare('SELECT seq, hash, signature FROM audit_checkpoint ORDER BY seq DESC LIMIT 1 OFFSET 2').get() as { seq: number; hash: Buffer; signature: Buffer };
    const anchor = Buffer.alloc(136);
    anchor.writeBigUInt64BE(BigInt(later.seq), 0);
    anchor.set(later.hash, 8);
    anchor.set(later.signature, 72);
    db.prepare('DELETE FROM audit_checkpoint WHERE seq <= ?').run(later.seq);
    db.prepare('DELETE FROM audit_entry WHERE seq <= ?').run(later.seq);
    db.prepare("UPDATE meta SET value = ? WHERE key = ?").run(anchor, AUDIT_ANCHOR_META);
    db.close();
    const result = verifyAuditDatabase(dir, crypto);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(/records no pruning|entries were removed/);
  });

  it('a pruned log without its anchor, or with a forged one, does not verify', () => {
    const s = open();
    fill(s, 300);
    s.pruneAudit(100);
    const anchor = s.auditAnchor();
    if (anchor === undefined) throw new Error('no anchor');
    const entries = s.readAudit();
    const checkpoints = s.checkpoints();
    expect(verifyAudit(entries, checkpoints, s.identity.publicKey, crypto, { anchor }).ok).toBe(true);
    const missing = verifyAudit(entries, checkpoints, s.identity.publicKey, crypto);
    expect(missing.ok).toBe(false);
    const forged: AuditCheckpoint = { ...anchor, hash: Uint8Array.from(anchor.hash, (b, i) => (i === 0 ? b ^ 1 : b)) };
    const bad = verifyAudit(entries, checkpoints, s.identity.publicKey, crypto, { anchor: forged });
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toMatch(/anchor/);
    const other = createCrypto('node');
    const wrongKey = other.publicKeyFromSeed(new Uint8Array(32).fill(9));
    expect(verifyAudit(entries, checkpoints, wrongKey, crypto, { anchor }).ok).toBe(false);
  });

  it('reserves the audit. meta keys', () => {
    const s = open();
    expect(() => s.setMeta(AUDIT_ANCHOR_META, new Uint8Array(136))).toThrow(/reserved/);
  });

  it('auditMaxEntries is validated against the checkpoint interval', () => {
    expect(resolveConfig({}, {}).auditMaxEntries).toBe(100_000);
    expect(() => resolveConfig({ auditMaxEntries: 50 }, {})).toThrow(/auditMaxEntries/);
    expect(() => resolveConfig({ auditMaxEntries: 200, auditCheckpointEvery: 64 }, {})).toThrow(/4 × auditCheckpointEvery/);
    expect(resolveConfig({ auditMaxEntries: 200, auditCheckpointEvery: 8 }, {}).auditMaxEntries).toBe(200);
    expect(() => resolveConfig({ auditSummaryEveryMs: 10 }, {})).toThrow(/auditSummaryEveryMs/);
  });
});
