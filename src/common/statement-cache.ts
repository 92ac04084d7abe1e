/**
 * Prepared SQLite statements, one per SQL text, reused for the life of the
 * connection (better-sqlite3).
 *
 * Guarantees: `prepare(sql)` returns the same Statement for the same text,
 * so each distinct query costs one sqlite3_stmt for as long as the database
 * is open. Preparing per call instead leaves every native statement alive
 * until V8 collects its small JS wrapper, which it does late, and costs a
 * parse per call. Callers must not switch a cached statement's modes
 * (pluck, raw, expand, safeIntegers) or iterate one while reusing it.
 */
import type Database from 'better-sqlite3';

export class StatementCache {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(db: Database.Database) {
    this.#db = db;
  }

  prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  /** Forget every statement (before the database closes). */
  clear(): void {
    this.#statements.clear();
  }
}
