/**
 * In-process change notification: topic → listeners. The SQLite store
 * publishes into it directly; the PostgreSQL store feeds it from LISTEN, so
 * a waiter on any instance wakes when any instance commits a change.
 *
 * Guarantees: a listener that throws cannot stop the others or escape (it
 * is isolated and reported to `onListenerError`); `wakeAll` reaches every
 * current subscriber (used when notifications may have been missed, e.g.
 * after the LISTEN connection came back); no listener limit warnings.
 */
import { EventEmitter } from 'node:events';

export class ChangeHub {
  readonly #emitter = new EventEmitter();
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void = () => undefined) {
    this.#emitter.setMaxListeners(0);
    this.#onListenerError = onListenerError;
  }

  subscribe(topic: string, listener: () => void): () => void {
    const safe = (): void => {
      try {
        listener();
      } catch (error) {
        this.#onListenerError(error);
      }
    };
    this.#emitter.on(topic, safe);
    return () => {
      this.#emitter.off(topic, safe);
    };
  }

  emit(topic: string): void {
    this.#emitter.emit(topic);
  }

  wakeAll(): void {
    for (const name of this.#emitter.eventNames()) if (typeof name === 'string') this.#emitter.emit(name);
  }

  get subscribers(): number {
    let count = 0;
    for (const name of this.#emitter.eventNames()) count += this.#emitter.listenerCount(name);
    return count;
  }
}
