/**
 * One page of the car's audit log as the `auditRead` command returns it, and
 * its verification against the car key pinned on the phone.
 *
 * Page (UTF-8 JSON, see core/payloads.ts):
 *   { "entries":     [{ "seq", "time", "kind", "fields", "hash": 128 hex }],
 *     "checkpoints": [{ "seq", "hash": 128 hex, "signature": 128 hex }],
 *     "last": seq of the car's newest entry }
 * Entries are audit records as defined in src/core/audit.ts (the chain and
 * checkpoint rules live there; `verifyAudit` is reused as is).
 *
 * Guarantees: `decodeAuditPage` never throws, bounds the page (entries,
 * checkpoints) and validates every record against the audit format before
 * anything is hashed; hex must be exact lowercase of the right length.
 */
import { fromHex, toHex } from './bytes.js';
import type { Crypto } from './crypto/index.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { MAX_AUDIT_PAGE } from './payloads.js';
import { AUDIT_HASH_LENGTH, AUDIT_SIGNATURE_LENGTH, validateAuditRecord, verifyAudit, type AuditCheckpoint, type AuditEntry, type AuditFieldValue, type AuditVerification } from './audit.js';

/** Checkpoints accepted in one page (the car signs one per 64 entries; extra room for shutdowns). */
export const MAX_PAGE_CHECKPOINTS = 256;

export interface AuditPage {
  readonly entries: readonly AuditEntry[];
  readonly checkpoints: readonly AuditCheckpoint[];
  readonly last: number;
}

function bad(detail: string): CarkeyError {
  return new CarkeyError('CK_CODEC_BAD_VALUE', `audit page: ${detail}`);
}

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function seqOf(value: unknown, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw bad(`${what} must be an integer >= ${min}`);
  return value;
}

function hexOf(value: unknown, length: number, what: string): Uint8Array {
  const bytes = typeof value === 'string' && /^[0-9a-f]*$/.test(value) ? fromHex(value) : undefined;
  if (bytes?.length !== length) throw bad(`${what} must be ${length} bytes of lowercase hex`);
  return bytes;
}

function parseEntry(value: unknown, index: number): AuditEntry {
  const json = objectOf(value, `entries[${index}]`);
  const seq = seqOf(json.seq, `entries[${index}].seq`, 1);
  const time = seqOf(json.time, `entries[${index}].time`, 0);
  if (typeof json.kind !== 'string') throw bad(`entries[${index}].kind must be a string`);
  const fields = objectOf(json.fields, `entries[${index}].fields`) as Record<string, AuditFieldValue>;
  const record = { seq, time, kind: json.kind, fields };
  const valid = validateAuditRecord(record);
  if (!valid.ok) throw bad(`entries[${index}]: ${valid.error.message}`);
  return { ...record, hash: hexOf(json.hash, AUDIT_HASH_LENGTH, `entries[${index}].hash`) };
}

function parseCheckpoint(value: unknown, index: number): AuditCheckpoint {
  const json = objectOf(value, `checkpoints[${index}]`);
  return {
    seq: seqOf(json.seq, `checkpoints[${index}].seq`, 1),
    hash: hexOf(json.hash, AUDIT_HASH_LENGTH, `checkpoints[${index}].hash`),
    signature: hexOf(json.signature, AUDIT_SIGNATURE_LENGTH, `checkpoints[${index}].signature`),
  };
}

export function decodeAuditPage(bytes: Uint8Array): Result<AuditPage> {
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      return fail('CK_CODEC_BAD_VALUE', 'audit page is not UTF-8 JSON');
    }
    const json = objectOf(raw, 'page');
    if (!Array.isArray(json.entries) || json.entries.length > MAX_AUDIT_PAGE) throw bad(`entries must be a list of at most ${MAX_AUDIT_PAGE}`);
    if (!Array.isArray(json.checkpoints) || json.checkpoints.length > MAX_PAGE_CHECKPOINTS) throw bad(`checkpoints must be a list of at most ${MAX_PAGE_CHECKPOINTS}`);
    const entries = (json.entries as unknown[]).map(parseEntry);
    const checkpoints = (json.checkpoints as unknown[]).map(parseCheckpoint);
    const last = seqOf(json.last, 'last', 0);
    return ok({ entries, checkpoints, last });
  } catch (error) {
    if (error instanceof CarkeyError) return { ok: false, error };
    return fail('CK_CODEC_BAD_VALUE', `audit page: ${String(error)}`);
  }
}

/** The page encoding (the car's side; also used to build test pages). */
export function encodeAuditPage(page: AuditPage): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      entries: page.entries.map((entry) => ({ seq: entry.seq, time: entry.time, kind: entry.kind, fields: entry.fields, hash: toHex(entry.hash) })),
      checkpoints: page.checkpoints.map((checkpoint) => ({ seq: checkpoint.seq, hash: toHex(checkpoint.hash), signature: toHex(checkpoint.signature) })),
      last: page.last,
    }),
  );
}

/** Accumulates pages read from seq 1 and verifies the whole chain at the end. */
export class AuditCollector {
  private readonly entries: AuditEntry[] = [];
  private readonly checkpoints = new Map<number, AuditCheckpoint>();
  private carLast = 0;

  /** Seq to ask for next. */
  get nextSeq(): number {
    return (this.entries[this.entries.length - 1]?.seq ?? this.startSeq - 1) + 1;
  }

  constructor(private readonly startSeq = 1) {}

  /** Add a page; returns true when more should be read. */
  add(page: AuditPage): boolean {
    const before = this.entries.length;
    for (const entry of page.entries) if (entry.seq >= this.nextSeq) this.entries.push(entry);
    for (const checkpoint of page.checkpoints) this.checkpoints.set(checkpoint.seq, checkpoint);
    this.carLast = page.last;
    if (this.entries.length === before) return false;
    const lastRead = this.nextSeq - 1;
    const newestCheckpoint = Math.max(0, ...this.checkpoints.keys());
    return lastRead < this.carLast || newestCheckpoint > lastRead;
  }

  get all(): readonly AuditEntry[] {
    return this.entries;
  }

  get last(): number {
    return this.carLast;
  }

  verify(crypto: Crypto, carIdentityKey: Uint8Array): Result<AuditVerification> {
    if (this.startSeq !== 1) return fail('CK_USAGE', 'verification reads the log from seq 1');
    const checkpoints = [...this.checkpoints.values()].sort((a, b) => a.seq - b.seq);
    return verifyAudit(this.entries, checkpoints, carIdentityKey, crypto);
  }
}
