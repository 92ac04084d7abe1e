/**
 * The Web Bluetooth side of the phone: a CentralLink over a GATT connection
 * made with `navigator.bluetooth` (or anything shaped like it, such as the
 * simulated radio in sim-bluetooth.ts), so the same core framing and
 * sessions run in the browser as in the CLI.
 *
 * - Finding the car: `requestDevice` with the carkey service UUID shows the
 *   browser's chooser (it needs a user gesture). A web page cannot read
 *   advertising data before the person picks a device, so the car is
 *   recognised by its signed CHALLENGE (docs/protocol.md §14's signature
 *   rule), not by its rotating advertising id.
 * - Chunk size: Web Bluetooth does not expose the ATT MTU, and a write longer
 *   than MTU − 3 would become an ATT long write, which carkey does not use.
 *   So every write is sized for the default MTU 23 (20-byte chunks, §5), which
 *   works whatever the phone and car negotiate. Notifications from the car
 *   arrive at whatever size the car's MTU allows; the reassembler takes any.
 * - Writes go one at a time, in order (the message channel awaits each before
 *   the next). The last chunk of every message is a Write Request (with
 *   response); the chunks before it are Write Commands (without response),
 *   which the ATT bearer delivers in order and several of which fit one
 *   connection event. With response for every 20-byte chunk, a 7-chunk
 *   REQUEST costs at least 7 × 2 connection events, which at a 30 ms
 *   interval comes close to the car's 500 ms relay bound; this way it costs
 *   about one round trip, and the response to the last chunk still tells
 *   the phone the whole message reached the car.
 *
 * Guarantees: every failure is a CarkeyError (CK_TRANSPORT_NO_ADAPTER,
 * CK_TRANSPORT_NOT_FOUND when no car was chosen, CK_TRANSPORT_CONNECT_FAILED,
 * CK_TRANSPORT_TIMEOUT, CK_TRANSPORT_DISCONNECTED); `onClose` fires once.
 */
import { CarkeyError } from '../../core/errors.js';
import { MIN_MTU } from '../../core/framing.js';
import { GATT, type CentralLink, type CloseReason, type Unsubscribe } from '../../transport/types.js';

/** The parts of Web Bluetooth the app uses (the DOM library has no types for it). */
export interface CharacteristicLike extends EventTarget {
  readonly value?: DataView | null;
  startNotifications(): Promise<unknown>;
  writeValueWithResponse(value: Uint8Array<ArrayBuffer>): Promise<void>;
  writeValueWithoutResponse(value: Uint8Array<ArrayBuffer>): Promise<void>;
}
export interface ServiceLike {
  getCharacteristic(uuid: string): Promise<CharacteristicLike>;
}
export interface GattServerLike {
  readonly connected: boolean;
  connect(): Promise<GattServerLike>;
  disconnect(): void;
  getPrimaryService(uuid: string): Promise<ServiceLike>;
}
export interface DeviceLike extends EventTarget {
  readonly id: string;
  readonly name?: string | undefined;
  readonly gatt?: GattServerLike | undefined;
}
export interface RequestDeviceOptions {
  readonly filters: readonly { readonly services: readonly string[] }[];
}
export interface BluetoothLike {
  requestDevice(options: RequestDeviceOptions): Promise<DeviceLike>;
}

/** Chunks are sized for this MTU (see the header). */
export const WEB_MTU = MIN_MTU;

/** The browser's Web Bluetooth, when this page may use it. */
export function browserBluetooth(): BluetoothLike | undefined {
  const candidate = (navigator as Navigator & { bluetooth?: BluetoothLike }).bluetooth;
  return candidate !== undefined && window.isSecureContext ? candidate : undefined;
}

function errorName(error: unknown): string {
  return error instanceof Error || error instanceof DOMException ? error.name : '';
}

function detail(error: unknown): string {
  return error instanceof Error || error instanceof DOMException ? error.message : String(error);
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CarkeyError('CK_TRANSPORT_TIMEOUT', `${what} took longer than ${timeoutMs} ms`)), timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** A connected car: GATT writes out, notifications in. */
class WebBluetoothLink implements CentralLink {
  private readonly chunkHandlers = new Set<(chunk: Uint8Array) => void>();
  private readonly closeHandlers = new Set<(reason: CloseReason) => void>();
  private closed = false;
  /** bytes of the current outgoing message still to come after the last chunk written */
  private remaining = 0;

  constructor(
    device: DeviceLike,
    private readonly server: GattServerLike,
    private readonly writeCharacteristic: CharacteristicLike,
    notify: CharacteristicLike,
  ) {
    notify.addEventListener('characteristicvaluechanged', () => {
      const value = notify.value;
      if (value === undefined || value === null) return;
      const chunk = new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
      for (const handler of this.chunkHandlers) handler(chunk);
    });
    device.addEventListener('gattserverdisconnected', () => this.finish('remote'));
  }

  mtu(): number {
    return WEB_MTU;
  }

  rssi(): number | undefined {
    return undefined;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.closed) throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', 'the link is closed');
    const first = chunk[0] ?? 0;
    this.remaining = first & 0x80 ? ((chunk[1] ?? 0) << 8 | (chunk[2] ?? 0)) - (chunk.length - 3) : this.remaining - (chunk.length - 1);
    try {
      const bytes = Uint8Array.from(chunk);
      if (this.remaining > 0) await this.writeCharacteristic.writeValueWithoutResponse(bytes);
      else await this.writeCharacteristic.writeValueWithResponse(bytes);
    } catch (error) {
      if (!this.server.connected) this.finish('link-lost');
      throw new CarkeyError('CK_TRANSPORT_DISCONNECTED', `write failed: ${detail(error)}`);
    }
  }

  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe {
    this.chunkHandlers.add(handler);
    return () => this.chunkHandlers.delete(handler);
  }

  onClose(handler: (reason: CloseReason) => void): Unsubscribe {
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  disconnect(): Promise<void> {
    if (!this.closed) {
      this.finish('local');
      try {
        this.server.disconnect();
      } catch {
        // already gone
      }
    }
    return Promise.resolve();
  }

  private finish(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    for (const handler of this.closeHandlers) handler(reason);
    this.closeHandlers.clear();
    this.chunkHandlers.clear();
  }
}

/** Choose and connect to carkey cars through a Web Bluetooth implementation. */
export class WebBluetoothTransport {
  constructor(private readonly bluetooth: BluetoothLike | undefined) {}

  /** Show the chooser (filtered to the carkey service). Call from a user gesture. */
  async chooseCar(): Promise<DeviceLike> {
    const bluetooth = this.bluetooth;
    if (bluetooth === undefined) throw new CarkeyError('CK_TRANSPORT_NO_ADAPTER', 'this browser offers no Web Bluetooth here (Chrome on Android, ChromeOS or a desktop, over https or localhost)');
    try {
      return await bluetooth.requestDevice({ filters: [{ services: [GATT.service] }] });
    } catch (error) {
      const name = errorName(error);
      if (name === 'NotFoundError') throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', 'no car was chosen (is it in range and advertising?)');
      if (name === 'NotAllowedError' || name === 'SecurityError') throw new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `Bluetooth is not allowed here: ${detail(error)}`);
      throw new CarkeyError('CK_TRANSPORT_NO_ADAPTER', detail(error));
    }
  }

  /** Connect, discover the carkey service and both characteristics, subscribe to notifications. */
  async connect(device: DeviceLike, timeoutMs: number): Promise<CentralLink> {
    const gatt = device.gatt;
    if (gatt === undefined) throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', 'the chosen device has no GATT server');
    try {
      return await withTimeout(
        (async () => {
          const server = await gatt.connect();
          const service = await server.getPrimaryService(GATT.service);
          const write = await service.getCharacteristic(GATT.write);
          const notify = await service.getCharacteristic(GATT.notify);
          const link = new WebBluetoothLink(device, server, write, notify);
          await notify.startNotifications();
          return link;
        })(),
        timeoutMs,
        'connecting to the car',
      );
    } catch (error) {
      try {
        gatt.disconnect();
      } catch {
        // nothing to drop
      }
      if (error instanceof CarkeyError) throw error;
      throw new CarkeyError('CK_TRANSPORT_CONNECT_FAILED', detail(error));
    }
  }
}
