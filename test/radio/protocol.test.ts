/**
 * The broker wire format: every request and event round-trips, malformed
 * input yields a typed error (keeping the request id when readable) and never
 * throws, lines are capped and split correctly whatever the chunking.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineReader } from '../../src/transport/sim-lines.js';
import {
  MAX_CHUNK_BYTES,
  MAX_REQUEST_LINE_BYTES,
  decodeRequest,
  decodeServerMessage,
  encodeMessage,
  errorFromMessage,
  errorMessage,
  type Request,
  type ServerMessage,
} from '../../src/transport/sim-protocol.js';
import { CarkeyError } from '../../src/core/errors.js';

const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 37) & 0xff);

const requests: Request[] = [
  { op: 'hello', id: 1, v: 1, role: 'peripheral', name: 'car-1', maxMtu: 185 },
  { op: 'hello', id: 2, v: 1, role: 'control', name: undefined, maxMtu: undefined },
  { op: 'advertise', id: 3, localName: 'carkey', serviceData: bytes(10) },
  { op: 'advertise-stop', id: 4 },
  { op: 'notify', id: 5, linkId: 'ab12-1', data: bytes(MAX_CHUNK_BYTES) },
  { op: 'write-ack', id: 6, linkId: 'ab12-1', seq: 9 },
  { op: 'scan-start', id: 7 },
  { op: 'scan-stop', id: 8 },
  { op: 'connect', id: 9, address: 'car-1' },
  { op: 'connect-cancel', id: 10, connectId: 9 },
  { op: 'mtu', id: 11, linkId: 'ab12-1', mtu: 247 },
  { op: 'discover', id: 12, linkId: 'ab12-1' },
  { op: 'subscribe', id: 13, linkId: 'ab12-1' },
  { op: 'write', id: 14, linkId: 'ab12-1', data: bytes(0), withResponse: false },
  { op: 'disconnect', id: 15, linkId: 'ab12-1' },
  { op: 'set-profile', id: 16, peripheral: 'car-1', central: undefined, profile: { lossRate: 0.5, rssi: 'cabin', dropAfterConnectMs: null } },
  { op: 'set-radio', id: 17, radio: { advertisingIntervalMs: 20 } },
  { op: 'drop', id: 18, peripheral: undefined, central: 'phone', afterMs: 100 },
  { op: 'time', id: 19 },
  { op: 'status', id: 20 },
];

const events: ServerMessage[] = [
  { ev: 'ok', id: 1, result: { now: 12.5, seed: 7 } },
  { ev: 'ok', id: 2, result: { linkId: 'x-1', mtu: 23, rssi: -60 } },
  { ev: 'ok', id: 3, result: { services: ['a', 'b'] } },
  { ev: 'ok', id: 4, result: { status: { peripherals: [{ name: 'car', advertising: true, links: 1 }], centrals: [], links: [{ id: 'x-1', peripheral: 'car', central: 'p', mtu: 185, subscribed: true, silent: false }] } } },
  { ev: 'error', id: 5, code: 'CK_TRANSPORT_DISCONNECTED', message: 'the link was disconnected: gone', detail: 'gone' },
  { ev: 'error', id: null, code: 'CK_TRANSPORT_RADIO_PROTOCOL', message: 'x', detail: undefined },
  { ev: 'adv', address: 'car', localName: 'carkey', serviceData: bytes(10), rssi: -61, at: 100.25 },
  { ev: 'link-open', linkId: 'x-1', address: 'phone', mtu: 23, rssi: -60, at: 1 },
  { ev: 'mtu', linkId: 'x-1', mtu: 185, at: 2 },
  { ev: 'subscribed', linkId: 'x-1', at: 3 },
  { ev: 'chunk', linkId: 'x-1', seq: 0, data: bytes(20), withResponse: true, rssi: -60, at: 4 },
  { ev: 'notification', linkId: 'x-1', data: bytes(182), rssi: -60, at: 5 },
  { ev: 'rssi', linkId: 'x-1', rssi: -127, at: 6 },
  { ev: 'link-closed', linkId: 'x-1', reason: 'link-lost', at: 7 },
];

function strip(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v))) as unknown;
}

describe('sim radio protocol', () => {
  it.each(requests.map((r) => [r.op, r] as const))('round-trips request %s', (_op, request) => {
    const line = encodeMessage(request);
    expect(Buffer.byteLength(line)).toBeLessThan(MAX_REQUEST_LINE_BYTES);
    const decoded = decodeRequest(line);
    expect(decoded.ok).toBe(true);
    if (decoded.ok) expect(strip(decoded.value)).toEqual(strip(request));
  });

  it.each(events.map((e, i) => [`${e.ev}#${i}`, e] as const))('round-trips broker message %s', (_name, event) => {
    const decoded = decodeServerMessage(encodeMessage(event));
    expect(decoded.ok).toBe(true);
    if (decoded.ok) expect(strip(decoded.value)).toEqual(strip(event));
  });

  it('encodes a Buffer as base64, not through Buffer#toJSON', () => {
    const line = encodeMessage({ op: 'notify', id: 1, linkId: 'a-1', data: Buffer.from('hi') });
    expect(JSON.parse(line)).toMatchObject({ data: 'aGk=' });
  });

  it.each([
    ['not json', undefined, 'not valid JSON'],
    ['[1,2]', undefined, 'not a JSON object'],
    ['{"op":"time"}', undefined, '"id"'],
    ['{"op":"time","id":0}', undefined, '"id"'],
    ['{"op":"teleport","id":4}', 4, 'unknown op'],
    ['{"op":"connect","id":5}', 5, '"address" is missing'],
    ['{"op":"connect","id":5,"address":"no spaces"}', 5, '"address" must match'],
    ['{"op":"mtu","id":6,"linkId":"a-1","mtu":600}', 6, '"mtu" must be between 23 and 517'],
    ['{"op":"write","id":7,"linkId":"a-1","data":"!!!!","withResponse":true}', 7, 'canonical base64'],
    ['{"op":"advertise","id":8,"localName":"carkey","serviceData":"AAAAAAAAAAAAAAAA"}', 8, 'at most 10 bytes'],
    ['{"op":"set-profile","id":9,"profile":{"losRate":1}}', 9, 'unknown field "losRate"'],
    ['{"op":"set-profile","id":9,"profile":{"connectionIntervalMs":200}}', 9, 'connectionIntervalMs'],
    ['{"op":"hello","id":10,"v":1,"role":"king","name":"x"}', 10, '"role" must be one of'],
  ])('rejects %s', (line, id, fragment) => {
    const decoded = decodeRequest(line);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) {
      expect(decoded.id).toBe(id);
      expect(decoded.error.code).toBe('CK_TRANSPORT_RADIO_PROTOCOL');
      expect(decoded.error.message).toContain(fragment);
    }
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ id: 1, op: 'set-profile', profile: v }))), (line) => {
        decodeRequest(line);
        decodeServerMessage(line);
      }),
      { numRuns: 2000 },
    );
  });

  it('error replies carry the catalog code and detail back to a CarkeyError', () => {
    const original = new CarkeyError('CK_TRANSPORT_CHUNK_TOO_LARGE', '200 bytes');
    const message = errorMessage(3, original);
    if (message.ev !== 'error') throw new Error('expected error');
    expect(message).toMatchObject({ id: 3, code: 'CK_TRANSPORT_CHUNK_TOO_LARGE', detail: '200 bytes' });
    const restored = errorFromMessage(message);
    expect(restored.code).toBe(original.code);
    expect(restored.message).toBe(original.message);
    expect(decodeServerMessage('{"ev":"error","id":1,"code":"CK_NOPE","message":"x"}').ok).toBe(false);
  });
});

describe('LineReader', () => {
  it('splits lines identically however the bytes are chunked', () => {
    const lineArb = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/\n/g, ' ')).filter((s) => s.length > 0);
    fc.assert(
      fc.property(fc.array(lineArb, { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1 }), (lines, cuts) => {
        const data = Buffer.from(lines.map((l) => `${l}\n`).join(''));
        const reader = new LineReader(1000);
        const out: string[] = [];
        let offset = 0;
        let i = 0;
        while (offset < data.length) {
          const size = cuts[i % cuts.length] ?? 1;
          for (const r of reader.push(data.subarray(offset, offset + size))) {
            if (!r.ok) throw r.error;
            out.push(r.value);
          }
          offset += size;
          i += 1;
        }
        expect(out).toEqual(lines);
      }),
    );
  });

  it('reports an overlong line once, discards it, and keeps going', () => {
    const reader = new LineReader(8);
    const results = [...reader.push(Buffer.from('0123')), ...reader.push(Buffer.from('456789abc')), ...reader.push(Buffer.from('def\nok\n'))];
    expect(results.map((r) => (r.ok ? r.value : r.error.code))).toEqual(['CK_TRANSPORT_RADIO_PROTOCOL', 'ok']);
  });

  it('rejects invalid UTF-8 for that line only', () => {
    const reader = new LineReader(100);
    const results = reader.push(Buffer.concat([Buffer.from([0xff, 0xfe, 0x0a]), Buffer.from('fine\n')]));
    expect(results.map((r) => (r.ok ? r.value : r.error.code))).toEqual(['CK_TRANSPORT_RADIO_PROTOCOL', 'fine']);
  });

  it('skips empty lines', () => {
    expect(new LineReader(10).push(Buffer.from('\n\na\n'))).toEqual([{ ok: true, value: 'a' }]);
  });
});
