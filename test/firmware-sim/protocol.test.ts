// Table-driven and property tests of the body-controller line protocol (pure).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  crc16,
  decodeToken,
  encodeToken,
  formatErr,
  formatEvent,
  formatOk,
  formatRequest,
  LineSplitter,
  MAX_LINE_BYTES,
  MAX_REQUEST_ID,
  openLine,
  parseControllerLine,
  parseKeyValues,
  parseRequest,
  sealLine,
  WIRE_DOORS,
  WIRE_ERROR_CODES,
} from '../../src/vehicle/body-protocol.js';
import type { HostCommand, WireError, WireEvent, WireResult } from '../../src/vehicle/body-protocol.js';
import { formatControlRequest, parseControlRequest } from '../../firmware-sim/hardware/control.js';

/** Strip the LF a formatter adds, as the splitter would. */
function unframe(line: string): string {
  expect(line.endsWith('\n')).toBe(true);
  return line.slice(0, -1);
}

function expectError<T>(result: WireResult<T>): WireError {
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.value)}`);
  return result.error;
}

function expectValue<T>(result: WireResult<T>): T {
  if (!result.ok) throw new Error(`expected a value, got ${result.error.code}: ${result.error.text}`);
  return result.value;
}

describe('checksum', () => {
  it('is CRC-16/CCITT-FALSE (check value of "123456789" is 0x29B1)', () => {
    expect(crc16('123456789')).toBe(0x29b1);
    expect(crc16('')).toBe(0xffff);
  });

  it('seals a body as body*XXXX\\n and opens it again', () => {
    expect(sealLine('1 PING')).toBe('1 PING*8C6F\n');
    expect(openLine('1 PING*8C6F', 'required')).toEqual({ ok: true, value: '1 PING' });
    expect(openLine('1 PING*8C6F\r', 'required')).toEqual({ ok: true, value: '1 PING' });
  });

  it.each([
    ['missing checksum where required', '1 PING', 'required', 'CRC'],
    ['lowercase checksum', '1 PING*8c6f', 'required', 'CRC'],
    ['wrong checksum', '1 PING*8C6E', 'required', 'CRC'],
    ['short checksum', '1 PING*8C6', 'optional', 'CRC'],
    ['two stars', '1 PI*NG*8C6F', 'required', 'CRC'],
    ['control byte', '1 PI\tNG', 'optional', 'BADCHAR'],
    ['non-ASCII', '1 PINGé', 'optional', 'BADCHAR'],
    ['too long', `1 PING ${'A'.repeat(MAX_LINE_BYTES)}`, 'optional', 'TOOLONG'],
  ] as const)('rejects %s', (_name, line, policy, code) => {
    expect(expectError(openLine(line, policy)).code).toBe(code);
  });

  it('accepts a line without checksum when it is optional', () => {
    expect(openLine('1 PING', 'optional')).toEqual({ ok: true, value: '1 PING' });
  });

  it('detects every single-character substitution in a sealed line', () => {
    const commands = fc.constantFrom<HostCommand>(
      { verb: 'UNLOCK', doors: 'all' },
      { verb: 'LOCK', doors: ['front-left', 'rear-right'] },
      { verb: 'DRIVE', on: true },
      { verb: 'DISPLAY', op: 'show', rows: ['123456', 'Pair phone?'] },
    );
    fc.assert(
      fc.property(commands, fc.integer({ min: 1, max: MAX_REQUEST_ID }), fc.nat(), fc.integer({ min: 0x20, max: 0x7e }), (command, id, where, replacement) => {
        const line = unframe(formatRequest(id, command));
        const at = where % line.length;
        fc.pre(line.charCodeAt(at) !== replacement);
        const corrupted = line.slice(0, at) + String.fromCharCode(replacement) + line.slice(at + 1);
        expect(parseRequest(corrupted).ok).toBe(false);
      }),
    );
  });
});

describe('tokens', () => {
  it('percent-encodes space, %, * and non-ASCII and nothing else', () => {
    expect(encodeToken('Pair phone?')).toBe('Pair%20phone?');
    expect(encodeToken('100%*')).toBe('100%25%2A');
    expect(encodeToken('é')).toBe('%C3%A9');
    expect(encodeToken('a=b|c')).toBe('a=b|c');
  });

  it.each([['%'], ['%2'], ['%zz'], ['%FF'], ['a*b'], ['a b']])('refuses to decode %j', (token) => {
    expect(decodeToken(token)).toBeUndefined();
  });

  it('round-trips any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (value) => {
        expect(decodeToken(encodeToken(value))).toBe(value);
      }),
    );
  });

  it('reads key=value data', () => {
    expect(parseKeyValues(['a=1', 'b=x=y', 'c='])).toEqual(
      new Map([
        ['a', '1'],
        ['b', 'x=y'],
        ['c', ''],
      ]),
    );
    expect(parseKeyValues(['novalue'])).toBeUndefined();
    expect(parseKeyValues(['=x'])).toBeUndefined();
  });
});

describe('requests', () => {
  const valid: ReadonlyArray<readonly [string, HostCommand]> = [
    ['PING', { verb: 'PING' }],
    ['STATE', { verb: 'STATE' }],
    ['LOCK all', { verb: 'LOCK', doors: 'all' }],
    ['UNLOCK front-left', { verb: 'UNLOCK', doors: ['front-left'] }],
    ['UNLOCK rear-left rear-right', { verb: 'UNLOCK', doors: ['rear-left', 'rear-right'] }],
    ['DRIVE on', { verb: 'DRIVE', on: true }],
    ['DRIVE off', { verb: 'DRIVE', on: false }],
    ['TRUNK open', { verb: 'TRUNK' }],
    ['DISPLAY SHOW 123456', { verb: 'DISPLAY', op: 'show', rows: ['123456'] }],
    ['DISPLAY SHOW 123456 Pair%20phone?', { verb: 'DISPLAY', op: 'show', rows: ['123456', 'Pair phone?'] }],
    ['DISPLAY CLEAR', { verb: 'DISPLAY', op: 'clear' }],
    ['BEEP', { verb: 'BEEP', count: 1 }],
    ['FLASH 3', { verb: 'FLASH', count: 3 }],
  ];

  it.each(valid)('parses "7 %s"', (text, command) => {
    expect(expectValue(parseRequest(unframe(sealLine(`7 ${text}`))))).toEqual({ id: 7, command });
  });

  it.each(valid)('formats %s so that it parses back', (_text, command) => {
    expect(expectValue(parseRequest(unframe(formatRequest(65535, command))))).toEqual({ id: 65535, command });
  });

  it('formats an empty display row as an insignificant space', () => {
    const line = formatRequest(1, { verb: 'DISPLAY', op: 'show', rows: ['', 'bottom'] });
    expect(line).toMatch(/^1 DISPLAY SHOW %20 bottom\*/);
  });

  it.each([
    ['no id', 'PING', 'SYNTAX', 0],
    ['id 0', '0 PING', 'SYNTAX', 0],
    ['id too large', '65536 PING', 'SYNTAX', 0],
    ['leading zero', '07 PING', 'SYNTAX', 0],
    ['no verb', '5', 'SYNTAX', 5],
    ['lowercase verb', '5 ping', 'SYNTAX', 5],
    ['double space', '5  PING', 'SYNTAX', 5],
    ['trailing space', '5 PING ', 'SYNTAX', 5],
    ['bad escape', '5 DISPLAY SHOW %G0', 'SYNTAX', 5],
    ['unknown verb', '5 OPEN-SESAME', 'UNKNOWN', 5],
    ['PING with args', '5 PING now', 'ARGS', 5],
    ['LOCK without doors', '5 LOCK', 'ARGS', 5],
    ['LOCK bad door', '5 LOCK boot', 'ARGS', 5],
    ['LOCK repeated door', '5 LOCK front-left front-left', 'ARGS', 5],
    ['LOCK all plus door', '5 LOCK all front-left', 'ARGS', 5],
    ['DRIVE maybe', '5 DRIVE maybe', 'ARGS', 5],
    ['TRUNK close (a person closes it)', '5 TRUNK close', 'ARGS', 5],
    ['DISPLAY without op', '5 DISPLAY', 'ARGS', 5],
    ['DISPLAY SHOW without rows', '5 DISPLAY SHOW', 'ARGS', 5],
    ['DISPLAY lowercase clear', '5 DISPLAY clear', 'ARGS', 5],
    ['BEEP 0', '5 BEEP 0', 'ARGS', 5],
    ['BEEP 10', '5 BEEP 10', 'ARGS', 5],
  ] as const)('rejects %s', (_name, body, code, id) => {
    const error = expectError(parseRequest(unframe(sealLine(body))));
    expect(error.code).toBe(code);
    expect(error.id).toBe(id);
  });

  it('round-trips arbitrary well-formed commands', () => {
    const door = fc.constantFrom(...WIRE_DOORS);
    const doors = fc.oneof(fc.constant('all' as const), fc.uniqueArray(door, { minLength: 1, maxLength: 4 }));
    const row = fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }).filter((r) => r.trimEnd().length > 0 && r === r.trimEnd());
    const command: fc.Arbitrary<HostCommand> = fc.oneof(
      fc.constant<HostCommand>({ verb: 'PING' }),
      doors.map((d): HostCommand => ({ verb: 'LOCK', doors: d })),
      doors.map((d): HostCommand => ({ verb: 'UNLOCK', doors: d })),
      fc.boolean().map((on): HostCommand => ({ verb: 'DRIVE', on })),
      fc.array(row, { minLength: 1, maxLength: 3 }).map((rows): HostCommand => ({ verb: 'DISPLAY', op: 'show', rows })),
      fc.integer({ min: 1, max: 9 }).map((count): HostCommand => ({ verb: 'BEEP', count })),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_REQUEST_ID }), command, (id, cmd) => {
        expect(expectValue(parseRequest(unframe(formatRequest(id, cmd))))).toEqual({ id, command: cmd });
      }),
    );
  });
});

describe('replies and events', () => {
  it.each([
    ['OK without data', formatOk(3), { kind: 'ok', id: 3, data: [] }],
    ['OK with data', formatOk(3, ['display1=Pair phone?', 'doors=4']), { kind: 'ok', id: 3, data: ['display1=Pair phone?', 'doors=4'] }],
    ['ERR', formatErr(9, 'NODOOR', 'door not fitted: rear-left'), { kind: 'err', id: 9, code: 'NODOOR', text: 'door not fitted: rear-left' }],
    ['ERR id 0', formatErr(0, 'BUSY', 'another host is connected'), { kind: 'err', id: 0, code: 'BUSY', text: 'another host is connected' }],
    ['ERR text with * is sanitised', formatErr(2, 'RANGE', 'a*b'), { kind: 'err', id: 2, code: 'RANGE', text: 'a?b' }],
    ['ERR text spacing is normalised', formatErr(2, 'RANGE', '  a  b\tc '), { kind: 'err', id: 2, code: 'RANGE', text: 'a b?c' }],
    ['ERR without text', formatErr(2, 'INTERNAL', ' '), { kind: 'err', id: 2, code: 'INTERNAL', text: '' }],
  ] as const)('parses %s', (_name, line, expected) => {
    expect(expectValue(parseControllerLine(unframe(line)))).toEqual(expected);
  });

  const events: readonly WireEvent[] = [
    { event: 'BUTTON', press: 'short' },
    { event: 'BUTTON', press: 'long' },
    { event: 'KEYCARD', cardId: '04A224B2C35E80' },
    { event: 'TRUNK', state: 'open' },
    { event: 'TRUNK', state: 'closed' },
    { event: 'DOOR', door: 'front-left', position: 'open' },
    { event: 'DOOR', door: 'rear-right', position: 'closed' },
  ];

  it.each(events)('round-trips event %j', (event) => {
    expect(expectValue(parseControllerLine(unframe(formatEvent(event))))).toEqual({ kind: 'event', event });
  });

  it('writes events byte for byte as documented', () => {
    expect(formatEvent({ event: 'BUTTON', press: 'short' })).toBe('! BUTTON short*C7D8\n');
    expect(formatEvent({ event: 'DOOR', door: 'front-right', position: 'open' })).toBe('! DOOR front-right open*AD44\n');
  });

  it.each([
    ['unknown event', '! HORN on', 'UNKNOWN', 0],
    ['bad button', '! BUTTON double', 'ARGS', 0],
    ['bad card id', '! KEYCARD a%20b', 'ARGS', 0],
    ['door event without position', '! DOOR front-left', 'ARGS', 0],
    ['door event for an unknown door', '! DOOR boot open', 'ARGS', 0],
    ['door event with a lock state', '! DOOR front-left locked', 'ARGS', 0],
    ['OK with id 0', '0 OK', 'SYNTAX', 0],
    ['no status', '4', 'SYNTAX', 4],
    ['bad status', '4 MAYBE', 'SYNTAX', 4],
    ['ERR without code', '4 ERR', 'SYNTAX', 4],
    ['bad escape in data', '4 OK a=%Q1', 'SYNTAX', 4],
  ] as const)('rejects %s', (_name, body, code, id) => {
    const error = expectError(parseControllerLine(unframe(sealLine(body))));
    expect(error.code).toBe(code);
    expect(error.id).toBe(id);
  });

  it('reports the id a corrupted reply claims, so the driver can fail that request', () => {
    const error = expectError(parseControllerLine('12 OK*0000'));
    expect(error).toMatchObject({ code: 'CRC', id: 12 });
  });
});

describe('control requests', () => {
  it('accepts hand-typed lines without checksum, and formatted ones with it', () => {
    expect(expectValue(parseControlRequest('1 BUTTON long'))).toEqual({ id: 1, command: { verb: 'BUTTON', press: 'long' } });
    expect(expectValue(parseControlRequest(unframe(formatControlRequest(2, { verb: 'KEYCARD', cardId: 'card-7' }))))).toEqual({
      id: 2,
      command: { verb: 'KEYCARD', cardId: 'card-7' },
    });
    expect(expectError(parseControlRequest('1 KEYCARD bad%20card')).code).toBe('ARGS');
    expect(expectError(parseControlRequest('1 TRUNK open')).code).toBe('ARGS');
    expect(expectError(parseControlRequest('1 LOCK all')).code).toBe('UNKNOWN');
    expect(expectValue(parseControlRequest('3 DOOR rear-left open'))).toEqual({ id: 3, command: { verb: 'DOOR', door: 'rear-left', action: 'open' } });
    expect(expectValue(parseControlRequest(unframe(formatControlRequest(4, { verb: 'DOOR', door: 'front-right', action: 'close' }))))).toEqual({
      id: 4,
      command: { verb: 'DOOR', door: 'front-right', action: 'close' },
    });
    for (const bad of ['1 DOOR front-left', '1 DOOR front-left closed', '1 DOOR trunk open', '1 DOOR front-left open now']) expect(expectError(parseControlRequest(bad)).code, bad).toBe('ARGS');
  });
});

describe('line splitter', () => {
  const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

  it('yields lines, strips CR, skips empty lines', () => {
    const splitter = new LineSplitter();
    expect(splitter.push(bytes('1 PING*8C6F\r\n\n\r\n2 ST'))).toEqual([{ ok: true, line: '1 PING*8C6F' }]);
    expect(splitter.push(bytes('ATE\n'))).toEqual([{ ok: true, line: '2 STATE' }]);
    expect(splitter.pendingBytes).toBe(0);
  });

  it('accepts a line of exactly MAX_LINE_BYTES and reports a longer one once, then resyncs', () => {
    const splitter = new LineSplitter();
    const max = 'A'.repeat(MAX_LINE_BYTES);
    expect(splitter.push(bytes(`${max}\r\n`))).toEqual([{ ok: true, line: max }]);
    const out = splitter.push(bytes(`${max}B\n${'C'.repeat(5000)}\n1 PING\n`));
    expect(out.map((item) => (item.ok ? item.line : item.error.code))).toEqual(['TOOLONG', 'TOOLONG', '1 PING']);
    expect(splitter.pendingBytes).toBe(0);
  });

  it('reports bytes outside printable ASCII', () => {
    const splitter = new LineSplitter();
    const out = splitter.push(new Uint8Array([0x31, 0x20, 0x00, 0x0a, 0x31, 0xff, 0x0a]));
    expect(out.map((item) => (item.ok ? item.line : item.error.code))).toEqual(['BADCHAR', 'BADCHAR']);
  });

  it('gives the same lines however the stream is chunked', () => {
    const line = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 80 });
    fc.assert(
      fc.property(fc.array(line, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 10 }), (lines, cuts) => {
        const stream = bytes(lines.map((l) => `${l}\n`).join(''));
        const points = [...new Set(cuts.map((c) => (stream.length === 0 ? 0 : c % stream.length)))].sort((a, b) => a - b);
        const splitter = new LineSplitter();
        const seen: string[] = [];
        let from = 0;
        for (const to of [...points, stream.length]) {
          for (const item of splitter.push(stream.subarray(from, to))) seen.push(item.ok ? item.line : `!${item.error.code}`);
          from = to;
        }
        expect(seen).toEqual(lines);
      }),
    );
  });
});

describe('robustness: arbitrary input never throws', () => {
  const isTypedError = (error: WireError): boolean =>
    (WIRE_ERROR_CODES as readonly string[]).includes(error.code) && Number.isInteger(error.id) && error.id >= 0 && error.id <= MAX_REQUEST_ID && error.text.length > 0;

  it('for arbitrary bytes through the splitter and every parser', () => {
    const chunk = fc.uint8Array({ maxLength: 700 });
    const interesting = fc.constantFrom(...['1 PING*8C6F\n', '\n', '\r\n', '*', '%', ' ', '! ', '0 ERR ', '65535 OK '].map((s) => new TextEncoder().encode(s)));
    fc.assert(
      fc.property(fc.array(fc.oneof(chunk, interesting), { maxLength: 8 }), (chunks) => {
        const splitter = new LineSplitter();
        for (const c of chunks) {
          for (const item of splitter.push(c)) {
            if (!item.ok) {
              expect(isTypedError(item.error)).toBe(true);
              continue;
            }
            for (const result of [parseRequest(item.line), parseRequest(item.line, 'optional'), parseControllerLine(item.line), parseControlRequest(item.line)]) {
              if (!result.ok) expect(isTypedError(result.error)).toBe(true);
            }
          }
        }
        expect(splitter.pendingBytes).toBeLessThanOrEqual(MAX_LINE_BYTES + 1);
      }),
      { numRuns: 300 },
    );
  });

  it('for arbitrary strings handed straight to the parsers', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (line) => {
        for (const result of [parseRequest(line), parseRequest(line, 'optional'), parseControllerLine(line), parseControlRequest(line)]) {
          if (!result.ok) expect(isTypedError(result.error)).toBe(true);
        }
      }),
    );
  });

  it('formatters always produce lines their parsers accept', () => {
    const code = fc.constantFrom(...WIRE_ERROR_CODES);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_REQUEST_ID }), code, fc.string({ unit: 'binary', maxLength: 300 }), (id, errCode, text) => {
        const parsed = expectValue(parseControllerLine(unframe(formatErr(id, errCode, text))));
        expect(parsed).toMatchObject({ kind: 'err', id, code: errCode });
      }),
    );
    fc.assert(
      // at most 6 tokens of 6 code points (each at most 12 bytes encoded): always within MAX_LINE_BYTES
      fc.property(fc.integer({ min: 1, max: MAX_REQUEST_ID }), fc.array(fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }), { maxLength: 6 }), (id, data) => {
        expect(expectValue(parseControllerLine(unframe(formatOk(id, data))))).toEqual({ kind: 'ok', id, data });
      }),
    );
  });

  it('for lines that look almost right', () => {
    const piece = fc.constantFrom('1', '0', '65535', '99999', 'PING', 'LOCK', 'all', 'front-left', 'DISPLAY', 'SHOW', '%20', '%', '!', 'OK', 'ERR', 'BUSY', '=', ' ', '  ', '*', '*8C6F');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), fc.boolean(), (pieces, seal) => {
        const body = pieces.join(' ');
        const line = seal && !body.includes('*') ? unframe(sealLine(body)) : body;
        for (const result of [parseRequest(line), parseControllerLine(line), parseControlRequest(line)]) {
          if (!result.ok) expect(isTypedError(result.error)).toBe(true);
        }
      }),
    );
  });
});
