/**
 * A stand-in for `@abandonware/bluetooth-hci-socket` that talks HCI over a
 * UNIX stream socket carrying the H4 byte stream (BlueZ `btvirt -s`,
 * e.g. `<dir>/bt-server-le`) instead of a kernel AF_BLUETOOTH socket.
 *
 * Guarantees:
 * - Same surface as the native module as far as noble 1.9 and bleno 0.6 use
 *   it: `bindRaw/bindUser/bindControl/isDevUp/setFilter/start/stop/reset/
 *   write/getDeviceList`, one `data` event per whole HCI packet (type byte
 *   first, as a Buffer), `error` events for socket failures.
 * - Construction does no I/O. `bindRaw`/`bindUser` open one connection, i.e.
 *   one emulated controller; `bindControl` (bleno's mgmt socket) opens none
 *   and silently drops what is written to it (mgmt is only used for SMP keys,
 *   which the emulated tier does not support).
 * - Packets are reassembled from partial reads (`H4Splitter`); nothing is
 *   delivered before `start()`; after `setFilter` the kernel's raw-socket
 *   filter semantics apply (before it, everything is delivered).
 * - `isDevUp()` turns false once the connection closes, so noble/bleno report
 *   `poweredOff` on their next poll. `capture()` tells which sockets a library
 *   constructed (so one transport can close its own and no other's);
 *   `closeAll()` closes every socket of the class.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { CarkeyError } from '../core/errors.js';
import { H4Splitter, passesHciFilter } from './h4-stream.js';

/** Device description in the shape of the native module's getDeviceList(). */
export interface HciDeviceInfo {
  readonly devId: number;
  readonly devUp: boolean;
  readonly idVendor: null;
  readonly idProduct: null;
  readonly busNumber: null;
  readonly deviceAddress: null;
}

/** The instance surface noble and bleno call. */
export interface HciSocketLike extends EventEmitter {
  bindRaw(devId?: number): number;
  bindUser(devId?: number): number;
  bindControl(): number;
  isDevUp(): boolean;
  setFilter(filter: Buffer): void;
  start(): void;
  stop(): void;
  reset(): void;
  write(data: Buffer): void;
  getDeviceList(): HciDeviceInfo[];
}

/** A stand-in socket; `close()` drops its connection (its emulated controller disappears). */
export interface ClosableHciSocket extends HciSocketLike {
  close(): void;
}

/** What `createH4HciSocketClass` returns: a constructor plus ways to find and close the sockets it made. */
export interface H4HciSocketClass {
  new (): ClosableHciSocket;
  /** Run `create` and return, with its result, every socket constructed during it (to close them later). */
  capture<T>(create: () => T): { readonly result: T; readonly sockets: readonly ClosableHciSocket[] };
  /** Close every connection opened through this class (idempotent). */
  closeAll(): void;
  /** The UNIX socket path the class connects to. */
  readonly socketPath: string;
}

type Mode = 'unbound' | 'data' | 'control';

/** Build a bluetooth-hci-socket replacement class bound to `socketPath`. */
export function createH4HciSocketClass(socketPath: string): H4HciSocketClass {
  const live = new Set<H4HciSocket>();
  let capturing: H4HciSocket[] | undefined;

  class H4HciSocket extends EventEmitter implements ClosableHciSocket {
    private mode: Mode = 'unbound';
    private connection: net.Socket | undefined;
    private connectionOpen = false;
    private started = false;
    private filter: Uint8Array | undefined;
    private readonly splitter = new H4Splitter();
    private devId = 0;
    private readonly onData = (data: Buffer): void => this.receive(data);

    constructor() {
      super();
      capturing?.push(this);
    }

    bindRaw(devId?: number): number {
      return this.bindData(devId);
    }

    bindUser(devId?: number): number {
      return this.bindData(devId);
    }

    bindControl(): number {
      if (this.mode === 'unbound') this.mode = 'control';
      return 0;
    }

    isDevUp(): boolean {
      return this.mode === 'data' && this.connectionOpen;
    }

    setFilter(filter: Buffer): void {
      this.filter = Uint8Array.from(filter);
    }

    start(): void {
      if (this.started) return;
      this.started = true;
      this.connection?.on('data', this.onData);
    }

    stop(): void {
      if (!this.started) return;
      this.started = false;
      this.connection?.off('data', this.onData);
      this.connection?.pause();
    }

    reset(): void {
      // The native module re-creates its kernel socket here; a UNIX stream
      // connection has nothing to reset.
    }

    write(data: Buffer): void {
      if (this.mode !== 'data') return;
      const connection = this.connection;
      if (connection === undefined || connection.destroyed) {
        this.emit('error', new CarkeyError('CK_TRANSPORT_DISCONNECTED', `HCI socket ${socketPath} is closed`));
        return;
      }
      connection.write(data);
    }

    getDeviceList(): HciDeviceInfo[] {
      return [{ devId: this.devId, devUp: this.isDevUp(), idVendor: null, idProduct: null, busNumber: null, deviceAddress: null }];
    }

    /** Close the connection; the emulated controller behind it disappears. */
    close(): void {
      live.delete(this);
      this.connectionOpen = false;
      this.connection?.destroy();
    }

    private bindData(devId: number | undefined): number {
      if (this.mode === 'data') return this.devId;
      this.mode = 'data';
      this.devId = devId ?? 0;
      const connection = net.connect(socketPath);
      this.connection = connection;
      this.connectionOpen = true; // optimistic: writes queue until connected
      live.add(this);
      connection.on('error', (error: Error) => {
        this.connectionOpen = false;
        this.emit('error', error);
      });
      connection.on('close', () => {
        this.connectionOpen = false;
        live.delete(this);
      });
      return this.devId;
    }

    private receive(data: Buffer): void {
      const outcome = this.splitter.push(data);
      for (const packet of outcome.packets) {
        if (this.filter !== undefined && !passesHciFilter(this.filter, packet)) continue;
        this.emit('data', Buffer.from(packet.buffer, packet.byteOffset, packet.length));
      }
      if (!outcome.ok) {
        this.emit(
          'error',
          new CarkeyError('CK_TRANSPORT_DISCONNECTED', `H4 stream from ${socketPath} desynchronised: unknown packet type 0x${outcome.badType.toString(16)}`),
        );
        this.close();
      }
    }
  }

  return Object.assign(H4HciSocket, {
    socketPath,
    capture<T>(create: () => T): { readonly result: T; readonly sockets: readonly ClosableHciSocket[] } {
      const outer = capturing;
      const sockets: H4HciSocket[] = [];
      capturing = sockets;
      try {
        return { result: create(), sockets };
      } finally {
        capturing = outer;
        outer?.push(...sockets);
      }
    },
    closeAll(): void {
      for (const socket of [...live]) socket.close();
    },
  });
}
