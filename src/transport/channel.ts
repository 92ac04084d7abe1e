/**
 * Message-level channel over a chunk-level link (either side of any transport).
 *
 * Guarantees: outgoing messages are split to the link's current MTU and their
 * chunks sent strictly in order, one message at a time; incoming chunks are
 * reassembled with the core framing rules (size cap, counter, inter-chunk
 * timeout checked on a timer as well as on arrival). Framing errors are
 * reported, never thrown, and the channel keeps working for the next message.
 * `next(timeoutMs)` lets a client await the car's answer with a deadline.
 */
import { CarkeyError } from '../core/errors.js';
import { DEFAULT_INTER_CHUNK_TIMEOUT_MS, DEFAULT_MAX_MESSAGE, Reassembler, splitMessage } from '../core/framing.js';
import type { CentralLink, PeripheralLink, Unsubscribe } from './types.js';

/** The three things a channel needs from a link. */
export interface ChunkLink {
  mtu(): number;
  sendChunk(chunk: Uint8Array): Promise<void>;
  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe;
}

export function peripheralChunks(link: PeripheralLink): ChunkLink {
  return { mtu: () => link.mtu(), sendChunk: (chunk) => link.notify(chunk), onChunk: (handler) => link.onChunk(handler) };
}

export function centralChunks(link: CentralLink): ChunkLink {
  return { mtu: () => link.mtu(), sendChunk: (chunk) => link.write(chunk), onChunk: (handler) => link.onChunk(handler) };
}

export interface ChannelOptions {
  readonly maxMessage?: number;
  readonly interChunkTimeoutMs?: number;
  /** Monotonic milliseconds (injected for tests). */
  readonly now?: () => number;
}

const MAX_QUEUED_MESSAGES = 16;

/** A timer handle on Node and in the browser (the web app reuses this channel). */
type Timer = ReturnType<typeof setTimeout>;

type Waiter = { resolve: (message: Uint8Array) => void; reject: (error: CarkeyError) => void; timer: Timer };

export class MessageChannel {
  private readonly reassembler: Reassembler;
  private readonly maxMessage: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly messageHandlers = new Set<(message: Uint8Array) => void>();
  private readonly errorHandlers = new Set<(error: CarkeyError) => void>();
  private readonly queue: Uint8Array[] = [];
  private readonly waiters: Waiter[] = [];
  private sending: Promise<void> = Promise.resolve();
  private expiryTimer: Timer | undefined;
  private readonly unsubscribe: Unsubscribe;
  private closedWith: CarkeyError | undefined;

  constructor(private readonly link: ChunkLink, options: ChannelOptions = {}) {
    this.maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
    this.timeoutMs = options.interChunkTimeoutMs ?? DEFAULT_INTER_CHUNK_TIMEOUT_MS;
    this.now = options.now ?? (() => performance.now());
    this.reassembler = new Reassembler({ maxMessage: this.maxMessage, interChunkTimeoutMs: this.timeoutMs });
    this.unsubscribe = link.onChunk((chunk) => this.onChunk(chunk));
  }

  /** Messages not claimed by `next()` go to these handlers (the car's side uses this). */
  onMessage(handler: (message: Uint8Array) => void): Unsubscribe {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  onError(handler: (error: CarkeyError) => void): Unsubscribe {
    this.errorHandlers.add(handler);
    return () => this.errorHandlers.delete(handler);
  }

  /** Send one message; resolves when its last chunk was handed to the link. */
  send(message: Uint8Array): Promise<void> {
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    const chunks = splitMessage(message, this.link.mtu(), this.maxMessage);
    const run = this.sending.then(async () => {
      for (const chunk of chunks) await this.link.sendChunk(chunk);
    });
    this.sending = run.catch(() => undefined);
    return run;
  }

  /** The next received message, or CK_TRANSPORT_TIMEOUT after `timeoutMs`. */
  next(timeoutMs: number): Promise<Uint8Array> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closedWith !== undefined) return Promise.reject(this.closedWith);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new CarkeyError('CK_TRANSPORT_TIMEOUT', `no answer within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  /** Fail pending `next()` calls (link closed) and stop listening. */
  close(error = new CarkeyError('CK_TRANSPORT_DISCONNECTED')): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = error;
    this.unsubscribe();
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  private onChunk(chunk: Uint8Array): void {
    const outcome = this.reassembler.push(chunk, this.now());
    if (outcome.error !== undefined) this.emitError(outcome.error);
    if (outcome.message !== undefined) this.deliver(outcome.message);
    this.armExpiry();
  }

  private armExpiry(): void {
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (!this.reassembler.busy || this.closedWith !== undefined) return;
    this.expiryTimer = setTimeout(() => {
      const error = this.reassembler.expire(this.now() + 1);
      if (error !== undefined) this.emitError(error);
      else this.armExpiry();
    }, this.timeoutMs + 1);
    // Node: do not keep the process alive for it; browsers return a number and have no unref.
    const timer = this.expiryTimer as unknown as { unref?: () => void };
    if (typeof timer === 'object') timer.unref?.();
  }

  private deliver(message: Uint8Array): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) {
      clearTimeout(waiter.timer);
      waiter.resolve(message);
      return;
    }
    if (this.messageHandlers.size === 0) {
      if (this.queue.length >= MAX_QUEUED_MESSAGES) {
        this.emitError(new CarkeyError('CK_CODEC_TOO_LARGE', 'too many unread messages; dropping the oldest'));
        this.queue.shift();
      }
      this.queue.push(message);
      return;
    }
    for (const handler of this.messageHandlers) handler(message);
  }

  private emitError(error: CarkeyError): void {
    for (const handler of this.errorHandlers) handler(error);
  }
}
