/**
 * Wire formats: every message type and every sealed plaintext round-trips for
 * random field values; clear messages have exactly their CLEAR_LENGTH;
 * `classify` follows its rules for every (version, type, length); encoders
 * refuse badly sized fields; the sealed channel binds header, direction and
 * sequence; command payloads round-trip.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SealedChannel, sealNonce } from '../../src/core/channel-keys.js';
import { isCarkeyError, type ErrorCode } from '../../src/core/errors.js';
import { MAX_KEY_LIST_LENGTH } from '../../src/core/credentials.js';
import {
  CLEAR_LENGTH,
  MAX_ARGS,
  MAX_CREDENTIAL,
  MAX_MESSAGE,
  MAX_NAME_BYTES,
  MessageType,
  PROTOCOL_VERSION,
  REFUSE_BYTES,
  SEALED_TYPES,
  classify,
  decodeChallenge,
  decodeCommandPlain,
  decodeHello,
  decodePairChallenge,
  decodePairConfirmPlain,
  decodePairHello,
  decodePairReadyPlain,
  decodePairResultPlain,
  decodePairReveal,
  decodeRequestPlain,
  decodeResultPlain,
  decodeSealed,
  encodeChallenge,
  encodeCommandPlain,
  encodeHello,
  encodePairChallenge,
  encodePairConfirmBody,
  encodePairHello,
  encodePairReadyPlain,
  encodePairResultPlain,
  encodePairReveal,
  encodeRequestBody,
  encodeResultPlain,
  encodeSealed,
  sealedHeader,
} from '../../src/core/messages.js';
import {
  decodeAuditRead,
  decodePin,
  decodeStatus,
  decodeVersion,
  DOORS,
  encodeAuditRead,
  encodePin,
  encodeStatus,
  encodeVersion,
  MAX_AUDIT_PAGE,
} from '../../src/core/payloads.js';
import { concatBytes } from '../../src/core/bytes.js';
import { crypto, propertyRuns } from '../helpers/core-harness.js';

const bytes = (length: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: length, maxLength: length, size: 'max' });
const upTo = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max, size: 'max' });
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const time = fc.maxSafeNat();
/** Any Unicode text (no lone surrogates) whose UTF-8 fits a name field. */
const name = fc.string({ unit: 'binary', maxLength: MAX_NAME_BYTES }).filter((text) => new TextEncoder().encode(text).length <= MAX_NAME_BYTES);
const RUNS = propertyRuns(200);

function ok<T>(result: { ok: true; value: T } | { ok: false; error: unknown }): T {
  if (!result.ok) throw result.error;
  return result.value;
}

function throwsCode(run: () => unknown, code: ErrorCode): void {
  expect(run).toThrow();
  try {
    run();
  } catch (error) {
    expect(isCarkeyError(error, code), String(error)).toBe(true);
  }
}

describe('cleartext messages round-trip with exact lengths', () => {
  it('HELLO', () => {
    fc.assert(
      fc.property(fc.record({ ephemeral: bytes(32), nonce: bytes(16) }), (m) => {
        const encoded = encodeHello(m);
        expect(encoded.length).toBe(CLEAR_LENGTH[MessageType.hello]);
        expect(ok(classify(encoded))).toBe(MessageType.hello);
        expect(ok(decodeHello(encoded))).toEqual(m);
      }),
      RUNS,
    );
  });

  it('CHALLENGE', () => {
    const challenge = fc.record({ ephemeral: bytes(32), challenge: bytes(16), carTime: time, ttlMs: u16, keyListVersion: u32, signature: bytes(64) });
    fc.assert(
      fc.property(challenge, (m) => {
        const encoded = encodeChallenge(m);
        expect(encoded.length).toBe(CLEAR_LENGTH[MessageType.challenge]);
        expect(ok(classify(encoded))).toBe(MessageType.challenge);
        expect(ok(decodeChallenge(encoded))).toEqual(m);
      }),
      RUNS,
    );
  });

  it('PAIR_HELLO, PAIR_CHALLENGE, PAIR_REVEAL', () => {
    fc.assert(
      fc.property(fc.record({ ephemeral: bytes(32), commitment: bytes(32) }), fc.record({ ephemeral: bytes(32), nonce: bytes(16), carIdentity: bytes(32), signature: bytes(64) }), bytes(16), (hello, challenge, nonce) => {
        const encodedHello = encodePairHello(hello);
        const encodedChallenge = encodePairChallenge(challenge);
        const encodedReveal = encodePairReveal(nonce);
        expect([encodedHello.length, encodedChallenge.length, encodedReveal.length]).toEqual([
          CLEAR_LENGTH[MessageType.pairHello],
          CLEAR_LENGTH[MessageType.pairChallenge],
          CLEAR_LENGTH[MessageType.pairReveal],
        ]);
        expect([ok(classify(encodedHello)), ok(classify(encodedChallenge)), ok(classify(encodedReveal))]).toEqual([MessageType.pairHello, MessageType.pairChallenge, MessageType.pairReveal]);
        expect(ok(decodePairHello(encodedHello))).toEqual(hello);
        expect(ok(decodePairChallenge(encodedChallenge))).toEqual(challenge);
        expect(ok(decodePairReveal(encodedReveal))).toEqual(nonce);
      }),
      RUNS,
    );
  });

  it('REFUSE is the two header bytes and classifies as refuse', () => {
    expect([...REFUSE_BYTES]).toEqual([PROTOCOL_VERSION, MessageType.refuse]);
    expect(ok(classify(REFUSE_BYTES))).toBe(MessageType.refuse);
  });

  it('each decoder refuses another message type with CK_CODEC_BAD_TYPE', () => {
    const hello = encodeHello({ ephemeral: new Uint8Array(32), nonce: new Uint8Array(16) });
    const asType = (type: number): Uint8Array => Uint8Array.from(hello, (byte, i) => (i === 1 ? type : byte));
    const asChallenge = decodeHello(asType(MessageType.challenge));
    expect(!asChallenge.ok && asChallenge.error.code).toBe('CK_CODEC_BAD_TYPE');
    const wrong = decodeChallenge(concatBytes(hello, new Uint8Array(78)));
    expect(!wrong.ok && wrong.error.code).toBe('CK_CODEC_BAD_TYPE');
    const badVersion = decodeHello(Uint8Array.from(hello, (byte, i) => (i === 0 ? 2 : byte)));
    expect(!badVersion.ok && badVersion.error.code).toBe('CK_CODEC_BAD_VERSION');
  });
});

describe('sealed envelope', () => {
  const sealedType = fc.constantFrom(...SEALED_TYPES);

  it('round-trips type, seq and box; the header is the sealed header', () => {
    fc.assert(
      fc.property(sealedType, u32, fc.uint8Array({ minLength: 16, maxLength: 300, size: 'max' }), (type, seq, box) => {
        const encoded = encodeSealed({ type, seq, box });
        expect(ok(classify(encoded))).toBe(type);
        expect(ok(decodeSealed(encoded))).toEqual({ type, seq, box });
        expect(encoded.subarray(0, 6)).toEqual(sealedHeader(type, seq));
      }),
      RUNS,
    );
  });

  it('refuses a box shorter than the tag, a cleartext type and another version', () => {
    const short = decodeSealed(encodeSealed({ type: MessageType.request, seq: 0, box: new Uint8Array(15) }));
    expect(!short.ok && short.error.code).toBe('CK_CODEC_TRUNCATED');
    const clear = decodeSealed(concatBytes(Uint8Array.of(PROTOCOL_VERSION, MessageType.hello), new Uint8Array(30)));
    expect(!clear.ok && clear.error.code).toBe('CK_CODEC_BAD_TYPE');
    const version = decodeSealed(concatBytes(Uint8Array.of(2, MessageType.request), new Uint8Array(30)));
    expect(!version.ok && version.error.code).toBe('CK_CODEC_BAD_VERSION');
  });

  it('the nonce is header ‖ direction ‖ 17 zero bytes', () => {
    const nonce = sealNonce(MessageType.result, 0x01020304, 2);
    expect([...nonce]).toEqual([1, MessageType.result, 1, 2, 3, 4, 2, ...new Array<number>(17).fill(0)]);
  });
});

describe('sealed channel', () => {
  const keys = { phoneToCar: new Uint8Array(32).fill(1), carToPhone: new Uint8Array(32).fill(2) };

  it('delivers in order in each direction and binds type, seq and direction', () => {
    const phone = new SealedChannel(crypto, 'phone', keys);
    const car = new SealedChannel(crypto, 'car', keys);
    const first = phone.seal(MessageType.request, Uint8Array.of(1));
    const second = phone.seal(MessageType.command, Uint8Array.of(2));
    // Out of order: the second message first.
    expect(!car.open(second, [MessageType.command]).ok).toBe(true);
    expect(ok(car.open(first, [MessageType.request]))).toEqual({ type: MessageType.request, seq: 0, plaintext: Uint8Array.of(1) });
    // Wrong allowed type.
    const unexpected = car.open(second, [MessageType.request]);
    expect(!unexpected.ok && unexpected.error.code).toBe('CK_PROTO_UNEXPECTED_MESSAGE');
    expect(ok(car.open(second, [MessageType.command])).seq).toBe(1);
    expect(car.expectedReceiveSeq).toBe(2);
    // A message cannot be reflected back to its sender.
    const reply = car.seal(MessageType.result, Uint8Array.of(3));
    const reflected = car.open(reply, [MessageType.result]);
    expect(!reflected.ok).toBe(true);
    expect(ok(phone.open(reply, [MessageType.result])).plaintext).toEqual(Uint8Array.of(3));
  });

  it('a failed open does not advance the receive sequence', () => {
    const phone = new SealedChannel(crypto, 'phone', keys);
    const car = new SealedChannel(crypto, 'car', keys);
    const message = phone.seal(MessageType.request, Uint8Array.of(9));
    const tampered = Uint8Array.from(message, (byte, i) => (i === message.length - 1 ? byte ^ 1 : byte));
    const failed = car.open(tampered, [MessageType.request]);
    expect(!failed.ok && failed.error.code).toBe('CK_CRYPTO_DECRYPT_FAILED');
    expect(car.expectedReceiveSeq).toBe(0);
    expect(ok(car.open(message, [MessageType.request])).plaintext).toEqual(Uint8Array.of(9));
  });
});

describe('sealed plaintexts round-trip', () => {
  it('REQUEST (body ‖ signature)', () => {
    const body = fc.record({ identity: bytes(32), credentialKind: u8, credential: upTo(MAX_CREDENTIAL), command: u8, args: upTo(600) });
    fc.assert(
      fc.property(body, bytes(64), (m, signature) => {
        expect(ok(decodeRequestPlain(concatBytes(encodeRequestBody(m), signature)))).toEqual({ ...m, signature });
      }),
      RUNS,
    );
  });

  it('COMMAND, RESULT', () => {
    fc.assert(
      fc.property(fc.record({ command: u8, args: upTo(600) }), fc.record({ requestSeq: u32, status: u8, category: u8, payload: upTo(600) }), (command, result) => {
        expect(ok(decodeCommandPlain(encodeCommandPlain(command)))).toEqual(command);
        expect(ok(decodeResultPlain(encodeResultPlain(result)))).toEqual(result);
      }),
      RUNS,
    );
  });

  it('PAIR_CONFIRM (body ‖ signature), PAIR_READY, PAIR_RESULT, with any Unicode name', () => {
    fc.assert(
      fc.property(fc.record({ identity: bytes(32), name, keyList: upTo(700) }), bytes(64), upTo(700), fc.record({ status: u8, advSecret: bytes(32), vehicleName: name }), (confirm, signature, list, result) => {
        expect(ok(decodePairConfirmPlain(concatBytes(encodePairConfirmBody(confirm), signature)))).toEqual({ ...confirm, signature });
        const ready = { status: 'ready' as const, epoch: signature.length * 1000, requiredVersion: list.length + 1, keyList: list };
        expect(ok(decodePairReadyPlain(encodePairReadyPlain(ready)))).toEqual(ready);
        expect(ok(decodePairResultPlain(encodePairResultPlain(result)))).toEqual(result);
      }),
      RUNS,
    );
  });

  it('the largest fields fit: MAX_ARGS args and a maximal key list', () => {
    const args = new Uint8Array(MAX_ARGS).fill(1);
    expect(ok(decodeCommandPlain(encodeCommandPlain({ command: 7, args }))).args.length).toBe(MAX_ARGS);
    const list = new Uint8Array(MAX_KEY_LIST_LENGTH).fill(2);
    expect(ok(decodePairReadyPlain(encodePairReadyPlain({ status: 'busy', epoch: 0xffffffff, requiredVersion: 0xffffffff, keyList: list }))).keyList.length).toBe(MAX_KEY_LIST_LENGTH);
    expect(decodePairReadyPlain(Uint8Array.of(9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0)).ok).toBe(false);
  });

  it('names must be valid UTF-8 and at most 32 bytes', () => {
    const body = encodePairConfirmBody({ identity: new Uint8Array(32), name: 'ab', keyList: new Uint8Array(0) });
    const invalid = Uint8Array.from(body, (byte, i) => (i === 34 ? 0xff : byte));
    const decoded = decodePairConfirmPlain(concatBytes(invalid, new Uint8Array(64)));
    expect(!decoded.ok && decoded.error.code).toBe('CK_CODEC_BAD_VALUE');
    throwsCode(() => encodePairConfirmBody({ identity: new Uint8Array(32), name: 'x'.repeat(33), keyList: new Uint8Array(0) }), 'CK_CODEC_TOO_LARGE');
    throwsCode(() => encodePairResultPlain({ status: 0, advSecret: new Uint8Array(32), vehicleName: 'é'.repeat(17) }), 'CK_CODEC_TOO_LARGE');
  });
});

describe('encoders refuse badly sized fields', () => {
  it('fixed fields with the wrong length, oversized variable fields', () => {
    throwsCode(() => encodeHello({ ephemeral: new Uint8Array(31), nonce: new Uint8Array(16) }), 'CK_CODEC_BAD_VALUE');
    throwsCode(() => encodeHello({ ephemeral: new Uint8Array(32), nonce: new Uint8Array(17) }), 'CK_CODEC_BAD_VALUE');
    throwsCode(
      () => encodeChallenge({ ephemeral: new Uint8Array(32), challenge: new Uint8Array(16), carTime: 0, ttlMs: 0x10000, keyListVersion: 0, signature: new Uint8Array(64) }),
      'CK_CODEC_BAD_VALUE',
    );
    throwsCode(() => encodePairReveal(new Uint8Array(15)), 'CK_CODEC_BAD_VALUE');
    throwsCode(() => encodeRequestBody({ identity: new Uint8Array(32), credentialKind: 0, credential: new Uint8Array(MAX_CREDENTIAL + 1), command: 1, args: new Uint8Array(0) }), 'CK_CODEC_TOO_LARGE');
    throwsCode(() => encodeCommandPlain({ command: 1, args: new Uint8Array(MAX_ARGS + 1) }), 'CK_CODEC_TOO_LARGE');
    throwsCode(() => encodePairReadyPlain({ status: 'ready', epoch: 0, requiredVersion: 1, keyList: new Uint8Array(MAX_KEY_LIST_LENGTH + 1) }), 'CK_CODEC_TOO_LARGE');
  });
});

describe('classify', () => {
  /** The rules, written independently of the implementation. */
  function model(input: Uint8Array): number | ErrorCode {
    if (input.length > MAX_MESSAGE) return 'CK_CODEC_TOO_LARGE';
    if (input.length < 2) return 'CK_CODEC_TRUNCATED';
    if (input[0] !== 1) return 'CK_CODEC_BAD_VERSION';
    const type = input[1] ?? -1;
    const fixed: Record<number, number> = { 0x01: 50, 0x02: 128, 0x0f: 2, 0x10: 66, 0x11: 146, 0x12: 18 };
    const length = fixed[type];
    if (length !== undefined) return input.length === length ? type : 'CK_CODEC_BAD_VALUE';
    if ([0x03, 0x04, 0x05, 0x13, 0x14, 0x15].includes(type)) return input.length >= 22 ? type : 'CK_CODEC_TRUNCATED';
    return 'CK_CODEC_BAD_TYPE';
  }

  const interestingLength = fc.oneof(fc.constantFrom(0, 1, 2, 17, 18, 21, 22, 49, 50, 51, 65, 66, 67, 127, 128, 129, 145, 146, 147, 8192, 8193), fc.integer({ min: 0, max: 9000 }));
  const message = fc.tuple(fc.oneof(fc.constant(1), u8), fc.oneof(fc.constantFrom(...Object.values(MessageType)), u8), interestingLength).map(([version, type, length]) => {
    const out = new Uint8Array(length);
    if (length > 0) out[0] = version;
    if (length > 1) out[1] = type;
    return out;
  });

  it('agrees with the rules for any version, type and length', () => {
    fc.assert(
      fc.property(message, (input) => {
        const result = classify(input);
        expect(result.ok ? result.value : result.error.code).toBe(model(input));
      }),
      propertyRuns(3000),
    );
  });

  it('table of the rules', () => {
    const make = (length: number, version: number, type: number): Uint8Array => Uint8Array.from({ length }, (_, i) => (i === 0 ? version : i === 1 ? type : 0));
    const rows: [Uint8Array, number | ErrorCode][] = [
      [new Uint8Array(MAX_MESSAGE + 1), 'CK_CODEC_TOO_LARGE'],
      [new Uint8Array(0), 'CK_CODEC_TRUNCATED'],
      [Uint8Array.of(1), 'CK_CODEC_TRUNCATED'],
      [make(50, 2, MessageType.hello), 'CK_CODEC_BAD_VERSION'],
      [make(50, 1, MessageType.hello), MessageType.hello],
      [make(51, 1, MessageType.hello), 'CK_CODEC_BAD_VALUE'],
      [make(3, 1, MessageType.refuse), 'CK_CODEC_BAD_VALUE'],
      [make(21, 1, MessageType.request), 'CK_CODEC_TRUNCATED'],
      [make(22, 1, MessageType.request), MessageType.request],
      [make(MAX_MESSAGE, 1, MessageType.pairConfirm), MessageType.pairConfirm],
      [make(30, 1, 0x06), 'CK_CODEC_BAD_TYPE'],
      [make(30, 1, 0xff), 'CK_CODEC_BAD_TYPE'],
    ];
    for (const [input, expected] of rows) {
      const result = classify(input);
      expect(result.ok ? result.value : result.error.code).toBe(expected);
    }
  });
});

describe('command payloads', () => {
  it('status round-trips (locked doors among the first doorCount)', () => {
    const status = fc.integer({ min: 0, max: DOORS.length }).chain((doorCount) =>
      fc.record({
        locked: fc.subarray(DOORS.slice(0, doorCount)),
        doorCount: fc.constant(doorCount),
        drive: fc.constantFrom('off' as const, 'ready' as const),
        trunk: fc.constantFrom('open' as const, 'closed' as const),
        keyListVersion: u32,
        carTime: time,
        startNeedsPin: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(status, (s) => {
        expect(ok(decodeStatus(encodeStatus(s)))).toEqual(s);
      }),
      RUNS,
    );
    const bad = decodeStatus(Uint8Array.of(0, 5, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    expect(!bad.ok && bad.error.code).toBe('CK_CODEC_BAD_VALUE');
    const unknownFlag = decodeStatus(Uint8Array.of(0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2));
    expect(!unknownFlag.ok && unknownFlag.error.code).toBe('CK_CODEC_BAD_VALUE');
  });

  it('PIN: 4 to 8 ASCII digits, empty means none', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{4,8}$/), (pin) => {
        expect(ok(decodePin(encodePin(pin)))).toBe(pin);
      }),
      RUNS,
    );
    expect(ok(decodePin(new Uint8Array(0)))).toBeUndefined();
    for (const pin of ['123', '123456789', '12a4', '１２３４']) {
      throwsCode(() => encodePin(pin), 'CK_CODEC_BAD_VALUE');
      const decoded = decodePin(new TextEncoder().encode(pin));
      expect(!decoded.ok && decoded.error.code).toBe('CK_CODEC_BAD_VALUE');
    }
  });

  it('audit read arguments round-trip with the page size capped; versions round-trip', () => {
    fc.assert(
      fc.property(u32, u16, u32, (fromSeq, limit, version) => {
        expect(ok(decodeAuditRead(encodeAuditRead({ fromSeq, limit })))).toEqual({ fromSeq, limit: Math.min(limit, MAX_AUDIT_PAGE) });
        expect(ok(decodeVersion(encodeVersion(version)))).toBe(version);
      }),
      RUNS,
    );
  });
});
