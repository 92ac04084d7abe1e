/**
 * Handler registries for the sim transport's `on*` methods.
 *
 * Guarantees: handlers run in registration order; one that throws does not
 * stop the others and its error goes to the `onError` sink given at
 * construction (the transport is never broken by a handler bug);
 * unsubscribing during emission is safe. `ChunkInbox` never loses or
 * reorders chunks that arrive before the first handler (up to a cap);
 * `OnceEvent` reaches handlers registered after it fired.
 */

import type { Unsubscribe } from './types.js';

export type HandlerErrorSink = (error: unknown) => void;

/** Default sink: a process warning, so a handler bug is visible but not fatal. */
export const warnHandlerError: HandlerErrorSink = (error) => {
  process.emitWarning(error instanceof Error ? error : new Error(String(error)), { code: 'CARKEY_SIM_HANDLER' });
};

export class Handlers<Args extends unknown[]> {
  private readonly handlers = new Set<(...args: Args) => void>();
  private readonly onError: HandlerErrorSink;

  constructor(onError: HandlerErrorSink) {
    this.onError = onError;
  }

  get size(): number {
    return this.handlers.size;
  }

  add(handler: (...args: Args) => void): Unsubscribe {
    const wrapper = (...args: Args): void => handler(...args);
    this.handlers.add(wrapper);
    return () => {
      this.handlers.delete(wrapper);
    };
  }

  emit(...args: Args): void {
    for (const handler of [...this.handlers]) {
      try {
        handler(...args);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  clear(): void {
    this.handlers.clear();
  }
}

/** Most chunks a link keeps while nobody listens yet; beyond this they are dropped and counted. */
export const MAX_BACKLOG_CHUNKS = 4096;

/**
 * Delivers chunks to `onChunk` handlers in arrival order. Chunks that arrive
 * before the first handler is registered (e.g. between a link being handed
 * out and the caller's next microtask) are kept and delivered, in order, on
 * the microtask after the first registration.
 */
export class ChunkInbox {
  private readonly handlers: Handlers<[Uint8Array]>;
  private backlog: Uint8Array[] = [];
  private flushScheduled = false;
  private droppedCount = 0;

  constructor(onError: HandlerErrorSink) {
    this.handlers = new Handlers(onError);
  }

  get dropped(): number {
    return this.droppedCount;
  }

  add(handler: (chunk: Uint8Array) => void): Unsubscribe {
    const unsubscribe = this.handlers.add(handler);
    this.scheduleFlush();
    return unsubscribe;
  }

  push(chunk: Uint8Array): void {
    if (this.handlers.size > 0 && this.backlog.length === 0) {
      this.handlers.emit(chunk);
      return;
    }
    if (this.backlog.length >= MAX_BACKLOG_CHUNKS) {
      this.droppedCount += 1;
      return;
    }
    this.backlog.push(chunk);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.backlog.length === 0 || this.handlers.size === 0) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      while (this.handlers.size > 0) {
        const chunk = this.backlog.shift();
        if (chunk === undefined) break;
        this.handlers.emit(chunk);
      }
    });
  }
}

/**
 * A once-only event (subscribed, closed): handlers registered after it
 * happened are called on the next microtask with the same value, so a late
 * registration cannot miss it.
 */
export class OnceEvent<T> {
  private readonly handlers: Handlers<[T]>;
  private readonly onError: HandlerErrorSink;
  private fired: { readonly value: T } | undefined;

  constructor(onError: HandlerErrorSink) {
    this.handlers = new Handlers(onError);
    this.onError = onError;
  }

  get happened(): boolean {
    return this.fired !== undefined;
  }

  add(handler: (value: T) => void): Unsubscribe {
    const fired = this.fired;
    if (fired === undefined) return this.handlers.add(handler);
    let active = true;
    queueMicrotask(() => {
      if (!active) return;
      try {
        handler(fired.value);
      } catch (error) {
        this.onError(error);
      }
    });
    return () => {
      active = false;
    };
  }

  /** Fire once; later calls are ignored. Returns true when this call fired it. */
  fire(value: T): boolean {
    if (this.fired !== undefined) return false;
    this.fired = { value };
    this.handlers.emit(value);
    this.handlers.clear();
    return true;
  }
}
