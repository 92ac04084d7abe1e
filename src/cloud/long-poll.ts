/**
 * Long-poll waits: hold an answer until something changes, the wait runs
 * out, the client goes away or the server shuts down.
 *
 * Guarantees:
 * - No lost wake-up: the topic is subscribed before the first check, and a
 *   change that arrives while a check runs triggers another check.
 * - Bounded: a wait ends after at most its duration (monotonic clock), and
 *   at once when the caller's signal aborts (client disconnected) or
 *   `releaseAll` runs (shutdown); after `releaseAll` new waits check once
 *   and return. Every subscription and timer is released when a wait ends.
 * - A check that throws ends the wait with that error (the route answers it).
 */
import { performance } from 'node:perf_hooks';

export interface Subscribable {
  subscribe(topic: string, listener: () => void): () => void;
}

export class LongPoller {
  readonly #source: Subscribable;
  readonly #sleepers = new Set<() => void>();
  #closing = false;
  #active = 0;

  constructor(source: Subscribable) {
    this.#source = source;
  }

  /** Waits in progress. */
  get active(): number {
    return this.#active;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Wake every wait so it answers now; later waits do not hold. */
  releaseAll(): void {
    this.#closing = true;
    for (const wake of [...this.#sleepers]) wake();
  }

  /**
   * Run `check` until it returns a value, re-running it after each change of
   * `topic`, for at most `durationMs`. Undefined when nothing came in time.
   */
  async wait<T>(topic: string, durationMs: number, check: () => Promise<T | undefined>, signal?: AbortSignal): Promise<T | undefined> {
    let changed: boolean;
    let wake: (() => void) | undefined;
    const unsubscribe = this.#source.subscribe(topic, () => {
      changed = true;
      wake?.();
    });
    const deadline = performance.now() + durationMs;
    this.#active++;
    try {
      for (;;) {
        changed = false;
        const value = await check();
        if (value !== undefined) return value;
        const left = deadline - performance.now();
        if (this.#closing || signal?.aborted === true || left <= 0) return undefined;
        if (changed) continue;
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            this.#sleepers.delete(done);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, left);
          signal?.addEventListener('abort', done);
          this.#sleepers.add(done);
          wake = done;
        });
      }
    } finally {
      this.#active--;
      unsubscribe();
    }
  }
}
