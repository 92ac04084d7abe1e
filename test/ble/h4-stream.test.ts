/**
 * H4 framing of the btvirt stand-in: reassembly from arbitrary reads and the
 * kernel raw-socket filter.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { H4_TYPE, H4Splitter, passesHciFilter } from '../../src/transport/h4-stream.js';

const hex = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text.replace(/\s/g, ''), 'hex'));

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A well-formed H4 packet of each kind with a payload of `length` bytes. */
const packetArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 255 })).map(([opcode, p]) => concat([Uint8Array.of(H4_TYPE.command, opcode & 0xff, opcode >> 8, p.length), p])),
  fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 1100 })).map(([handle, p]) => concat([Uint8Array.of(H4_TYPE.acl, handle & 0xff, handle >> 8, p.length & 0xff, p.length >> 8), p])),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 255 })).map(([code, p]) => concat([Uint8Array.of(H4_TYPE.event, code, p.length), p])),
  fc.uint8Array({ maxLength: 255 }).map((p) => concat([Uint8Array.of(H4_TYPE.sco, 1, 0, p.length), p])),
  fc.uint8Array({ maxLength: 600 }).map((p) => concat([Uint8Array.of(H4_TYPE.iso, 1, 0, p.length & 0xff, (p.length >> 8) & 0x3f), p])),
);

describe('H4Splitter', () => {
  it('returns a whole packet delivered in one read', () => {
    const reset = hex('040e0401030c00');
    const out = new H4Splitter().push(reset);
    expect(out).toEqual({ ok: true, packets: [reset] });
  });

  it('holds back a partial packet until the rest arrives, including a split header', () => {
    const splitter = new H4Splitter();
    const acl = hex('02 4000 0700 0300 0400 0a0b0c');
    expect(splitter.push(acl.subarray(0, 2)).packets).toEqual([]);
    expect(splitter.buffered).toBe(2);
    expect(splitter.push(acl.subarray(2, 6)).packets).toEqual([]);
    expect(splitter.push(acl.subarray(6)).packets).toEqual([acl]);
    expect(splitter.buffered).toBe(0);
  });

  it('reassembles any sequence of packets cut at any points, in order', () => {
    fc.assert(
      fc.property(fc.array(packetArb, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 30 }), (packets, cuts) => {
        const stream = concat(packets);
        const splitter = new H4Splitter();
        const got: Uint8Array[] = [];
        let offset = 0;
        let i = 0;
        while (offset < stream.length) {
          const size = cuts[i % cuts.length] ?? 1;
          const outcome = splitter.push(stream.subarray(offset, offset + size));
          expect(outcome.ok).toBe(true);
          got.push(...outcome.packets);
          offset += size;
          i++;
        }
        expect(got).toEqual(packets);
        expect(splitter.buffered).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('reports an unknown packet type and stays broken (H4 cannot resynchronise)', () => {
    const splitter = new H4Splitter();
    const good = hex('040e0401030c00');
    const outcome = splitter.push(concat([good, Uint8Array.of(0x09, 0x01, 0x02)]));
    expect(outcome).toEqual({ ok: false, packets: [good], badType: 0x09 });
    expect(splitter.push(good)).toEqual({ ok: true, packets: [] });
  });
});

describe('passesHciFilter (kernel raw-socket semantics)', () => {
  /** struct hci_filter: type_mask, event_mask[2], opcode */
  function filter(types: readonly number[], events: readonly number[], opcode = 0): Uint8Array {
    const out = Buffer.alloc(16);
    out.writeUInt32LE(types.reduce((m, t) => (m | (1 << t)) >>> 0, 0), 0);
    out.writeUInt32LE(events.filter((e) => e < 32).reduce((m, e) => (m | (1 << e)) >>> 0, 0), 4);
    out.writeUInt32LE(events.filter((e) => e >= 32).reduce((m, e) => (m | (1 << (e - 32))) >>> 0, 0), 8);
    out.writeUInt16LE(opcode, 12);
    return Uint8Array.from(out);
  }
  const commandComplete = hex('040e0401030c00'); // reset, opcode 0x0c03
  const commandStatus = hex('040f0400010d20'); // LE create connection, opcode 0x200d
  const leMeta = hex('043e0401020304');
  const acl = hex('024000000000');

  it('drops packet types not in the type mask', () => {
    const f = filter([H4_TYPE.event], [0x0e, 0x3e]);
    expect(passesHciFilter(f, acl)).toBe(false);
    expect(passesHciFilter(f, commandComplete)).toBe(true);
  });

  it('drops events not in the event mask, including events numbered 32..63', () => {
    const f = filter([H4_TYPE.event, H4_TYPE.acl], [0x0e]);
    expect(passesHciFilter(f, commandComplete)).toBe(true);
    expect(passesHciFilter(f, leMeta)).toBe(false);
    expect(passesHciFilter(filter([H4_TYPE.event], [0x3e]), leMeta)).toBe(true);
    expect(passesHciFilter(f, acl)).toBe(true);
  });

  it('with an opcode set, passes only that command’s Command Complete / Status', () => {
    const f = filter([H4_TYPE.event], [0x0e, 0x0f, 0x3e], 0x0c03);
    expect(passesHciFilter(f, commandComplete)).toBe(true);
    expect(passesHciFilter(f, commandStatus)).toBe(false);
    expect(passesHciFilter(filter([H4_TYPE.event], [0x0f], 0x200d), commandStatus)).toBe(true);
    expect(passesHciFilter(f, leMeta)).toBe(true);
  });
});
