/**
 * Waiting in the sync worker: a pause that ends at its time, when the worker
 * stops, or when something it waits for happens (a Waker is notified).
 *
 * Guarantees: `pause` always settles and never rejects; its timer is unref'd
 * (it never keeps carkeyd alive) and every listener it adds is removed when
 * it settles, so a worker that pauses millions of times leaks nothing. A
 * notification with nobody waiting is kept and ends the next pause at once.
 */

export class Waker {
  readonly #waiters = new Set<() => void>();
  #pending = false;

  notify(): void {
    if (this.#waiters.size === 0) {
      this.#pending = true;
      return;
    }
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Consume a notification that arrived while nobody waited. */
  take(): boolean {
    const pending = this.#pending;
    this.#pending = false;
    return pending;
  }

  add(waiter: () => void): void {
    this.#waiters.add(waiter);
  }

  remove(waiter: () => void): void {
    this.#waiters.delete(waiter);
  }
}

export type PauseEnd = 'timeout' | 'woken' | 'stopped';

export function pause(ms: number, signal: AbortSignal, ...wakers: Waker[]): Promise<PauseEnd> {
  if (signal.aborted) return Promise.resolve('stopped');
  for (const waker of wakers) if (waker.take()) return Promise.resolve('woken');
  return new Promise((resolve) => {
    const finish = (end: PauseEnd): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      for (const waker of wakers) waker.remove(onWake);
      resolve(end);
    };
    const onAbort = (): void => finish('stopped');
    const onWake = (): void => finish('woken');
    signal.addEventListener('abort', onAbort);
    for (const waker of wakers) waker.add(onWake);
    const timer = setTimeout(() => finish('timeout'), Math.max(0, Math.min(ms, 2_147_483_647)));
    timer.unref();
  });
}
