/**
 * The daemon's audit appends, for callers that must carry on when the disk
 * does not (DESIGN invariant 7: a full or read-only disk degrades audit,
 * never the decision to open for an owner).
 *
 * Guarantees:
 * - `append` never throws. A failed append (SQLITE_FULL, SQLITE_READONLY,
 *   I/O errors: CK_STORE_IO; anything else) returns undefined, increments
 *   `failures`, keeps `lastError` (code, SQLite code, kind, time) and counts
 *   `carkey_audit_failures_total{code}`; `carkey_audit_degraded` is 1 from a
 *   failure until the next successful append.
 * - Failures are logged with `errorCode`, throttled (first one, then at most
 *   one line a minute with the number suppressed), so a full disk does not
 *   also flood the journal.
 * - Appends that must commit together with a state change (key lists,
 *   factory reset) do not go through here: they use the store directly and
 *   fail as a whole.
 */
import type { Logger } from 'pino';
import type { AuditEntry, AuditFields, AuditKind } from '../core/audit.js';
import { toCarkeyError } from '../core/errors.js';
import type { DaemonMetrics } from './metrics.js';

export interface AuditSink {
  appendAudit(kind: AuditKind, fields: AuditFields): AuditEntry;
}

export interface AuditFailure {
  readonly code: string;
  /** SQLite result code when the store reported one (SQLITE_FULL, SQLITE_READONLY, ...) */
  readonly sqlite: string | undefined;
  readonly kind: AuditKind;
  /** wall-clock ms of the failure */
  readonly at: number;
  readonly message: string;
}

export interface AuditWriterDeps {
  readonly store: AuditSink;
  readonly logger: Logger;
  readonly metrics?: DaemonMetrics;
  readonly now?: () => number;
  readonly quietMs?: number;
}

export class AuditWriter {
  #failures = 0;
  #lastError: AuditFailure | undefined;
  #degraded = false;
  #lastLogged = -Infinity;
  #suppressed = 0;
  readonly #deps: AuditWriterDeps;

  constructor(deps: AuditWriterDeps) {
    this.#deps = deps;
  }

  /** Append one entry; undefined (never an exception) when the store cannot take it. */
  append(kind: AuditKind, fields: AuditFields): AuditEntry | undefined {
    try {
      const entry = this.#deps.store.appendAudit(kind, fields);
      if (this.#degraded) {
        this.#degraded = false;
        this.#deps.metrics?.auditDegraded.set(0);
        this.#deps.logger.info({ failures: this.#failures }, 'audit log writable again');
      }
      return entry;
    } catch (error) {
      this.#fail(kind, error);
      return undefined;
    }
  }

  get failures(): number {
    return this.#failures;
  }

  get lastError(): AuditFailure | undefined {
    return this.#lastError;
  }

  /** The last append failed (and none has succeeded since). */
  get degraded(): boolean {
    return this.#degraded;
  }

  #fail(kind: AuditKind, error: unknown): void {
    const carkeyError = toCarkeyError(error);
    const sqlite = carkeyError.details?.sqlite;
    const now = (this.#deps.now ?? Date.now)();
    this.#failures++;
    this.#degraded = true;
    this.#lastError = { code: carkeyError.code, sqlite: typeof sqlite === 'string' ? sqlite : undefined, kind, at: now, message: carkeyError.message };
    try {
      this.#deps.metrics?.auditFailures.inc({ code: carkeyError.code });
      this.#deps.metrics?.auditDegraded.set(1);
      if (now - this.#lastLogged < (this.#deps.quietMs ?? 60_000)) {
        this.#suppressed++;
        return;
      }
      this.#deps.logger.error(
        { errorCode: carkeyError.code, sqlite: this.#lastError.sqlite, kind, failures: this.#failures, suppressed: this.#suppressed, err: carkeyError.message },
        'audit append failed; carrying on without it',
      );
      this.#lastLogged = now;
      this.#suppressed = 0;
    } catch {
      // metrics or logging failed too: the counters above are still right.
    }
  }
}
