/**
 * Private, crash-safe files for the phone key store.
 *
 * Guarantees:
 * - `ensurePrivateDir` creates a directory with mode 0700 (parents as needed)
 *   or refuses an existing one that is not a directory or grants anything to
 *   group/others (CK_STORE_INSECURE_PERMISSIONS, naming the chmod that fixes it).
 * - `readPrivateFile` opens with O_NOFOLLOW, checks the opened descriptor is a
 *   regular file private to its owner and no larger than the cap, and returns
 *   undefined when the file does not exist.
 * - `writeFileAtomic` writes a temp file (O_EXCL, mode 0600), fsyncs it,
 *   renames it over the target and fsyncs the directory: after a crash at any
 *   instant the target holds either the old or the new content, never a torn
 *   mix. On failure the temp file is removed and the target is untouched.
 * - `withFileLock` serialises read-modify-write cycles between processes with
 *   an O_EXCL lock file. Holders keep it for milliseconds (never across radio
 *   I/O), so a lock file older than `staleMs` is a crashed holder's and is
 *   broken. Waiting longer than `waitMs` is CK_PHONE_STORE_BUSY.
 * Every node:fs failure surfaces as a CarkeyError (CK_STORE_IO with the path).
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { CarkeyError } from '../core/errors.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code: unknown = error.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function ioError(action: string, path: string, error: unknown): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new CarkeyError('CK_STORE_IO', `${action} ${path}: ${reason}`, { path }, { cause: error });
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, '0')}`;
}

function assertPrivate(path: string, stats: fs.Stats, kind: 'directory' | 'file'): void {
  if (process.platform === 'win32' || (stats.mode & 0o077) === 0) return;
  const wanted = kind === 'directory' ? '700' : '600';
  throw new CarkeyError('CK_STORE_INSECURE_PERMISSIONS', `${path} has mode ${octal(stats.mode)}; fix it with: chmod ${wanted} ${path}`, {
    path,
    mode: octal(stats.mode),
  });
}

function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    fs.fsyncSync(fd);
  } catch (error) {
    throw ioError('cannot fsync directory', dir, error);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Create `dir` (mode 0700) if missing; refuse it if it is shared with others. */
export function ensurePrivateDir(dir: string): void {
  try {
    const stats = fs.statSync(dir);
    if (!stats.isDirectory()) throw new CarkeyError('CK_STORE_IO', `${dir} is not a directory`, { path: dir });
    assertPrivate(dir, stats, 'directory');
    return;
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw ioError('cannot stat', dir, error);
  }
  try {
    fs.mkdirSync(dirname(dir), { recursive: true });
    fs.mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
    fs.chmodSync(dir, PRIVATE_DIR_MODE); // the umask may have narrowed or widened it
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw ioError('cannot create directory', dir, error);
  }
  fsyncDirectory(dirname(dir));
}

/** Check an existing directory is private (no-op when it does not exist). */
export function checkPrivateDirIfPresent(dir: string): boolean {
  let stats: fs.Stats;
  try {
    stats = fs.statSync(dir);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw ioError('cannot stat', dir, error);
  }
  if (!stats.isDirectory()) throw new CarkeyError('CK_STORE_IO', `${dir} is not a directory`, { path: dir });
  assertPrivate(dir, stats, 'directory');
  return true;
}

/** Read a private file; undefined when it does not exist. */
export function readPrivateFile(path: string, maxBytes: number): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `${path} is a symbolic link`, { path });
    throw ioError('cannot open', path, error);
  }
  try {
    const stats = fs.fstatSync(fd);
    if (!stats.isFile()) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `${path} is not a regular file`, { path });
    assertPrivate(path, stats, 'file');
    if (stats.size > maxBytes) throw new CarkeyError('CK_PHONE_STORE_CORRUPT', `${path} is larger than ${maxBytes} bytes`, { path });
    const buffer = Buffer.alloc(stats.size);
    let offset = 0;
    while (offset < buffer.length) {
      const read = fs.readSync(fd, buffer, offset, buffer.length - offset, offset);
      if (read === 0) break;
      offset += read;
    }
    return buffer.subarray(0, offset);
  } catch (error) {
    throw ioError('cannot read', path, error);
  } finally {
    fs.closeSync(fd);
  }
}

/** The node:fs calls `writeFileAtomic` makes (injectable to test failures). */
export interface AtomicWriteOps {
  openSync(path: string, flags: number, mode: number): number;
  writeSync(fd: number, data: Uint8Array, offset: number, length: number): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  renameSync(from: string, to: string): void;
  unlinkSync(path: string): void;
}

export const nodeAtomicWriteOps: AtomicWriteOps = {
  openSync: (path, flags, mode) => fs.openSync(path, flags, mode),
  writeSync: (fd, data, offset, length) => fs.writeSync(fd, data, offset, length),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  closeSync: (fd) => fs.closeSync(fd),
  renameSync: (from, to) => fs.renameSync(from, to),
  unlinkSync: (path) => fs.unlinkSync(path),
};

/** Temp-file name used for `path` by this process. */
export function tempPathFor(path: string): string {
  return `${path}.${process.pid}.tmp`;
}

/** Replace `path` with `data` atomically and durably (see the module header). */
export function writeFileAtomic(path: string, data: Uint8Array, ops: AtomicWriteOps = nodeAtomicWriteOps): void {
  const temp = tempPathFor(path);
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;
  let fd: number;
  try {
    fd = ops.openSync(temp, flags, PRIVATE_FILE_MODE);
  } catch (error) {
    if (errnoCode(error) !== 'EEXIST') throw ioError('cannot create', temp, error);
    // A leftover from a crashed process that had our pid: it was never renamed, so it is garbage.
    try {
      ops.unlinkSync(temp);
      fd = ops.openSync(temp, flags, PRIVATE_FILE_MODE);
    } catch (retryError) {
      throw ioError('cannot create', temp, retryError);
    }
  }
  let renamed = false;
  try {
    let offset = 0;
    while (offset < data.length) offset += ops.writeSync(fd, data, offset, data.length - offset);
    ops.fsyncSync(fd);
    ops.closeSync(fd);
    fd = -1;
    ops.renameSync(temp, path);
    renamed = true;
  } catch (error) {
    throw ioError('cannot write', path, error);
  } finally {
    if (fd !== -1) {
      try {
        ops.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    if (!renamed) {
      try {
        ops.unlinkSync(temp);
      } catch {
        // nothing to clean up
      }
    }
  }
  fsyncDirectory(dirname(path));
}

/** Delete a file durably; missing files are fine. */
export function removeFile(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw ioError('cannot delete', path, error);
  }
  fsyncDirectory(dirname(path));
}

/** Names in a directory (empty when it does not exist). */
export function listFiles(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return [];
    throw ioError('cannot list', dir, error);
  }
}

export interface FileLockOptions {
  /** wall clock (ms), compared with the lock file's mtime */
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  /** give up after waiting this long (default 5000 ms) */
  readonly waitMs?: number;
  /** a lock file older than this belongs to a crashed holder (default 30000 ms) */
  readonly staleMs?: number;
}

function tryCreateLock(lockPath: string): boolean {
  try {
    const fd = fs.openSync(lockPath, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, PRIVATE_FILE_MODE);
    try {
      fs.writeSync(fd, `${process.pid}\n`);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw ioError('cannot create lock', lockPath, error);
  }
}

function lockAgeMs(lockPath: string, now: number): number | undefined {
  try {
    return now - fs.statSync(lockPath).mtimeMs;
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return undefined;
    throw ioError('cannot stat', lockPath, error);
  }
}

/** Run `fn` while holding the lock file `lockPath` (see the module header). */
export async function withFileLock<T>(lockPath: string, options: FileLockOptions, fn: () => T | Promise<T>): Promise<T> {
  const waitMs = options.waitMs ?? 5000;
  const staleMs = options.staleMs ?? 30_000;
  let waited = 0;
  while (!tryCreateLock(lockPath)) {
    const age = lockAgeMs(lockPath, options.now());
    if (age !== undefined && age > staleMs) {
      removeFile(lockPath);
      continue;
    }
    if (waited >= waitMs) throw new CarkeyError('CK_PHONE_STORE_BUSY', `${lockPath} is held`, { path: lockPath });
    await options.sleep(25);
    waited += 25;
  }
  try {
    return await fn();
  } finally {
    removeFile(lockPath);
  }
}

/** One parsed private JSON file: its object, and the error to throw for a bad field. */
export interface PrivateJson {
  readonly json: Record<string, unknown>;
  readonly corrupt: (detail: string) => CarkeyError;
}

/**
 * Read a small private JSON file (in a private `home`) that must be an object
 * with `format`: undefined when the home or file is absent; CK_PHONE_STORE_CORRUPT
 * when it is not JSON, not an object or of another format.
 */
export function readPrivateJson(home: string, path: string, maxBytes: number, format: number): PrivateJson | undefined {
  if (!checkPrivateDirIfPresent(home)) return undefined;
  const bytes = readPrivateFile(path, maxBytes);
  if (bytes === undefined) return undefined;
  const corrupt = (detail: string): CarkeyError => new CarkeyError('CK_PHONE_STORE_CORRUPT', `${path}: ${detail}`, { path });
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw corrupt('not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw corrupt('not an object');
  const json = raw as Record<string, unknown>;
  if (json.format !== format) throw corrupt(`unknown format ${String(json.format)}`);
  return { json, corrupt };
}
