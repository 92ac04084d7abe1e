/**
 * HCI H4 byte-stream framing, as spoken by BlueZ `btvirt` on its UNIX server
 * sockets: every packet is one type byte followed by the HCI packet.
 *
 * Guarantees: `H4Splitter` turns an arbitrarily cut byte stream (partial reads,
 * several packets per read) into whole packets, in order, each including its
 * type byte, exactly as a kernel HCI socket would deliver them. It never
 * buffers more than one packet (at most 5 + 65535 bytes) and reports an
 * unknown packet type as an error, after which the stream is unusable (H4 has
 * no resynchronisation). `passesHciFilter` applies the kernel's raw-socket
 * filter semantics (struct hci_filter) to one packet. Pure: no I/O.
 */

/** H4 packet type indicators. */
export const H4_TYPE = {
  command: 0x01,
  acl: 0x02,
  sco: 0x03,
  event: 0x04,
  iso: 0x05,
} as const;

/** Header length after the type byte, and how to read the payload length from it. */
interface HeaderShape {
  readonly headerLength: number;
  readonly payloadLength: (header: Uint8Array) => number;
}

const u8 = (bytes: Uint8Array, index: number): number => bytes[index] ?? 0;
const u16le = (bytes: Uint8Array, index: number): number => u8(bytes, index) | (u8(bytes, index + 1) << 8);

const SHAPES: ReadonlyMap<number, HeaderShape> = new Map<number, HeaderShape>([
  // opcode u16, plen u8
  [H4_TYPE.command, { headerLength: 3, payloadLength: (h) => u8(h, 2) }],
  // handle+flags u16, dlen u16
  [H4_TYPE.acl, { headerLength: 4, payloadLength: (h) => u16le(h, 2) }],
  // handle+flags u16, dlen u8
  [H4_TYPE.sco, { headerLength: 3, payloadLength: (h) => u8(h, 2) }],
  // event code u8, plen u8
  [H4_TYPE.event, { headerLength: 2, payloadLength: (h) => u8(h, 1) }],
  // handle+flags u16, dlen u14
  [H4_TYPE.iso, { headerLength: 4, payloadLength: (h) => u16le(h, 2) & 0x3fff }],
]);

export type SplitOutcome =
  | { readonly ok: true; readonly packets: readonly Uint8Array[] }
  | { readonly ok: false; readonly packets: readonly Uint8Array[]; readonly badType: number };

/** Reassembles H4 packets from stream reads. */
export class H4Splitter {
  private pending: Uint8Array = new Uint8Array(0);
  private broken = false;

  /** Bytes held back waiting for the rest of a packet. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * Feed one read. Returns every packet completed by it (type byte included).
   * After an unknown type byte the splitter stays broken and returns nothing.
   */
  push(data: Uint8Array): SplitOutcome {
    if (this.broken) return { ok: true, packets: [] };
    let buffer = concat(this.pending, data);
    const packets: Uint8Array[] = [];
    for (;;) {
      const type = buffer[0];
      if (type === undefined) break;
      const shape = SHAPES.get(type);
      if (shape === undefined) {
        this.broken = true;
        this.pending = new Uint8Array(0);
        return { ok: false, packets, badType: type };
      }
      if (buffer.length < 1 + shape.headerLength) break;
      const total = 1 + shape.headerLength + shape.payloadLength(buffer.subarray(1, 1 + shape.headerLength));
      if (buffer.length < total) break;
      packets.push(buffer.slice(0, total));
      buffer = buffer.subarray(total);
    }
    this.pending = buffer.slice();
    return { ok: true, packets };
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const EVT_CMD_COMPLETE = 0x0e;
const EVT_CMD_STATUS = 0x0f;

const u32le = (bytes: Uint8Array, index: number): number => (u16le(bytes, index) | (u16le(bytes, index + 2) << 16)) >>> 0;

/**
 * Kernel raw HCI socket filter (net/bluetooth/hci_sock.c, is_filtered_packet):
 * `filter` is struct hci_filter { u32 type_mask; u32 event_mask[2]; le16 opcode }.
 * Returns true when `packet` (H4, type byte first) would be delivered.
 */
export function passesHciFilter(filter: Uint8Array, packet: Uint8Array): boolean {
  const type = packet[0];
  if (type === undefined) return false;
  const typeMask = u32le(filter, 0);
  if (((typeMask >>> (type & 31)) & 1) === 0) return false;
  if (type !== H4_TYPE.event) return true;
  const event = u8(packet, 1) & 63;
  const eventMask = u32le(filter, event < 32 ? 4 : 8);
  if (((eventMask >>> (event & 31)) & 1) === 0) return false;
  const opcode = u16le(filter, 12);
  if (opcode === 0) return true;
  if (event === EVT_CMD_COMPLETE) return u16le(packet, 4) === opcode;
  if (event === EVT_CMD_STATUS) return u16le(packet, 5) === opcode;
  return true;
}
