/**
 * Lazy loading of the real BLE stacks (`@abandonware/bleno` for the car,
 * `@abandonware/noble` for the phone) and the mapping of their failures.
 *
 * Guarantees:
 * - noble and bleno are `require`d only when a BLE transport is created, never
 *   at import time of any carkey module: on a machine without kernel Bluetooth
 *   they throw synchronously while loading (EAFNOSUPPORT), and the simulated
 *   radio must keep working there.
 * - Every load or power-on failure becomes `CarkeyError('CK_TRANSPORT_NO_ADAPTER')`
 *   whose message names the adapter (e.g. "hci0" or the emulated socket path)
 *   and, through the catalog text, says to use `--transport sim`.
 * - Adapter selection: `--adapter hciN` becomes bleno's `BLENO_HCI_DEVICE_ID`
 *   (bleno reads only that variable) and noble's `deviceId` binding option
 *   (the same setting as `NOBLE_HCI_DEVICE_ID`, without mutating the
 *   environment).
 * - With `hciSocketPath`, the HCI socket module is swapped for the btvirt H4
 *   stand-in (see hci-override.ts) before the first require. A process uses
 *   one kind of HCI socket for its lifetime; mixing is refused. Each loaded
 *   stack's `release()` closes only the emulated sockets that stack opened.
 * - Only the subset of the libraries' API that carkey uses is typed here, and
 *   the loaded modules are shape-checked before use.
 */
import { EventEmitter } from 'node:events';
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { CarkeyError } from '../core/errors.js';
import { installHciSocketOverride, installedHciSocketOverride } from './hci-override.js';

const require = createRequire(import.meta.url);

/** Minimal structured logger (pino-compatible). */
export interface BleLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export const silentLogger: BleLogger = {
  debug: () => undefined,
  warn: () => undefined,
};

export interface BleStackOptions {
  /** Adapter name, "hci0", "hci1", … (or a bare index). */
  readonly adapter: string;
  /** Path of a btvirt LE server socket; when given, no kernel Bluetooth is used. */
  readonly hciSocketPath?: string;
}

// --- the subset of bleno 0.6 carkey uses ---------------------------------------

export interface BlenoCharacteristicOptions {
  readonly uuid: string;
  readonly properties: readonly ('write' | 'writeWithoutResponse' | 'notify')[];
  readonly onWriteRequest?: (data: Buffer, offset: number, withoutResponse: boolean, callback: (result: number) => void) => void;
  readonly onSubscribe?: (maxValueSize: number, updateValueCallback: (data: Buffer) => void) => void;
  readonly onUnsubscribe?: () => void;
}

export type BlenoCharacteristic = object;
export type BlenoPrimaryService = object;

export interface BlenoApi extends EventEmitter {
  readonly state: string;
  readonly Characteristic: new (options: BlenoCharacteristicOptions) => BlenoCharacteristic;
  readonly PrimaryService: new (options: { uuid: string; characteristics: readonly BlenoCharacteristic[] }) => BlenoPrimaryService;
  setServices(services: readonly BlenoPrimaryService[], callback: (error?: Error | null) => void): void;
  startAdvertisingWithEIRData(advertisementData: Buffer, scanData: Buffer, callback: (error?: Error | null) => void): void;
  stopAdvertising(callback?: () => void): void;
  disconnect(): void;
  updateRssi(callback?: (error: Error | null, rssi: number) => void): void;
}

/** ATT result codes bleno expects from write handlers. */
export const ATT_RESULT = { success: 0x00, unlikelyError: 0x0e } as const;

// --- the subset of noble 1.9 carkey uses ---------------------------------------

export interface NobleAdvertisement {
  readonly localName?: string;
  readonly serviceData?: readonly { readonly uuid: string; readonly data: Buffer }[];
  readonly serviceUuids?: readonly string[];
}

export interface NobleCharacteristic extends EventEmitter {
  readonly uuid: string;
  writeAsync(data: Buffer, withoutResponse: boolean): Promise<void>;
  subscribeAsync(): Promise<void>;
}

export interface NoblePeripheral extends EventEmitter {
  readonly id: string;
  readonly address: string;
  readonly connectable: boolean;
  readonly advertisement: NobleAdvertisement;
  readonly rssi: number;
  readonly mtu: number | null;
  readonly state: string;
  connectAsync(): Promise<void>;
  cancelConnect(): void;
  disconnectAsync(): Promise<void>;
  updateRssiAsync(): Promise<number>;
  discoverSomeServicesAndCharacteristicsAsync(
    serviceUuids: string[],
    characteristicUuids: string[],
  ): Promise<{ readonly characteristics: readonly NobleCharacteristic[] }>;
}

export interface NobleApi extends EventEmitter {
  readonly state: string;
  startScanningAsync(serviceUuids?: string[], allowDuplicates?: boolean): Promise<void>;
  stopScanningAsync(): Promise<void>;
}

// --- loading -------------------------------------------------------------------

let stackMode: string | undefined;

/** "hci0" → 0. Throws CK_CONFIG_INVALID for anything else. */
export function parseAdapter(adapter: string): number {
  const match = /^(?:hci)?(\d{1,3})$/.exec(adapter.trim());
  const index = match?.[1];
  if (index === undefined) {
    throw new CarkeyError('CK_CONFIG_INVALID', `adapter must look like hci0, got "${adapter}"`);
  }
  return Number.parseInt(index, 10);
}

/** Human name of the adapter for messages: "hci0" or "emulated controller at <path>". */
export function adapterLabel(options: BleStackOptions): string {
  const base = `hci${parseAdapter(options.adapter)}`;
  return options.hciSocketPath === undefined ? base : `${base} (emulated controller at ${options.hciSocketPath})`;
}

/** Map a load/bind failure of noble or bleno to CK_TRANSPORT_NO_ADAPTER. */
export function mapLoadError(error: unknown, label: string, library: string): CarkeyError {
  if (error instanceof CarkeyError) return error;
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  let detail: string;
  if (code === 'MODULE_NOT_FOUND' || code === 'ERR_DLOPEN_FAILED') {
    detail = /bluetooth[-_]hci[-_]socket/.test(message)
      ? `${label}: the native @abandonware/bluetooth-hci-socket module is not built (install make g++ python3 libudev-dev, then npm ci)`
      : `${label}: ${library} is not installed (${message})`;
  } else if (code === 'EAFNOSUPPORT') {
    detail = `${label}: this kernel has no Bluetooth support (opening an HCI socket failed with EAFNOSUPPORT)`;
  } else if (code === 'EPERM' || code === 'EACCES') {
    detail = `${label}: permission denied on the HCI socket (run as root, or: sudo setcap cap_net_raw,cap_net_admin+eip "$(command -v node)")`;
  } else if (code === 'ENODEV') {
    detail = `${label}: no such adapter`;
  } else {
    detail = `${label}: ${library} failed to start: ${message}`;
  }
  return new CarkeyError('CK_TRANSPORT_NO_ADAPTER', detail, { adapter: label, library }, { cause: error });
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

function prepareStack(options: BleStackOptions): string {
  const label = adapterLabel(options);
  const mode = options.hciSocketPath === undefined ? 'kernel' : `emulated:${options.hciSocketPath}`;
  if (stackMode !== undefined && stackMode !== mode) {
    throw new CarkeyError('CK_CONFIG_INVALID', `BLE stack already loaded for ${stackMode}; one process cannot also use ${mode}`);
  }
  if (options.hciSocketPath !== undefined) {
    if (!isSocket(options.hciSocketPath)) {
      throw new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `${label}: ${options.hciSocketPath} is not a socket (is btvirt running?)`, { adapter: label });
    }
    if (process.env.HCI_CHANNEL_USER !== undefined && process.env.HCI_CHANNEL_USER !== '') {
      // noble 1.9.2-26 never reads the LE buffer size in user-channel mode and hangs in GATT discovery.
      throw new CarkeyError('CK_CONFIG_INVALID', 'unset HCI_CHANNEL_USER: user-channel mode hangs noble on emulated controllers');
    }
    installHciSocketOverride(options.hciSocketPath);
  }
  stackMode = mode;
  return label;
}

function isSocket(file: string): boolean {
  try {
    return statSync(file).isSocket();
  } catch {
    return false;
  }
}

function hasMethods(value: unknown, names: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return names.every((name) => typeof record[name] === 'function');
}

/** A loaded stack and how to release what it holds. */
export interface LoadedStack<T> {
  readonly api: T;
  /** Close the emulated HCI sockets this stack opened (no-op on kernel adapters: noble/bleno cannot release those). */
  readonly release: () => void;
}

/** Run `load`, noting the emulated sockets it constructs (none on kernel adapters). */
function captureSockets<T>(load: () => T): { readonly result: T; readonly release: () => void } {
  const standIn = installedHciSocketOverride();
  if (standIn === undefined) return { result: load(), release: () => undefined };
  const { result, sockets } = standIn.capture(load);
  return { result, release: () => sockets.forEach((socket) => socket.close()) };
}

let blenoAdapter: number | undefined;
let blenoRelease: (() => void) | undefined;

/** Load bleno (a process-wide singleton) for `options.adapter`. */
export function loadBleno(options: BleStackOptions): LoadedStack<BlenoApi> {
  const label = prepareStack(options);
  const index = parseAdapter(options.adapter);
  if (blenoAdapter !== undefined && blenoAdapter !== index) {
    throw new CarkeyError('CK_CONFIG_INVALID', `bleno is already bound to hci${blenoAdapter}; one process drives one peripheral adapter`);
  }
  // bleno reads this when it initialises (first 'stateChange' listener).
  process.env.BLENO_HCI_DEVICE_ID = String(index);
  let loaded: unknown;
  try {
    // bleno builds its HCI and mgmt sockets once, when first required
    const { result, release } = captureSockets((): unknown => require('@abandonware/bleno'));
    loaded = result;
    blenoRelease ??= release;
  } catch (error) {
    throw mapLoadError(error, label, '@abandonware/bleno');
  }
  if (!(loaded instanceof EventEmitter) || !hasMethods(loaded, ['setServices', 'startAdvertisingWithEIRData', 'stopAdvertising', 'disconnect'])) {
    throw new CarkeyError('CK_INTERNAL', '@abandonware/bleno does not have the expected API (version 0.6.x required)');
  }
  blenoAdapter = index;
  return { api: loaded as BlenoApi, release: blenoRelease ?? (() => undefined) };
}

/** Create a fresh noble instance (its own HCI socket) bound to `options.adapter`. */
export function createNoble(options: BleStackOptions): LoadedStack<NobleApi> {
  const label = prepareStack(options);
  const deviceId = parseAdapter(options.adapter);
  let created: { readonly result: unknown; readonly release: () => void };
  try {
    const factory: unknown = require('@abandonware/noble/with-custom-binding');
    if (typeof factory !== 'function') throw new Error('with-custom-binding is not a function');
    created = captureSockets(() => (factory as (bindingOptions: { deviceId: number }) => unknown)({ deviceId }));
  } catch (error) {
    throw mapLoadError(error, label, '@abandonware/noble');
  }
  const { result: instance, release } = created;
  if (!(instance instanceof EventEmitter) || !hasMethods(instance, ['startScanningAsync', 'stopScanningAsync'])) {
    throw new CarkeyError('CK_INTERNAL', '@abandonware/noble does not have the expected API (version 1.9.x required)');
  }
  return { api: instance as NobleApi, release };
}

interface StateSource {
  readonly state: string;
  on(event: 'stateChange', listener: (state: string) => void): unknown;
  removeListener(event: 'stateChange', listener: (state: string) => void): unknown;
}

/**
 * Wait until the stack reports 'poweredOn'. 'unauthorized' and 'unsupported'
 * fail at once; anything else fails after `timeoutMs` naming the last state.
 */
export function waitForPoweredOn(source: StateSource, label: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let last = 'unknown';
    const finish = (error?: CarkeyError): void => {
      clearTimeout(timer);
      source.removeListener('stateChange', onState);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onState = (state: string): void => {
      last = state;
      if (state === 'poweredOn') finish();
      else if (state === 'unauthorized') finish(mapLoadError(Object.assign(new Error('unauthorized'), { code: 'EPERM' }), label, 'BLE stack'));
      else if (state === 'unsupported') finish(new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `${label}: adapter does not support Bluetooth Low Energy`, { adapter: label }));
    };
    const timer = setTimeout(() => {
      finish(new CarkeyError('CK_TRANSPORT_NO_ADAPTER', `${label}: adapter did not power on within ${timeoutMs} ms (state: ${last})`, { adapter: label, state: last }));
    }, timeoutMs);
    // Registering the listener starts the stack's initialisation.
    source.on('stateChange', onState);
    const current = source.state;
    if (current !== 'unknown') onState(current);
  });
}
