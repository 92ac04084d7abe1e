/**
 * Bounded, validated input (DESIGN invariant 4): arbitrary bytes — random,
 * header-shaped, mutated valid encodings, and random plaintexts inside
 * correctly sealed boxes — fed to every decoder and to every radio-facing
 * method of the car and phone state machines, in every state, only ever yield
 * typed results: a value, or a CarkeyError with a catalog code that is not
 * CK_INTERNAL (which would mean something threw inside). Never an exception.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SealedChannel } from '../../src/core/channel-keys.js';
import { decodeGrant, decodeKeyList, MAX_KEY_LIST_LENGTH } from '../../src/core/credentials.js';
import { Catalog, CarkeyError, type Result } from '../../src/core/errors.js';
import { decodeServiceData, encodeServiceData } from '../../src/core/identity.js';
import {
  classify,
  CLEAR_LENGTH,
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
  encodeCommandPlain,
  encodePairConfirmBody,
  encodePairResultPlain,
  encodeRequestBody,
  encodeResultPlain,
  MAX_MESSAGE,
  MessageType,
  REFUSE_BYTES,
} from '../../src/core/messages.js';
import { decodeAuditRead, decodePin, decodeStatus, decodeVersion, encodeAuditRead, encodeStatus } from '../../src/core/payloads.js';
import type { VehicleContext, VehicleEvent, VehicleSession } from '../../src/core/vehicle-session.js';
import {
  carBeforePairing,
  carBeforeUnlock,
  crypto,
  grantFor,
  isRefuseBytes,
  newCar,
  newPhone,
  newPhonePairing,
  openPairing,
  openUnlock,
  pairedWorld,
  party,
  phoneBeforeUnlock,
  propertyRuns,
  runPairing,
  runUnlock,
  vehicleContext,
  type PairingOptions,
  type UnlockOptions,
} from '../helpers/core-harness.js';

const world = pairedWorld();
const CODES = new Set(Object.keys(Catalog));

/** A failure must be a CarkeyError with a catalog code other than CK_INTERNAL. */
function typedError(error: unknown): void {
  if (!(error instanceof CarkeyError)) throw new Error(`not a CarkeyError: ${String(error)}`);
  if (!CODES.has(error.code)) throw new Error(`code outside the catalog: ${error.code}`);
  if (error.code === 'CK_INTERNAL') throw new Error(`internal error leaked: ${error.message}`);
}

function typed(result: Result<unknown>): void {
  if (!result.ok) typedError(result.error);
}

/** A car event is typed, and a refusal is the one generic REFUSE on the wire. */
function typedEvent(event: VehicleEvent): void {
  if (event.kind !== 'refuse') return;
  typedError(event.error);
  if (!isRefuseBytes(event.reply)) throw new Error('refusal is not the generic REFUSE');
}

// --- arbitraries -------------------------------------------------------------------------

const u8 = fc.integer({ min: 0, max: 0xff });
const ALL_TYPES = Object.values(MessageType);

/** Random bytes, header-shaped messages of exact and inexact lengths, and a few near the cap. */
const radioBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 200, size: 'max' }) },
  {
    weight: 4,
    arbitrary: fc.tuple(fc.oneof(fc.constantFrom(...ALL_TYPES), u8), fc.uint8Array({ maxLength: 200, size: 'max' })).map(([type, body]) => Uint8Array.of(1, type, ...body)),
  },
  {
    weight: 4,
    arbitrary: fc.constantFrom(...ALL_TYPES).chain((type) => {
      const fixed = CLEAR_LENGTH[type];
      const body = fixed !== undefined ? fc.uint8Array({ minLength: fixed - 2, maxLength: fixed - 2, size: 'max' }) : fc.uint8Array({ minLength: 20, maxLength: 200, size: 'max' });
      return body.map((rest) => Uint8Array.of(1, type, ...rest));
    }),
  },
  { weight: 1, arbitrary: fc.integer({ min: MAX_MESSAGE - 2, max: MAX_MESSAGE + 2 }).map((length) => Uint8Array.from({ length }, (_, i) => (i === 0 ? 1 : i === 1 ? MessageType.pairConfirm : i))) },
);

type Edit = { readonly kind: 'set'; readonly at: number; readonly value: number } | { readonly kind: 'cut'; readonly at: number } | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array };
const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: u8 }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8, size: 'max' }) }),
);

function applyEdits(input: Uint8Array, edits: readonly Edit[]): Uint8Array {
  let out = input;
  for (const e of edits) {
    const at = e.at % (out.length + 1);
    if (e.kind === 'set') out = Uint8Array.from(out, (byte, i) => (i === at ? e.value : byte));
    else if (e.kind === 'cut') out = out.slice(0, at);
    else out = Uint8Array.of(...out.subarray(0, at), ...e.bytes, ...out.subarray(at));
  }
  return out;
}

/** Valid encodings with a few random edits: reaches deep into each parser. */
function mutated(samples: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.constantFrom(...samples), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([sample, edits]) => applyEdits(sample, edits));
}

// --- recorded exchanges to sample valid encodings from --------------------------------------

const unlockOptions: UnlockOptions = { seedLabel: 'robust', followUp: 'lock' };
const unlock = runUnlock(world, unlockOptions);
const pairingOptions: PairingOptions = { seedLabel: 'robust-pair', phone: party('robust phone'), current: world.keyList };
const pairing = runPairing(world, pairingOptions);
const recordedMessages = [...Object.values(unlock.messages), ...Object.values(pairing.messages)].filter((m): m is Uint8Array => m !== undefined);
const grant = grantFor(world, party('friend')).bytes;

describe('decoders never throw', () => {
  const decoders: [string, (bytes: Uint8Array) => Result<unknown>, readonly Uint8Array[]][] = [
    ['classify', classify, recordedMessages],
    ['decodeHello', decodeHello, recordedMessages],
    ['decodeChallenge', decodeChallenge, recordedMessages],
    ['decodePairHello', decodePairHello, recordedMessages],
    ['decodePairChallenge', decodePairChallenge, recordedMessages],
    ['decodePairReveal', decodePairReveal, recordedMessages],
    ['decodeSealed', decodeSealed, recordedMessages],
    ['decodeRequestPlain', decodeRequestPlain, [Uint8Array.of(...encodeRequestBody({ identity: new Uint8Array(32), credentialKind: 1, credential: grant, command: 1, args: Uint8Array.of(1, 2) }), ...new Uint8Array(64))]],
    ['decodeCommandPlain', decodeCommandPlain, [encodeCommandPlain({ command: 3, args: Uint8Array.of(0x31, 0x32, 0x33, 0x34) })]],
    ['decodeResultPlain', decodeResultPlain, [encodeResultPlain({ requestSeq: 1, status: 0, category: 0, payload: Uint8Array.of(1, 2, 3) })]],
    ['decodePairConfirmPlain', decodePairConfirmPlain, [Uint8Array.of(...encodePairConfirmBody({ identity: new Uint8Array(32), name: 'ünïcode', keyList: world.keyList.bytes }), ...new Uint8Array(64))]],
    ['decodePairReadyPlain', decodePairReadyPlain, [Uint8Array.of(0, 3, 1, 2, 3)]],
    ['decodePairResultPlain', decodePairResultPlain, [encodePairResultPlain({ status: 0, advSecret: new Uint8Array(32), vehicleName: 'car' })]],
    ['decodeGrant', decodeGrant, [grant]],
    ['decodeKeyList', decodeKeyList, [world.keyList.bytes]],
    ['decodeStatus', decodeStatus, [encodeStatus({ locked: ['front-left'], doorCount: 4, drive: 'off', trunk: 'closed', keyListVersion: 1, carTime: 5, startNeedsPin: true })]],
    ['decodePin', decodePin, [Uint8Array.of(0x31, 0x32, 0x33, 0x34)]],
    ['decodeAuditRead', decodeAuditRead, [encodeAuditRead({ fromSeq: 3, limit: 10 })]],
    ['decodeVersion', decodeVersion, [Uint8Array.of(0, 0, 0, 1)]],
  ];

  it.each(decoders)('%s: random, header-shaped and mutated inputs', (_name, decode, samples) => {
    const input = fc.oneof(radioBytes, mutated(samples), fc.uint8Array({ maxLength: MAX_KEY_LIST_LENGTH + 10, size: 'max' }));
    fc.assert(
      fc.property(input, (bytes) => {
        typed(decode(bytes));
      }),
      propertyRuns(1000),
    );
  });

  it('decodeServiceData returns a value or undefined', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 20, size: 'max' }), mutated([encodeServiceData(1, new Uint8Array(8))])), (bytes) => {
        const data = decodeServiceData(bytes);
        expect(data === undefined || data.advId.length === 8).toBe(true);
      }),
      propertyRuns(500),
    );
  });
});

// --- the car ------------------------------------------------------------------------------------

describe('VehicleSession.handle never throws, in every state', () => {
  if (!unlock.ok || !pairing.ok) throw new Error('baseline exchanges failed');
  const unlockContext = vehicleContext(world);
  const pairingContext = vehicleContext(world, { pairingOpen: true, pairReady: { status: 'ready', epoch: 0, requiredVersion: 2, keyList: world.keyList.bytes }, keyListVersion: 1 });

  const states: [string, () => { car: VehicleSession; context: VehicleContext }][] = [
    ['idle, pairing closed', () => ({ car: newCar(world, 'fuzz-idle'), context: unlockContext })],
    ['idle, pairing open', () => ({ car: newCar(world, 'fuzz-idle-open'), context: pairingContext })],
    ['challenged', () => ({ car: carBeforeUnlock(world, unlockOptions, unlock.messages, 'REQUEST'), context: unlockContext })],
    ['open', () => ({ car: carBeforeUnlock(world, unlockOptions, unlock.messages, 'COMMAND'), context: unlockContext })],
    [
      'open, request pending',
      () => {
        const car = carBeforeUnlock(world, unlockOptions, unlock.messages, 'COMMAND');
        car.handle(unlock.messages.COMMAND ?? new Uint8Array(0), unlockContext);
        return { car, context: unlockContext };
      },
    ],
    ['pair-challenged', () => ({ car: carBeforePairing(world, pairingOptions, pairing.messages, 'PAIR_REVEAL'), context: pairingContext })],
    ['pair-revealed', () => ({ car: carBeforePairing(world, pairingOptions, pairing.messages, 'PAIR_CONFIRM'), context: pairingContext })],
    [
      'pair-confirming',
      () => {
        const car = carBeforePairing(world, pairingOptions, pairing.messages, 'PAIR_CONFIRM');
        car.handle(pairing.messages.PAIR_CONFIRM ?? new Uint8Array(0), pairingContext);
        return { car, context: pairingContext };
      },
    ],
    [
      'closed',
      () => {
        const car = newCar(world, 'fuzz-closed');
        car.handle(new Uint8Array(1), unlockContext);
        return { car, context: unlockContext };
      },
    ],
  ];

  it.each(states)('%s: arbitrary and recorded-then-mutated messages', (_name, make) => {
    expect(make().car.closed).toBe(_name === 'closed');
    fc.assert(
      fc.property(fc.oneof(radioBytes, mutated(recordedMessages)), fc.boolean(), (bytes, twice) => {
        const { car, context } = make();
        typedEvent(car.handle(bytes, context));
        if (twice) typedEvent(car.handle(bytes, context));
      }),
      propertyRuns(400),
    );
  });

  it('random plaintexts inside a correctly sealed REQUEST', () => {
    const plaintext = fc.oneof(
      fc.uint8Array({ maxLength: 300, size: 'max' }),
      fc
        .record({ identity: fc.oneof(fc.constant(world.owner.publicKey), fc.uint8Array({ minLength: 32, maxLength: 32, size: 'max' })), credentialKind: fc.oneof(fc.constantFrom(0, 1), u8), credential: fc.oneof(fc.constant(new Uint8Array(0)), fc.constant(grant), fc.uint8Array({ maxLength: 200, size: 'max' })), command: u8, args: fc.uint8Array({ maxLength: 40, size: 'max' }), signature: fc.uint8Array({ minLength: 64, maxLength: 64, size: 'max' }) })
        .map((m) => Uint8Array.of(...encodeRequestBody(m), ...m.signature)),
    );
    fc.assert(
      fc.property(plaintext, (plain) => {
        const opened = openUnlock(world, 'fuzz-sealed-request');
        typedEvent(opened.car.handle(opened.phoneSide.seal(MessageType.request, plain), opened.context));
      }),
      propertyRuns(200),
    );
  });

  it('random plaintexts inside a correctly sealed COMMAND', () => {
    const plaintext = fc.oneof(fc.uint8Array({ maxLength: 80, size: 'max' }), fc.record({ command: u8, args: fc.uint8Array({ maxLength: 20, size: 'max' }) }).map(encodeCommandPlain));
    fc.assert(
      fc.property(plaintext, (plain) => {
        const opened = openUnlock(world, 'fuzz-sealed-command');
        const first = opened.car.handle(opened.phone.request({ kind: 'owner' }, 'unlock'), opened.context);
        if (first.kind !== 'request') throw new Error('setup failed');
        opened.car.respond(first.seq, { status: 'ok' });
        opened.phoneSide.seal(MessageType.request, new Uint8Array(0)); // seq 0 went out through the real phone
        const event = opened.car.handle(opened.phoneSide.seal(MessageType.command, plain), opened.context);
        typedEvent(event);
        // A well-formed COMMAND plaintext must get through; anything else is refused.
        expect(event.kind).toBe(decodeCommandPlain(plain).ok ? 'request' : 'refuse');
      }),
      propertyRuns(200),
    );
  });

  it('random plaintexts inside a correctly sealed PAIR_CONFIRM', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300, size: 'max' }), (plain) => {
        const opened = openPairing(world, 'fuzz-sealed-confirm');
        typedEvent(opened.car.handle(opened.phoneSide.seal(MessageType.pairConfirm, plain), opened.context));
      }),
      propertyRuns(150),
    );
  });
});

// --- the phone ------------------------------------------------------------------------------------

describe('PhoneSession and PhonePairing never throw on radio input', () => {
  if (!unlock.ok || !pairing.ok) throw new Error('baseline exchanges failed');
  const input = fc.oneof(radioBytes, mutated(recordedMessages), fc.constant(REFUSE_BYTES));

  it('PhoneSession.onChallenge / onResult in every state', () => {
    const makers = [
      () => newPhone(world, world.owner, 'fuzz-fresh'),
      () => phoneBeforeUnlock(world, unlockOptions, unlock.messages, 'CHALLENGE'),
      () => phoneBeforeUnlock(world, unlockOptions, unlock.messages, 'RESULT'),
      () => phoneBeforeUnlock(world, unlockOptions, unlock.messages, 'COMMAND_RESULT'),
    ];
    fc.assert(
      fc.property(fc.constantFrom(...makers), input, input, (make, a, b) => {
        const phone = make();
        typed(phone.onChallenge(a));
        typed(phone.onResult(b));
        typed(phone.onResult(a));
      }),
      propertyRuns(600),
    );
  });

  it('PhoneSession.onResult with random plaintexts in a correctly sealed RESULT', () => {
    const plaintext = fc.oneof(
      fc.uint8Array({ maxLength: 100, size: 'max' }),
      fc.record({ requestSeq: fc.constantFrom(0, 1, 0xffffffff), status: fc.oneof(fc.constantFrom(0, 1, 2), u8), category: u8, payload: fc.uint8Array({ maxLength: 40, size: 'max' }) }).map(encodeResultPlain),
    );
    fc.assert(
      fc.property(plaintext, (plain) => {
        const opened = openUnlock(world, 'fuzz-result');
        opened.phone.request({ kind: 'owner' }, 'status');
        typed(opened.phone.onResult(opened.carSide.seal(MessageType.result, plain)));
      }),
      propertyRuns(200),
    );
  });

  it('PhonePairing.onChallenge / onReady / onResult in every state', () => {
    const makers = [
      () => newPhonePairing(world.owner, 'fuzz-pair-fresh'),
      () => {
        const p = newPhonePairing(world.owner, 'fuzz-pair-started');
        p.start();
        return p;
      },
      () => openPairing(world, 'fuzz-pair-revealed', world.owner, { readyOpened: false }).pairing,
      () => openPairing(world, 'fuzz-pair-ready').pairing,
    ];
    fc.assert(
      fc.property(fc.constantFrom(...makers), input, input, (make, a, b) => {
        const p = make();
        typed(p.onChallenge(a));
        typed(p.onReady(b));
        typed(p.onResult(a));
        typed(p.reveal());
      }),
      propertyRuns(400),
    );
  });

  it('PhonePairing.onReady / onResult with random plaintexts in correctly sealed boxes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200, size: 'max' }),
        fc.oneof(fc.uint8Array({ maxLength: 80, size: 'max' }), fc.record({ status: u8, advSecret: fc.uint8Array({ minLength: 32, maxLength: 32, size: 'max' }), vehicleName: fc.string({ maxLength: 10 }) }).map(encodePairResultPlain)),
        (readyPlain, resultPlain) => {
          const opened = openPairing(world, 'fuzz-pair-sealed', world.owner, { readyOpened: false });
          const car = new SealedChannel(crypto, 'car', opened.keys);
          typed(opened.pairing.onReady(car.seal(MessageType.pairReady, readyPlain)));
          typed(opened.pairing.onResult(car.seal(MessageType.pairResult, resultPlain)));
        },
      ),
      propertyRuns(150),
    );
  });

  it('PhonePairing.confirm takes any key list up to the cap and any name up to 32 bytes', () => {
    const opened = openPairing(world, 'fuzz-confirm-local');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: MAX_KEY_LIST_LENGTH, size: 'max' }), fc.string({ unit: 'binary', maxLength: 8 }), (list, name) => {
        expect(opened.pairing.confirm(list, name).length).toBeGreaterThan(22);
      }),
      propertyRuns(10),
    );
  });
});
