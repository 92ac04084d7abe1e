/**
 * The vehicle state directory (`carkeyd --state DIR`): layout, permissions,
 * durable-file helpers and the single-instance lock.
 *
 * Layout (all inside DIR, which is mode 0700):
 *   identity.key   the vehicle's Ed25519 seed (see identity-file.ts), mode 0600
 *   state.db       SQLite store (see store.ts), mode 0600; SQLite gives its
 *                  -wal and -shm files the same mode
 *   carkeyd.lock   lock file (an otherwise unused SQLite database), never deleted
 *
 * Guarantees:
 * - `prepareStateDir` creates DIR with mode 0700 (and fsyncs its parent) or
 *   refuses an existing DIR that is not a directory or that grants any
 *   permission to group/others (CK_STORE_INSECURE_PERMISSIONS, with the chmod
 *   that fixes it). The same rule (`assertPrivateMode`) applies to the files.
 * - `StateLock.acquire` succeeds for at most one holder at a time, across
 *   processes and within one process; a holder that dies (even by SIGKILL or
 *   power loss) never blocks a restart.
 *
 * Why this lock: it is a POSIX record lock (fcntl) taken through SQLite's own
 * locking — open carkeyd.lock with `locking_mode=EXCLUSIVE` and run one
 * `BEGIN EXCLUSIVE` / `COMMIT`; SQLite then keeps the exclusive lock until the
 * connection closes. The kernel drops the lock when the process dies, so there
 * is no stale state to detect. A pid file with a liveness check was rejected:
 * after a power cut the Pi reboots and the recorded pid can belong to an
 * unrelated process, which would block the daemon; the kernel lock has no such
 * race. SQLite also tracks locks per inode inside a process, so a second open
 * in the same process is refused too. Two rules keep fcntl locks sound: the
 * lock file is never deleted, and this process never opens and closes a file
 * descriptor on it outside SQLite (closing any descriptor drops the process's
 * locks on that file) — `createPrivateFileIfMissing` uses O_EXCL, which opens
 * nothing when the file exists.
 *
 * The lock is separate from state.db so that `carkeyd audit verify` can read
 * the store (read-only, WAL) while the daemon is running.
 */
import { closeSync, constants, fsyncSync, mkdirSync, openSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { CarkeyError } from '../core/errors.js';

export const IDENTITY_FILE_NAME = 'identity.key';
export const DATABASE_FILE_NAME = 'state.db';
export const LOCK_FILE_NAME = 'carkeyd.lock';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export interface StateDirLayout {
  /** absolute path of the state directory */
  readonly dir: string;
  readonly identityPath: string;
  readonly databasePath: string;
  readonly lockPath: string;
}

export function stateDirLayout(dir: string): StateDirLayout {
  const absolute = resolve(dir);
  return {
    dir: absolute,
    identityPath: join(absolute, IDENTITY_FILE_NAME),
    databasePath: join(absolute, DATABASE_FILE_NAME),
    lockPath: join(absolute, LOCK_FILE_NAME),
  };
}

function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code: unknown = error.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/** True for an ENOENT error from node:fs. */
export function isMissingFileError(error: unknown): boolean {
  return errnoCode(error) === 'ENOENT';
}

/** Wrap a node:fs failure as CK_STORE_IO (CarkeyErrors pass through). */
export function storeIoError(action: string, path: string, error: unknown): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new CarkeyError('CK_STORE_IO', `${action} ${path}: ${reason}`, { path }, { cause: error });
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

/**
 * Refuse a file or directory that grants any permission to group or others.
 * No-op on Windows (no POSIX modes).
 */
export function assertPrivateMode(path: string, stats: Stats, kind: 'directory' | 'file'): void {
  if (process.platform === 'win32') return;
  if ((stats.mode & 0o077) === 0) return;
  const wanted = kind === 'directory' ? '700' : '600';
  throw new CarkeyError(
    'CK_STORE_INSECURE_PERMISSIONS',
    `${path} has mode ${octal(stats.mode)} (group/others have access); fix it with: chmod ${wanted} ${path}`,
    { path, mode: octal(stats.mode) },
  );
}

/** fsync a directory so a create/rename inside it survives a power cut. */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch (error) {
    throw storeIoError('cannot fsync directory', dir, error);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Create `path` empty with mode 0600 if it does not exist (O_EXCL: an existing
 * file is not opened at all). Returns true when it was created.
 */
export function createPrivateFileIfMissing(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, PRIVATE_FILE_MODE);
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw storeIoError('cannot create', path, error);
  }
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

export interface PrepareStateDirOptions {
  /** create the directory when missing (false for read-only tools such as `audit verify`) */
  readonly create: boolean;
}

/** Check (and optionally create) the state directory; returns its layout. */
export function prepareStateDir(dir: string, options: PrepareStateDirOptions): StateDirLayout {
  const layout = stateDirLayout(dir);
  let stats: Stats;
  try {
    stats = statSync(layout.dir);
  } catch (error) {
    if (!isMissingFileError(error)) throw storeIoError('cannot stat', layout.dir, error);
    if (!options.create) throw new CarkeyError('CK_STORE_IO', `state directory ${layout.dir} does not exist`, { path: layout.dir });
    try {
      mkdirSync(dirname(layout.dir), { recursive: true });
      mkdirSync(layout.dir, { mode: PRIVATE_DIR_MODE });
    } catch (mkdirError) {
      throw storeIoError('cannot create state directory', layout.dir, mkdirError);
    }
    fsyncDirectory(dirname(layout.dir));
    try {
      stats = statSync(layout.dir);
    } catch (statError) {
      throw storeIoError('cannot stat', layout.dir, statError);
    }
  }
  if (!stats.isDirectory()) throw new CarkeyError('CK_STORE_IO', `${layout.dir} is not a directory`, { path: layout.dir });
  assertPrivateMode(layout.dir, stats, 'directory');
  return layout;
}

function sqliteCode(error: unknown): string | undefined {
  const code = errnoCode(error);
  return code !== undefined && code.startsWith('SQLITE_') ? code : undefined;
}

/** The single-instance lock on a state directory. See the module header. */
export class StateLock {
  #db: Database.Database | undefined;
  readonly path: string;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
  }

  /** Take the lock or throw CK_STORE_LOCKED (held by a live holder) / CK_STORE_IO. */
  static acquire(lockPath: string): StateLock {
    createPrivateFileIfMissing(lockPath);
    let db: Database.Database | undefined;
    try {
      db = new Database(lockPath, { timeout: 0, fileMustExist: true });
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('COMMIT');
      return new StateLock(lockPath, db);
    } catch (error) {
      db?.close();
      const code = sqliteCode(error);
      if (code !== undefined && code.startsWith('SQLITE_BUSY')) {
        throw new CarkeyError('CK_STORE_LOCKED', `${lockPath} is held by a running carkeyd (or another store opened in this process)`, { path: lockPath });
      }
      throw storeIoError('cannot lock', lockPath, error);
    }
  }

  get held(): boolean {
    return this.#db !== undefined;
  }

  /** Release the lock. Idempotent. */
  release(): void {
    const db = this.#db;
    this.#db = undefined;
    db?.close();
  }
}
