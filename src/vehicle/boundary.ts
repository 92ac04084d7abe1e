/**
 * Callback boundaries (DESIGN invariant 7: nothing throws past its boundary).
 *
 * Guarantees: a function wrapped by `guarded` never throws and never leaves a
 * rejected promise behind, whatever its body does; a failure is logged with
 * its `errorCode` and the boundary's name. Logging is throttled per boundary
 * (the first failure, then at most one line per `quietMs` with the number of
 * failures suppressed in between), so a timer failing every second on a full
 * disk cannot flood the log either. Use it for every timer, event handler
 * and callback body in the daemon.
 */
import type { Logger } from 'pino';
import { toCarkeyError } from '../core/errors.js';

export const BOUNDARY_QUIET_MS = 60_000;

export interface BoundaryOptions {
  /** ms clock for throttling (default Date.now) */
  readonly now?: () => number;
  readonly quietMs?: number;
  /** called with every failure (metrics) */
  readonly onFailure?: (where: string, code: string) => void;
}

/** Wrap `fn` so that calling it never throws (sync) or rejects (async). */
export function guarded<A extends unknown[]>(logger: Logger, where: string, fn: (...args: A) => unknown, options: BoundaryOptions = {}): (...args: A) => void {
  const now = options.now ?? (() => Date.now());
  const quietMs = options.quietMs ?? BOUNDARY_QUIET_MS;
  let lastLogged = -Infinity;
  let suppressed = 0;
  const report = (error: unknown): void => {
    try {
      const carkeyError = toCarkeyError(error);
      options.onFailure?.(where, carkeyError.code);
      const t = now();
      if (t - lastLogged < quietMs) {
        suppressed++;
        return;
      }
      logger.error({ where, errorCode: carkeyError.code, err: carkeyError.message, suppressed }, 'callback failed; carkeyd carries on');
      lastLogged = t;
      suppressed = 0;
    } catch {
      // The logger itself failed (e.g. stderr closed): nothing more can be done here.
    }
  };
  return (...args: A): void => {
    try {
      const result = fn(...args);
      if (result instanceof Promise) result.catch(report);
    } catch (error) {
      report(error);
    }
  };
}
