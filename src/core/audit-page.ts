/**
 * One page of the car's audit log as the `auditRead` command returns it, and
 * its verification against the car key pinned on the phone.
 *
 * Page (UTF-8 JSON, see core/payloads.ts):
 *   { "entries":     [{ "seq", "time", "kind", "fields", "hash": 128 hex }],
 *     "checkpoints": [{ "seq", "hash": 128 hex, "signature": 128 hex }],
 *     "last": seq of the car's newest entry,
 *     "anchor": { "seq", "hash", "signature" } (only on a page that starts
 *               with the first retained entry of a pruned log) }
 * Entries are audit records as defined in src/core/audit.ts (the chain,
 * checkpoint and pruning rules live there; `verifyAudit` is reused as is).
 * A pruned log's first page carries its anchor: the signed checkpoint its
 * first retained entry follows; verification starts from it.
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
  /** the signed checkpoint the first entry of this page follows, when the car pruned everything before it */
  readonly anchor?: AuditCheckpoint | undefined;
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

function parseCheckpoint(value: unknown, index: number | 'anchor'): AuditCheckpoint {
  const name = index === 'anchor' ? 'anchor' : `checkpoints[${index}]`;
  const json = objectOf(value, name);
  return {
    seq: seqOf(json.seq, `${name}.seq`, 1),
    hash: hexOf(json.hash, AUDIT_HASH_LENGTH, `${name}.hash`),
    signature: hexOf(json.signature, AUDIT_SIGNATURE_LENGTH, `${name}.signature`),
  };
}

function checkpointJson(checkpoint: AuditCheckpoint): { seq: number; hash: string; signature: string } {
  return { seq: checkpoint.seq, hash: toHex(checkpoint.hash), signature: toHex(checkpoint.signature) };
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
    if (json.anchor === undefined) return ok({ entries, checkpoints, last });
    const anchor = parseCheckpoint(json.anchor, 'anchor');
    if (entries[0] !== undefined && entries[0].seq !== anchor.seq + 1) throw bad(`anchor seq ${anchor.seq} must be right before the first entry (seq ${entries[0].seq})`);
    return ok({ entries, checkpoints, last, anchor });
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
      checkpoints: page.checkpoints.map(checkpointJson),
      last: page.last,
      ...(page.anchor === undefined ? {} : { anchor: checkpointJson(page.anchor) }),
    }),
  );
}

/**
 * Accumulates pages read from seq 1 and verifies the whole chain at the end.
 * A pruned log starts at its anchor; if the car prunes past what was read
 * while reading (a page jumps ahead, with a newer anchor), collection starts
 * over from that anchor.
 */
export class AuditCollector {
  private entries: AuditEntry[] = [];
  private readonly checkpoints = new Map<number, AuditCheckpoint>();
  private carLast = 0;
  private anchorValue: AuditCheckpoint | undefined;

  /** Seq to ask for next. */
  get nextSeq(): number {
    return (this.entries[this.entries.length - 1]?.seq ?? this.startSeq - 1) + 1;
  }

  constructor(private readonly startSeq = 1) {}

  /** Add a page; returns true when more should be read. */
  add(page: AuditPage): boolean {
    const first = page.entries[0];
    if (page.anchor !== undefined && first !== undefined && first.seq > this.nextSeq && this.startSeq === 1) {
      this.entries = [];
      this.checkpoints.clear();
      this.anchorValue = page.anchor;
    }
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

  /** The signed checkpoint a pruned log starts after (undefined: the log starts at seq 1). */
  get anchor(): AuditCheckpoint | undefined {
    return this.anchorValue;
  }

  verify(crypto: Crypto, carIdentityKey: Uint8Array): Result<AuditVerification> {
    if (this.startSeq !== 1) return fail('CK_USAGE', 'verification reads the log from seq 1');
    const checkpoints = [...this.checkpoints.values()].sort((a, b) => a.seq - b.seq);
    return verifyAudit(this.entries, checkpoints, carIdentityKey, crypto, { anchor: this.anchorValue });
  }
}
