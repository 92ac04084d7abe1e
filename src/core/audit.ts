/**
 * The vehicle's hash-chained audit log: pure chain logic (no I/O, no clock).
 *
 * Guarantees:
 * - An audit record is { seq, time, kind, fields }: `seq` counts from 1 with no
 *   gaps, `time` is integer ms since the Unix epoch, `kind` matches
 *   AUDIT_KIND_PATTERN, `fields` is a flat object of at most
 *   AUDIT_MAX_FIELDS keys (AUDIT_FIELD_KEY_PATTERN) whose values are strings
 *   (<= AUDIT_MAX_STRING UTF-16 units), finite numbers, booleans or null.
 *   `validateAuditRecord` enforces exactly this; nothing else can be hashed.
 * - Canonical encoding (`canonicalAuditRecord`): the UTF-8 bytes of the
 *   RFC 8785 (JCS) serialisation of {"fields":{...},"kind":..,"seq":..,"time":..},
 *   i.e. JSON with no whitespace, object keys sorted by UTF-16 code units,
 *   strings and numbers as ECMAScript JSON.stringify writes them (-0 becomes 0).
 *   For the flat value set above this is what JSON.stringify of a key-sorted
 *   object produces, so any JCS library reproduces it byte for byte.
 * - Link hash: hash(seq) = SHA-512(LABELS.auditEntry ‖ hash(seq-1) ‖ canonical(record)),
 *   with hash(0) = AUDIT_GENESIS_HASH (64 zero bytes).
 * - Checkpoint: the vehicle's Ed25519 signature over
 *   LABELS.auditCheckpoint ‖ u64be(seq) ‖ hash(seq) (`checkpointPayload`).
 * - `verifyAudit` / `AuditChainVerifier` detect a changed entry, a deleted,
 *   inserted or reordered entry, a checkpoint that does not verify with the
 *   vehicle key (forged, or the wrong key), a checkpoint that disagrees with the
 *   chain (entries rewritten and re-hashed), and truncation below the last
 *   checkpoint; each failure is CK_AUDIT_CHAIN_BROKEN with a detail naming the
 *   seq. Entries after the last checkpoint are not signed: their deletion is
 *   undetectable from the log alone, so success reports how many are
 *   `uncovered` instead of hiding it.
 * - Pruning: the car may delete its oldest entries up to a signed checkpoint
 *   (the *anchor*) to bound the log's size. A pruned log is verified from the
 *   anchor instead of genesis: the anchor's signature must verify, the first
 *   retained entry must be anchor.seq + 1 and link to anchor.hash, and the
 *   newest 'audit-pruned' entry in the log must record `throughSeq` =
 *   anchor.seq (the car writes one with every pruning, after the entries it
 *   deleted). So removing more than the car recorded, or keeping an anchor
 *   without the record, breaks the chain; entries before the anchor are gone
 *   and cannot be checked (success reports `firstSeq` and `anchorSeq`).
 *   A log verified from genesis may hold pruning records (the cloud's copy
 *   keeps what the car pruned): every entry is there, so they are not checked.
 */
import { concatBytes, equalBytes, utf8 } from './bytes.js';
import type { Crypto } from './crypto/index.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { LABELS } from './labels.js';

export const AUDIT_HASH_LENGTH = 64;
export const AUDIT_SIGNATURE_LENGTH = 64;
/** hash(0): the predecessor of the first entry. */
export const AUDIT_GENESIS_HASH: Uint8Array = new Uint8Array(AUDIT_HASH_LENGTH);
/** A checkpoint is written after every this-many entries (and at clean shutdown). */
export const DEFAULT_CHECKPOINT_INTERVAL = 64;

export const AUDIT_KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
export const AUDIT_FIELD_KEY_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
export const AUDIT_MAX_FIELDS = 32;
export const AUDIT_MAX_STRING = 1024;
/** Largest canonical record in bytes (bounded input for the verifier too). */
export const AUDIT_MAX_RECORD_BYTES = 16 * 1024;

/**
 * Kinds this codebase writes. Verification accepts any kind matching
 * AUDIT_KIND_PATTERN, so logs written by a newer carkeyd still verify.
 */
export const AUDIT_KINDS = [
  'boot',
  'shutdown',
  'decision',
  'pairing',
  'pairing-mode',
  'key-list',
  'factory-reset',
  'time',
  'sync',
  'config',
  'security',
  /** counts of refusals to unrecognised peers over a period (one entry, not one per refusal) */
  'refusal-summary',
  /** the oldest entries up to a signed checkpoint were deleted (fields fromSeq, throughSeq, entries) */
  'audit-pruned',
  /** the car locked itself again: unlocked, and no door opened within autoRelock.afterMs (fields afterMs, reason) */
  'auto-relock',
  /** the car locked itself: the phone that unlocked it walked away (fields key, reason link-lost|rssi, rssi, ...) */
  'walk-away',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export type AuditFieldValue = string | number | boolean | null;
export type AuditFields = Readonly<Record<string, AuditFieldValue>>;

/** The hashed content of one entry. */
export interface AuditRecord {
  readonly seq: number;
  readonly time: number;
  readonly kind: string;
  readonly fields: AuditFields;
}

/** A record with its link hash, as stored. */
export interface AuditEntry extends AuditRecord {
  readonly hash: Uint8Array;
}

/** A signed statement "the chain up to `seq` has head `hash`". */
export interface AuditCheckpoint {
  readonly seq: number;
  readonly hash: Uint8Array;
  readonly signature: Uint8Array;
}

export interface AuditVerification {
  /** number of entries checked */
  readonly entries: number;
  /** number of checkpoints checked (not counting the anchor of a pruned log) */
  readonly checkpoints: number;
  /** seq of the last entry (0 for an empty log) */
  readonly lastSeq: number;
  /** seq covered by the last checkpoint (the anchor's for a pruned log with none after it; 0 when there is none) */
  readonly lastCheckpointSeq: number;
  /** entries after the last checkpoint: not signed yet, so their truncation cannot be detected */
  readonly uncovered: number;
  /** link hash of the last entry (AUDIT_GENESIS_HASH for an empty log) */
  readonly headHash: Uint8Array;
  /** seq of the first entry checked: 1, or anchorSeq + 1 for a pruned log */
  readonly firstSeq: number;
  /** seq of the signed checkpoint a pruned log starts after (0: not pruned, verified from genesis) */
  readonly anchorSeq: number;
}

/** Kind of the entry the car writes when it prunes, and its field naming the anchor seq. */
export const AUDIT_PRUNED_KIND = 'audit-pruned';
export const AUDIT_PRUNED_THROUGH_FIELD = 'throughSeq';

export interface AuditVerifyOptions {
  /** The signed checkpoint a pruned log starts after; omit for a log that starts at seq 1. */
  readonly anchor?: AuditCheckpoint | undefined;
}

function badRecord(detail: string): CarkeyError {
  return new CarkeyError('CK_CODEC_BAD_VALUE', `audit record: ${detail}`);
}

function isSafeNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Check a record against the format above. Never throws. */
export function validateAuditRecord(record: AuditRecord): Result<true> {
  try {
    canonicalAuditRecord(record);
    return ok(true);
  } catch (error) {
    if (error instanceof CarkeyError) return { ok: false, error };
    throw error;
  }
}

/**
 * Canonical JSON text of a fields object (the `fields` member of the canonical
 * record). Throws CK_CODEC_BAD_VALUE for fields outside the format.
 */
export function canonicalAuditFields(fields: unknown): string {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw badRecord('fields must be a flat object');
  const prototype: unknown = Object.getPrototypeOf(fields);
  if (prototype !== Object.prototype && prototype !== null) throw badRecord('fields must be a plain object');
  const keys = Object.keys(fields).sort();
  if (keys.length > AUDIT_MAX_FIELDS) throw badRecord(`more than ${AUDIT_MAX_FIELDS} fields`);
  const parts: string[] = [];
  for (const key of keys) {
    if (!AUDIT_FIELD_KEY_PATTERN.test(key)) throw badRecord(`field name ${JSON.stringify(key.slice(0, 70))} is not allowed`);
    const value: unknown = (fields as Record<string, unknown>)[key];
    let encoded: string;
    if (value === null || typeof value === 'boolean') encoded = JSON.stringify(value);
    else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw badRecord(`field ${key} is not a finite number`);
      encoded = JSON.stringify(value);
    } else if (typeof value === 'string') {
      if (value.length > AUDIT_MAX_STRING) throw badRecord(`field ${key} is longer than ${AUDIT_MAX_STRING} characters`);
      encoded = JSON.stringify(value);
    } else throw badRecord(`field ${key} must be a string, number, boolean or null`);
    parts.push(`${JSON.stringify(key)}:${encoded}`);
  }
  return `{${parts.join(',')}}`;
}

/**
 * Canonical bytes of a record (see the module header). Throws
 * CK_CODEC_BAD_VALUE for a record outside the format.
 */
export function canonicalAuditRecord(record: AuditRecord): Uint8Array {
  if (!isSafeNonNegativeInteger(record.seq) || record.seq < 1) throw badRecord('seq must be an integer >= 1');
  if (!isSafeNonNegativeInteger(record.time)) throw badRecord('time must be a non-negative integer (ms)');
  if (typeof record.kind !== 'string' || !AUDIT_KIND_PATTERN.test(record.kind)) throw badRecord('kind is not allowed');
  const text = `{"fields":${canonicalAuditFields(record.fields)},"kind":${JSON.stringify(record.kind)},"seq":${record.seq},"time":${record.time}}`;
  const bytes = utf8(text);
  if (bytes.length > AUDIT_MAX_RECORD_BYTES) throw badRecord(`encoded record exceeds ${AUDIT_MAX_RECORD_BYTES} bytes`);
  return bytes;
}

/** hash(seq) from hash(seq-1) and the record. Throws CK_CODEC_BAD_VALUE for a bad record. */
export function auditLinkHash(crypto: Crypto, previousHash: Uint8Array, record: AuditRecord): Uint8Array {
  if (previousHash.length !== AUDIT_HASH_LENGTH) throw badRecord(`previous hash must be ${AUDIT_HASH_LENGTH} bytes`);
  return crypto.hash(LABELS.auditEntry, previousHash, canonicalAuditRecord(record));
}

function u64be(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

/** Bytes the vehicle signs for a checkpoint: LABELS.auditCheckpoint ‖ u64be(seq) ‖ hash. */
export function checkpointPayload(seq: number, hash: Uint8Array): Uint8Array {
  if (!isSafeNonNegativeInteger(seq) || seq < 1) throw badRecord('checkpoint seq must be an integer >= 1');
  if (hash.length !== AUDIT_HASH_LENGTH) throw badRecord(`checkpoint hash must be ${AUDIT_HASH_LENGTH} bytes`);
  return concatBytes(LABELS.auditCheckpoint, u64be(seq), hash);
}

/** Sign a checkpoint with the vehicle's Ed25519 seed. */
export function signCheckpoint(crypto: Crypto, vehicleSeed: Uint8Array, seq: number, hash: Uint8Array): AuditCheckpoint {
  return { seq, hash: Uint8Array.from(hash), signature: crypto.sign(vehicleSeed, checkpointPayload(seq, hash)) };
}

function broken(detail: string, details: Record<string, unknown>): CarkeyError {
  return new CarkeyError('CK_AUDIT_CHAIN_BROKEN', detail, details);
}

/**
 * Streaming verifier: feed entries in log order with `push`, then `finish`.
 * Memory is O(checkpoints), so a daemon can verify a large log row by row.
 * After the first failure further pushes are ignored and `finish` returns it.
 */
export class AuditChainVerifier {
  readonly #crypto: Crypto;
  readonly #checkpoints: readonly AuditCheckpoint[];
  readonly #anchorSeq: number;
  #nextCheckpoint = 0;
  #expectedSeq = 1;
  #headHash: Uint8Array = AUDIT_GENESIS_HASH;
  #prunedThrough = 0;
  #prunedRecordSeq = 0;
  #failure: CarkeyError | undefined;

  /**
   * `checkpoints` in seq order; with `options.anchor`, the log is expected to
   * start right after that signed checkpoint (checkpoints at or below it
   * cover deleted entries and are ignored).
   */
  constructor(checkpoints: readonly AuditCheckpoint[], vehiclePublicKey: Uint8Array, crypto: Crypto, options: AuditVerifyOptions = {}) {
    this.#crypto = crypto;
    const anchor = options.anchor;
    this.#anchorSeq = anchor?.seq ?? 0;
    this.#checkpoints = anchor === undefined ? checkpoints : checkpoints.filter((c) => !(c.seq <= anchor.seq));
    if (anchor !== undefined) {
      this.#failure = AuditChainVerifier.#checkCheckpoints([anchor], vehiclePublicKey, crypto);
      if (this.#failure !== undefined) {
        this.#failure = broken(`the anchor the pruned log starts after (checkpoint seq ${String(anchor.seq)}) is not a valid signed checkpoint: ${this.#failure.message}`, { anchorSeq: anchor.seq });
        return;
      }
      this.#expectedSeq = anchor.seq + 1;
      this.#headHash = Uint8Array.from(anchor.hash);
    }
    this.#failure = AuditChainVerifier.#checkCheckpoints(this.#checkpoints, vehiclePublicKey, crypto);
  }

  static #checkCheckpoints(checkpoints: readonly AuditCheckpoint[], publicKey: Uint8Array, crypto: Crypto): CarkeyError | undefined {
    let previousSeq = 0;
    for (const checkpoint of checkpoints) {
      const { seq } = checkpoint;
      if (!isSafeNonNegativeInteger(seq) || seq <= previousSeq) {
        return broken(`checkpoint seq ${String(seq)} follows checkpoint seq ${previousSeq}: checkpoints are out of order or duplicated`, { checkpointSeq: seq });
      }
      if (checkpoint.hash.length !== AUDIT_HASH_LENGTH || checkpoint.signature.length !== AUDIT_SIGNATURE_LENGTH) {
        return broken(`checkpoint at seq ${seq} is malformed`, { checkpointSeq: seq });
      }
      const verified = crypto.verify(publicKey, checkpointPayload(seq, checkpoint.hash), checkpoint.signature);
      if (!verified.ok) {
        return broken(`checkpoint at seq ${seq}: signature does not verify with the vehicle key (forged checkpoint or wrong key)`, { checkpointSeq: seq });
      }
      previousSeq = seq;
    }
    return undefined;
  }

  /** Feed the next entry. Returns false once the chain is known to be broken. */
  push(entry: AuditEntry): boolean {
    if (this.#failure !== undefined) return false;
    const expected = this.#expectedSeq;
    if (entry.seq !== expected) {
      const detail =
        typeof entry.seq === 'number' && entry.seq > expected
          ? `entry seq ${expected} is missing (found seq ${entry.seq} in its place): entries deleted or reordered`
          : `entry seq ${String(entry.seq)} appears where seq ${expected} was expected: entries reordered or duplicated`;
      this.#failure = broken(detail, { expectedSeq: expected, foundSeq: entry.seq });
      return false;
    }
    let computed: Uint8Array;
    try {
      computed = auditLinkHash(this.#crypto, this.#headHash, entry);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#failure = broken(`entry seq ${expected} is malformed (${reason})`, { seq: expected });
      return false;
    }
    if (!equalBytes(computed, entry.hash)) {
      this.#failure = broken(`entry seq ${expected}: content does not match its link hash (entry changed or chain re-linked)`, { seq: expected });
      return false;
    }
    const checkpoint = this.#checkpoints[this.#nextCheckpoint];
    if (checkpoint !== undefined && checkpoint.seq === expected) {
      if (!equalBytes(checkpoint.hash, computed)) {
        const after = this.#nextCheckpoint === 0 ? 0 : (this.#checkpoints[this.#nextCheckpoint - 1]?.seq ?? 0);
        this.#failure = broken(
          `checkpoint at seq ${expected} does not match the chain: an entry with seq in ${after + 1}..${expected} was changed and the chain re-hashed`,
          { checkpointSeq: expected, fromSeq: after + 1 },
        );
        return false;
      }
      this.#nextCheckpoint++;
    }
    if (entry.kind === AUDIT_PRUNED_KIND) {
      const through = entry.fields[AUDIT_PRUNED_THROUGH_FIELD];
      this.#prunedThrough = typeof through === 'number' ? through : -1;
      this.#prunedRecordSeq = expected;
    }
    this.#headHash = computed;
    this.#expectedSeq = expected + 1;
    return true;
  }

  /** The verdict over everything pushed so far. */
  finish(): Result<AuditVerification> {
    if (this.#failure !== undefined) return { ok: false, error: this.#failure };
    const lastSeq = this.#expectedSeq - 1;
    const pending = this.#checkpoints[this.#nextCheckpoint];
    if (pending !== undefined) {
      return fail(
        'CK_AUDIT_CHAIN_BROKEN',
        `checkpoint at seq ${pending.seq} refers past the end of the log (last entry seq ${lastSeq}): signed entries were removed`,
        { checkpointSeq: pending.seq, lastSeq },
      );
    }
    const anchorSeq = this.#anchorSeq;
    // A log from seq 1 lacks nothing: its pruning records only say what the car deleted from its own copy (the cloud's copy keeps every entry).
    if (anchorSeq !== 0 && this.#prunedThrough !== anchorSeq) {
      const detail =
        this.#prunedRecordSeq === 0
          ? `the log starts after signed checkpoint ${anchorSeq} but records no pruning: entries were removed`
          : `the log starts after signed checkpoint ${anchorSeq}, but its newest pruning record (entry seq ${this.#prunedRecordSeq}) says entries through seq ${String(this.#prunedThrough)} were pruned: entries were removed`;
      return fail('CK_AUDIT_CHAIN_BROKEN', detail, { anchorSeq, prunedThrough: this.#prunedThrough });
    }
    const lastCheckpointSeq = this.#checkpoints[this.#checkpoints.length - 1]?.seq ?? anchorSeq;
    return ok({
      entries: lastSeq - anchorSeq,
      checkpoints: this.#checkpoints.length,
      lastSeq,
      lastCheckpointSeq,
      uncovered: lastSeq - lastCheckpointSeq,
      headHash: this.#headHash,
      firstSeq: anchorSeq + 1,
      anchorSeq,
    });
  }
}

/**
 * Verify a whole log from seq 1 (or, for a pruned log, from `options.anchor`):
 * `entries` in log order, `checkpoints` in seq order, against the vehicle's
 * Ed25519 public key. Never throws.
 */
export function verifyAudit(
  entries: Iterable<AuditEntry>,
  checkpoints: readonly AuditCheckpoint[],
  vehiclePublicKey: Uint8Array,
  crypto: Crypto,
  options: AuditVerifyOptions = {},
): Result<AuditVerification> {
  const verifier = new AuditChainVerifier(checkpoints, vehiclePublicKey, crypto, options);
  for (const entry of entries) if (!verifier.push(entry)) break;
  return verifier.finish();
}
