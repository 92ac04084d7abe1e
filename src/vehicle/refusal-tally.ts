/**
 * Pre-authentication refusals, counted instead of audited one by one.
 *
 * A peer the car does not recognise (no key, a random key, garbage, a stale
 * challenge) costs it nothing on disk: its refusal is counted here by reason,
 * and the daemon writes one 'refusal-summary' audit entry per period with
 * the counts (and at shutdown). Recognised peers' decisions are still
 * audited one entry each by the link handler.
 *
 * Guarantees: memory is bounded (at most MAX_REASONS distinct reasons; the
 * rest are counted under `other`); a summary entry stays inside the audit
 * record format (≤ 32 fields); `flush` only forgets the counts once the
 * entry was written, so a failing disk loses no counts (they are merged
 * into the next summary, whose `since` is the oldest unflushed refusal).
 * Pure apart from the injected `append`.
 */
import type { AuditEntry, AuditFields, AuditFieldValue } from '../core/audit.js';
import { AUDIT_FIELD_KEY_PATTERN } from '../core/audit.js';

/** 32 audit fields minus total, since, until, other. */
export const MAX_REASONS = 28;
const OTHER = 'other';

export class RefusalTally {
  private readonly counts = new Map<string, number>();
  private total = 0;
  private since: number | undefined;

  /** Count one refusal at wall-clock time `now`. */
  record(reason: string, now: number): void {
    const key = AUDIT_FIELD_KEY_PATTERN.test(reason) && reason !== OTHER && reason !== 'total' && reason !== 'since' && reason !== 'until' ? reason : OTHER;
    const bucket = this.counts.has(key) || this.counts.size < MAX_REASONS ? key : OTHER;
    this.counts.set(bucket, (this.counts.get(bucket) ?? 0) + 1);
    this.total++;
    this.since ??= now;
  }

  /** Refusals counted and not yet written. */
  get pending(): number {
    return this.total;
  }

  /** Summary fields, or undefined when there is nothing to report. */
  summary(now: number): AuditFields | undefined {
    if (this.total === 0) return undefined;
    const fields: Record<string, AuditFieldValue> = { total: this.total, since: this.since ?? now, until: now };
    for (const [reason, count] of [...this.counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) fields[reason] = count;
    return fields;
  }

  /**
   * Write one 'refusal-summary' entry through `append` if anything was
   * counted; the counts are cleared only when `append` returned an entry.
   */
  flush(append: (fields: AuditFields) => AuditEntry | undefined, now: number): AuditEntry | undefined {
    const fields = this.summary(now);
    if (fields === undefined) return undefined;
    const entry = append(fields);
    if (entry !== undefined) {
      this.counts.clear();
      this.total = 0;
      this.since = undefined;
    }
    return entry;
  }
}
