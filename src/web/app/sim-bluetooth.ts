/**
 * A Web Bluetooth stand-in backed by the simulated radio, for development
 * and for the end-to-end browser tests: `carkey web --radio SOCKET` relays
 * the sim radio's central side over HTTP (requests for scan, connect, write,
 * disconnect; one Server-Sent Events stream per link for notifications and
 * the link's end; src/web/server/radio-bridge.ts). It has the shape of
 * `navigator.bluetooth`, so the app's own Web Bluetooth adapter
 * (bluetooth.ts) and everything above it run unchanged; only what the
 * phone's OS would provide is replaced.
 *
 * Its "chooser" takes the first carkey car the radio sees within the scan
 * time (the sim air of a test rig has one car). Errors are DOMExceptions
 * with the names Web Bluetooth uses (NotFoundError, NetworkError), so the
 * adapter maps them as it maps the real ones.
 */
import { fromHex, toHex } from '../../core/bytes.js';
import { GATT } from '../../transport/types.js';
import type { BluetoothLike, CharacteristicLike, DeviceLike, GattServerLike, RequestDeviceOptions, ServiceLike } from './bluetooth.js';

const SCAN_MS = 5000;

interface BridgeDevice {
  readonly address: string;
  readonly localName: string | null;
}

async function post(path: string, body: string): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { method: 'POST', body, headers: { 'content-type': 'text/plain' }, cache: 'no-store' });
  } catch (error) {
    throw new DOMException(`the radio bridge is not reachable: ${String(error)}`, 'NetworkError');
  }
  if (!response.ok) {
    const text = await response.text();
    throw new DOMException(`radio bridge: ${text}`, response.status === 404 ? 'NotFoundError' : 'NetworkError');
  }
  return response;
}

class SimCharacteristic extends EventTarget implements CharacteristicLike {
  value: DataView | null = null;

  constructor(
    private readonly server: SimGattServer,
    private readonly uuid: string,
  ) {
    super();
  }

  async startNotifications(): Promise<unknown> {
    if (this.uuid !== GATT.notify) throw new DOMException('not a notify characteristic', 'NotSupportedError');
    await this.server.subscribe((chunk) => {
      this.value = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      this.dispatchEvent(new Event('characteristicvaluechanged'));
    });
    return this;
  }

  async writeValueWithResponse(value: Uint8Array<ArrayBuffer>): Promise<void> {
    if (this.uuid !== GATT.write) throw new DOMException('not a write characteristic', 'NotSupportedError');
    await post(`/radio/links/${this.server.linkId()}/write`, toHex(value));
  }

  async writeValueWithoutResponse(value: Uint8Array<ArrayBuffer>): Promise<void> {
    if (this.uuid !== GATT.write) throw new DOMException('not a write characteristic', 'NotSupportedError');
    await post(`/radio/links/${this.server.linkId()}/write-command`, toHex(value));
  }
}

class SimService implements ServiceLike {
  constructor(private readonly server: SimGattServer) {}

  getCharacteristic(uuid: string): Promise<CharacteristicLike> {
    if (uuid !== GATT.write && uuid !== GATT.notify) return Promise.reject(new DOMException(`no characteristic ${uuid}`, 'NotFoundError'));
    return Promise.resolve(new SimCharacteristic(this.server, uuid));
  }
}

class SimGattServer implements GattServerLike {
  private link: string | undefined;
  private events: EventSource | undefined;

  constructor(private readonly device: SimDevice) {}

  get connected(): boolean {
    return this.link !== undefined;
  }

  linkId(): string {
    if (this.link === undefined) throw new DOMException('GATT server is disconnected', 'NetworkError');
    return this.link;
  }

  async connect(): Promise<GattServerLike> {
    const response = await post('/radio/connect', JSON.stringify({ address: this.device.address }));
    const answer = (await response.json()) as { link?: unknown };
    if (typeof answer.link !== 'string') throw new DOMException('radio bridge: no link id', 'NetworkError');
    this.link = answer.link;
    return this;
  }

  getPrimaryService(uuid: string): Promise<ServiceLike> {
    if (this.link === undefined) return Promise.reject(new DOMException('GATT server is disconnected', 'NetworkError'));
    if (uuid !== GATT.service) return Promise.reject(new DOMException(`no service ${uuid}`, 'NotFoundError'));
    return Promise.resolve(new SimService(this));
  }

  /** Open the link's event stream; resolves once the bridge has attached it. */
  subscribe(onChunk: (chunk: Uint8Array<ArrayBuffer>) => void): Promise<void> {
    const id = this.linkId();
    return new Promise((resolve, reject) => {
      const events = new EventSource(`/radio/links/${id}/events`);
      this.events = events;
      events.addEventListener('ready', () => resolve());
      events.addEventListener('chunk', (event) => {
        const bytes = fromHex((event as MessageEvent<string>).data);
        if (bytes !== undefined) onChunk(Uint8Array.from(bytes));
      });
      events.addEventListener('closed', () => this.dropped());
      events.addEventListener('error', () => {
        reject(new DOMException('the radio bridge event stream failed', 'NetworkError'));
        this.dropped();
      });
    });
  }

  disconnect(): void {
    const id = this.link;
    if (id === undefined) return;
    void post(`/radio/links/${id}/disconnect`, '').catch(() => undefined);
    this.dropped();
  }

  private dropped(): void {
    if (this.link === undefined) return;
    this.link = undefined;
    this.events?.close();
    this.events = undefined;
    this.device.dispatchEvent(new Event('gattserverdisconnected'));
  }
}

class SimDevice extends EventTarget implements DeviceLike {
  readonly gatt: SimGattServer;

  constructor(
    readonly address: string,
    readonly name: string | undefined,
  ) {
    super();
    this.gatt = new SimGattServer(this);
  }

  get id(): string {
    return this.address;
  }
}

/** `navigator.bluetooth`, as far as carkey uses it, over the radio bridge. */
export class SimBluetooth implements BluetoothLike {
  async requestDevice(options: RequestDeviceOptions): Promise<DeviceLike> {
    if (!options.filters.some((filter) => filter.services.includes(GATT.service))) throw new DOMException('only the carkey service is simulated', 'NotFoundError');
    const response = await post('/radio/scan', JSON.stringify({ timeoutMs: SCAN_MS }));
    const { devices } = (await response.json()) as { devices: BridgeDevice[] };
    const first = devices[0];
    if (first === undefined) throw new DOMException('no carkey car on the simulated radio', 'NotFoundError');
    return new SimDevice(first.address, first.localName ?? undefined);
  }
}

/** Is this page served with a radio bridge (`carkey web --radio`)? */
export async function radioBridgeAvailable(): Promise<boolean> {
  try {
    const response = await fetch('/radio', { cache: 'no-store' });
    if (!response.ok) return false;
    const body = (await response.json()) as { available?: unknown };
    return body.available === true;
  } catch {
    return false;
  }
}
