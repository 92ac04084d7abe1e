/**
 * The transport boundary between carkey's session code and a radio.
 *
 * Guarantees: session code (vehicle and phone) sees only these interfaces, so
 * the same code runs over real BLE (bleno/noble), the simulated radio broker
 * and emulated controllers. A transport moves opaque GATT-sized chunks; it
 * never parses or reassembles carkey messages (that is `src/core/framing.ts`,
 * applied by `channel.ts`). Every failure surfaces as a `CarkeyError` with a
 * CK_TRANSPORT_* code.
 */

/** GATT layout of the carkey service (see docs/protocol.md). */
export const GATT = {
  /** primary service */
  service: '8f6d0001-5c3a-4e8b-9c2d-6361726b6579',
  /** phone → car: write (with and without response) */
  write: '8f6d0002-5c3a-4e8b-9c2d-6361726b6579',
  /** car → phone: notify */
  notify: '8f6d0003-5c3a-4e8b-9c2d-6361726b6579',
} as const;

/** What the car advertises. */
export interface Advertisement {
  /** Short local name, e.g. "carkey". Never identifies the owner. */
  readonly localName: string;
  /** Service data under GATT.service: the rotating identifier (see docs/protocol.md). */
  readonly serviceData: Uint8Array;
}

/** Unsubscribe function returned by every `on*` registration. */
export type Unsubscribe = () => void;

/** Why a link ended. */
export type CloseReason = 'local' | 'remote' | 'timeout' | 'link-lost' | 'error';

/** One connected phone, as seen by the car. */
export interface PeripheralLink {
  /** Opaque per-connection id, unique for the life of the process. */
  readonly id: string;
  /** Negotiated ATT MTU (23 until exchanged). Chunks are at most mtu - 3 bytes. */
  mtu(): number;
  /** Latest RSSI in dBm if the radio reports it, else undefined. */
  rssi(): number | undefined;
  /** Called once per chunk the phone writes to the write characteristic. */
  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe;
  /** Called when the phone subscribes to the notify characteristic. */
  onSubscribed(handler: () => void): Unsubscribe;
  /** Called once when the link ends, for any reason. */
  onClose(handler: (reason: CloseReason) => void): Unsubscribe;
  /** Send one chunk as a notification. Rejects if not subscribed, closed or disconnecting. */
  notify(chunk: Uint8Array): Promise<void>;
  /**
   * Drop the link. Idempotent. Notifications already passed to `notify` are
   * handed to the controller (radio) before the link is dropped, waiting at
   * most 500 ms for that; `notify` calls made after `disconnect` reject. So
   * "send a REFUSE, then disconnect" delivers the REFUSE.
   */
  disconnect(): Promise<void>;
}

/** The car's side of the radio. */
export interface PeripheralTransport {
  /** Start advertising and accepting connections. */
  start(advertisement: Advertisement): Promise<void>;
  /** Replace advertised data (rotating identifier) without dropping links. */
  setAdvertisement(advertisement: Advertisement): Promise<void>;
  /** Called for every new connection. */
  onLink(handler: (link: PeripheralLink) => void): Unsubscribe;
  /** Stop advertising and drop all links. */
  stop(): Promise<void>;
}

/** A car seen while scanning. */
export interface Discovery {
  /** Transport-specific address used by `connect`. */
  readonly address: string;
  readonly localName: string | undefined;
  readonly serviceData: Uint8Array | undefined;
  readonly rssi: number | undefined;
}

export interface ScanOptions {
  /** Give up after this long (ms). */
  readonly timeoutMs: number;
  /** Stop at the first discovery for which this returns true. */
  readonly accept?: (discovery: Discovery) => boolean;
  /** Called for every advertisement seen (progress display). */
  readonly onDiscovery?: (discovery: Discovery) => void;
}

/** One connection to a car, as seen by the phone. */
export interface CentralLink {
  mtu(): number;
  rssi(): number | undefined;
  /** Write one chunk (with response). */
  write(chunk: Uint8Array): Promise<void>;
  /** Called once per notification chunk from the car. */
  onChunk(handler: (chunk: Uint8Array) => void): Unsubscribe;
  onClose(handler: (reason: CloseReason) => void): Unsubscribe;
  disconnect(): Promise<void>;
}

/** The phone's side of the radio. */
export interface CentralTransport {
  /**
   * Scan for carkey advertisements until `accept` matches (resolves with that
   * discovery) or the timeout ends (resolves with everything seen, `match`
   * undefined). Never rejects for "nothing found".
   */
  scan(options: ScanOptions): Promise<{ readonly match: Discovery | undefined; readonly seen: readonly Discovery[] }>;
  /** Connect, exchange MTU, discover the carkey service, subscribe to notify. */
  connect(discovery: Discovery, options: { readonly timeoutMs: number; readonly mtu?: number }): Promise<CentralLink>;
  /** Release the radio. */
  close(): Promise<void>;
}
