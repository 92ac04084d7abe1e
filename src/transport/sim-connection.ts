/**
 * One client connection to the simulated radio broker: socket, line framing,
 * request/reply correlation and event dispatch.
 *
 * Guarantees:
 * - `open` resolves only after the broker accepted `hello`; an unreachable
 *   broker rejects with CK_TRANSPORT_RADIO_UNAVAILABLE naming the socket path.
 * - Every `request` settles exactly once: with the broker's `ok`, with the
 *   broker's error (same code), or with CK_TRANSPORT_RADIO_UNAVAILABLE when
 *   the connection ends first.
 * - Broker input is capped and validated; a malformed message ends the
 *   connection with CK_TRANSPORT_RADIO_PROTOCOL instead of being guessed at.
 * - `onClose` handlers run once, with the error that ended the connection
 *   (undefined after a local `close()`).
 * No process-global state: each instance owns its socket and id counter.
 */

import net from 'node:net';
import { CarkeyError } from '../core/errors.js';
import { Handlers, type HandlerErrorSink } from './sim-events.js';
import { LineReader } from './sim-lines.js';
import { encodeJsonLine } from './sim-json.js';
import {
  MAX_EVENT_LINE_BYTES,
  MAX_REQUEST_ID,
  MAX_REQUEST_LINE_BYTES,
  SIM_PROTOCOL_VERSION,
  decodeServerMessage,
  errorFromMessage,
  type OkResult,
  type RequestBody,
  type Role,
  type ServerMessage,
} from './sim-protocol.js';
import type { Unsubscribe } from './types.js';

export type RadioEvent = Exclude<ServerMessage, { readonly ev: 'ok' } | { readonly ev: 'error' }>;

export interface SimHello {
  readonly role: Role;
  readonly name?: string;
  readonly maxMtu?: number;
}

interface Pending {
  readonly resolve: (result: OkResult) => void;
  readonly reject: (error: CarkeyError) => void;
}

function unavailable(socketPath: string, why: string): CarkeyError {
  return new CarkeyError('CK_TRANSPORT_RADIO_UNAVAILABLE', `${why} (socket ${socketPath})`);
}

function closedLocally(socketPath: string): CarkeyError {
  return unavailable(socketPath, 'the connection to the simulated radio was closed');
}

export class SimConnection {
  readonly socketPath: string;
  private readonly socket: net.Socket;
  private readonly reader = new LineReader(MAX_EVENT_LINE_BYTES);
  private readonly pending = new Map<number, Pending>();
  private readonly events: Handlers<[RadioEvent]>;
  private readonly closes: Handlers<[CarkeyError | undefined]>;
  private nextId = 1;
  /** Why the connection ended; `undefined` while open. */
  private endedWith: { readonly error: CarkeyError | undefined } | undefined;

  private constructor(socketPath: string, socket: net.Socket, onHandlerError: HandlerErrorSink) {
    this.socketPath = socketPath;
    this.socket = socket;
    this.events = new Handlers(onHandlerError);
    this.closes = new Handlers(onHandlerError);
    socket.on('data', (bytes: Buffer) => this.receive(bytes));
    socket.on('error', () => {
      // 'close' follows.
    });
    socket.on('close', () => this.end(unavailable(socketPath, 'the connection to the simulated radio closed')));
  }

  /** Connect to the broker at `socketPath` and say hello. */
  static async open(socketPath: string, hello: SimHello, onHandlerError: HandlerErrorSink): Promise<SimConnection> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const candidate = net.createConnection(socketPath);
      const onError = (error: NodeJS.ErrnoException): void => {
        candidate.destroy();
        reject(unavailable(socketPath, `cannot reach the simulated radio: ${error.code ?? error.message}`));
      };
      candidate.once('error', onError);
      candidate.once('connect', () => {
        candidate.off('error', onError);
        resolve(candidate);
      });
    });
    const connection = new SimConnection(socketPath, socket, onHandlerError);
    try {
      await connection.request({ op: 'hello', v: SIM_PROTOCOL_VERSION, role: hello.role, name: hello.name, maxMtu: hello.maxMtu });
    } catch (error) {
      connection.close();
      throw error;
    }
    return connection;
  }

  get isOpen(): boolean {
    return this.endedWith === undefined;
  }

  request(body: RequestBody): Promise<OkResult> {
    return this.send(body).result;
  }

  /** Like `request`, but also returns the id (to cancel a pending connect). */
  send(body: RequestBody): { readonly id: number; readonly result: Promise<OkResult> } {
    const id = this.nextId;
    this.nextId = this.nextId >= MAX_REQUEST_ID ? 1 : this.nextId + 1;
    if (this.endedWith !== undefined) {
      return { id, result: Promise.reject(this.endedWith.error ?? closedLocally(this.socketPath)) };
    }
    const line = encodeJsonLine({ id, ...body });
    if (Buffer.byteLength(line) >= MAX_REQUEST_LINE_BYTES) {
      return { id, result: Promise.reject(new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', `request "${body.op}" exceeds ${MAX_REQUEST_LINE_BYTES} bytes`)) };
    }
    const result = new Promise<OkResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
    });
    this.socket.write(`${line}\n`);
    return { id, result };
  }

  onEvent(handler: (event: RadioEvent) => void): Unsubscribe {
    return this.events.add(handler);
  }

  onClose(handler: (error: CarkeyError | undefined) => void): Unsubscribe {
    return this.closes.add(handler);
  }

  close(): void {
    this.end(undefined);
  }

  private receive(bytes: Buffer): void {
    for (const line of this.reader.push(bytes)) {
      if (this.endedWith !== undefined) return;
      if (!line.ok) {
        this.end(line.error);
        return;
      }
      const decoded = decodeServerMessage(line.value);
      if (!decoded.ok) {
        this.end(decoded.error);
        return;
      }
      this.dispatch(decoded.value);
    }
  }

  private dispatch(message: ServerMessage): void {
    switch (message.ev) {
      case 'ok':
      case 'error': {
        if (message.id === null) {
          // The broker could not read one of our lines: a bug on our side, not recoverable here.
          if (message.ev === 'error') this.end(errorFromMessage(message));
          return;
        }
        const pending = this.pending.get(message.id);
        if (pending === undefined) return;
        this.pending.delete(message.id);
        if (message.ev === 'ok') pending.resolve(message.result);
        else pending.reject(errorFromMessage(message));
        return;
      }
      default:
        this.events.emit(message);
    }
  }

  private end(error: CarkeyError | undefined): void {
    if (this.endedWith !== undefined) return;
    this.endedWith = { error };
    this.socket.destroy();
    const failure = error ?? closedLocally(this.socketPath);
    for (const pending of this.pending.values()) pending.reject(failure);
    this.pending.clear();
    this.closes.emit(error);
    this.closes.clear();
    this.events.clear();
  }
}
