// Table-driven and property tests of the pure body-controller model.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyAction, applyCommand, DISPLAY_COLUMNS, DISPLAY_ROWS, fittedDoors, initialState, stateReport } from '../../firmware-sim/hardware/model.js';
import type { BodyState, CommandOutcome, DoorCount, PhysicalAction } from '../../firmware-sim/hardware/model.js';
import { formatOk, MAX_LINE_BYTES, MAX_REQUEST_ID, WIRE_DOORS } from '../../src/vehicle/body-protocol.js';
import type { HostCommand } from '../../src/vehicle/body-protocol.js';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Apply commands in order on a frozen state (so any mutation of an input throws). */
function run(doorCount: DoorCount, commands: readonly HostCommand[]): { state: BodyState; outcomes: CommandOutcome[] } {
  let state = deepFreeze(initialState(doorCount));
  const outcomes: CommandOutcome[] = [];
  for (const command of commands) {
    const outcome = applyCommand(state, deepFreeze(command));
    outcomes.push(outcome);
    state = deepFreeze(outcome.state);
  }
  return { state, outcomes };
}

describe('power-on state', () => {
  it.each([
    [4, ['front-left', 'front-right', 'rear-left', 'rear-right']],
    [2, ['front-left', 'front-right']],
  ] as const)('%i doors: all fitted doors locked, drive off, trunk closed, display blank', (doorCount, doors) => {
    const state = initialState(doorCount);
    expect(fittedDoors(doorCount)).toEqual(doors);
    expect(Object.keys(state.locks)).toEqual(doors);
    expect(Object.values(state.locks).every((l) => l === 'locked')).toBe(true);
    expect(state).toMatchObject({ drive: 'off', trunk: 'closed', display: ['', ''], beeps: 0, flashes: 0 });
  });
});

describe('commands', () => {
  interface Case {
    readonly name: string;
    readonly doors: DoorCount;
    readonly commands: readonly HostCommand[];
    readonly expect: Partial<BodyState>;
    /** Expected reply of the last command: 'OK' or an error code. */
    readonly reply: string;
    readonly events?: readonly unknown[];
  }
  const cases: readonly Case[] = [
    { name: 'unlock all', doors: 4, commands: [{ verb: 'UNLOCK', doors: 'all' }], expect: { locks: { 'front-left': 'unlocked', 'front-right': 'unlocked', 'rear-left': 'unlocked', 'rear-right': 'unlocked' } }, reply: 'OK' },
    { name: 'unlock one door', doors: 4, commands: [{ verb: 'UNLOCK', doors: ['front-left'] }], expect: { locks: { 'front-left': 'unlocked', 'front-right': 'locked', 'rear-left': 'locked', 'rear-right': 'locked' } }, reply: 'OK' },
    { name: 'unlock then lock two', doors: 4, commands: [{ verb: 'UNLOCK', doors: 'all' }, { verb: 'LOCK', doors: ['rear-left', 'front-right'] }], expect: { locks: { 'front-left': 'unlocked', 'front-right': 'locked', 'rear-left': 'locked', 'rear-right': 'unlocked' } }, reply: 'OK' },
    { name: 'unlock all on a two-door car', doors: 2, commands: [{ verb: 'UNLOCK', doors: 'all' }], expect: { locks: { 'front-left': 'unlocked', 'front-right': 'unlocked' } }, reply: 'OK' },
    { name: 'rear door on a two-door car is refused, nothing changes', doors: 2, commands: [{ verb: 'UNLOCK', doors: ['front-left', 'rear-left'] }], expect: { locks: { 'front-left': 'locked', 'front-right': 'locked' } }, reply: 'NODOOR' },
    { name: 'drive on', doors: 4, commands: [{ verb: 'DRIVE', on: true }], expect: { drive: 'ready' }, reply: 'OK' },
    { name: 'drive on then off', doors: 4, commands: [{ verb: 'DRIVE', on: true }, { verb: 'DRIVE', on: false }], expect: { drive: 'off' }, reply: 'OK' },
    { name: 'trunk open releases the latch', doors: 4, commands: [{ verb: 'TRUNK' }], expect: { trunk: 'open' }, reply: 'OK', events: [{ event: 'TRUNK', state: 'open' }] },
    { name: 'trunk open twice: one event', doors: 4, commands: [{ verb: 'TRUNK' }, { verb: 'TRUNK' }], expect: { trunk: 'open' }, reply: 'OK', events: [] },
    { name: 'display one row', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['123456'] }], expect: { display: ['123456', ''] }, reply: 'OK' },
    { name: 'display two rows, trailing spaces trimmed', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['  123 456   ', 'Pair phone?'] }], expect: { display: ['  123 456', 'Pair phone?'] }, reply: 'OK' },
    { name: 'display row of exactly 20', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['x'.repeat(DISPLAY_COLUMNS)] }], expect: { display: ['x'.repeat(DISPLAY_COLUMNS), ''] }, reply: 'OK' },
    { name: 'display row of 21 is refused', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['ok'] }, { verb: 'DISPLAY', op: 'show', rows: ['x'.repeat(DISPLAY_COLUMNS + 1)] }], expect: { display: ['ok', ''] }, reply: 'RANGE' },
    { name: 'three rows are refused', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['a', 'b', 'c'] }], expect: { display: ['', ''] }, reply: 'RANGE' },
    { name: 'non-ASCII text is refused', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['Schlüssel'] }], expect: { display: ['', ''] }, reply: 'RANGE' },
    { name: 'display clear', doors: 4, commands: [{ verb: 'DISPLAY', op: 'show', rows: ['a', 'b'] }, { verb: 'DISPLAY', op: 'clear' }], expect: { display: ['', ''] }, reply: 'OK' },
    { name: 'beep and flash count', doors: 4, commands: [{ verb: 'BEEP', count: 2 }, { verb: 'FLASH', count: 3 }, { verb: 'BEEP', count: 1 }], expect: { beeps: 3, flashes: 3 }, reply: 'OK' },
  ];

  it.each(cases)('$name', (c) => {
    const { state, outcomes } = run(c.doors, c.commands);
    expect(state).toMatchObject(c.expect);
    const last = outcomes.at(-1);
    expect(last === undefined ? undefined : last.reply.ok ? 'OK' : last.reply.code).toBe(c.reply);
    if (c.events !== undefined) expect(last?.events).toEqual(c.events);
  });

  it('answers PING and STATE with key=value reports without changing anything', () => {
    const { state, outcomes } = run(2, [{ verb: 'UNLOCK', doors: ['front-right'] }, { verb: 'DISPLAY', op: 'show', rows: ['Hi'] }, { verb: 'PING' }, { verb: 'STATE' }]);
    expect(outcomes[2]?.reply).toEqual({ ok: true, data: ['firmware=carkey-sim/1', 'doors=2'] });
    expect(outcomes[3]?.reply).toEqual({
      ok: true,
      data: ['doors=2', 'front-left=locked', 'front-right=unlocked', 'drive=off', 'trunk=closed', 'display1=Hi', 'display2=', 'beeps=0', 'flashes=0', 'front-left-door=closed', 'front-right-door=closed'],
    });
    expect(outcomes[3]?.state).toBe(outcomes[2]?.state);
    expect(stateReport(state)).toEqual(outcomes[3]?.reply.ok === true ? outcomes[3].reply.data : []);
  });
});

describe('line budget', () => {
  it('the longest possible STATE reply fits in one protocol line', () => {
    let state = initialState(4);
    for (const command of [
      { verb: 'UNLOCK', doors: 'all' },
      { verb: 'DRIVE', on: true },
      { verb: 'TRUNK' },
      { verb: 'DISPLAY', op: 'show', rows: ['%'.repeat(DISPLAY_COLUMNS), '*'.repeat(DISPLAY_COLUMNS)] },
    ] as const) {
      state = applyCommand(state, command).state;
    }
    // Door positions stay 'closed', the longer of the two values.
    state = { ...state, beeps: Number.MAX_SAFE_INTEGER, flashes: Number.MAX_SAFE_INTEGER };
    const line = formatOk(MAX_REQUEST_ID, stateReport(state));
    expect(line.length - 1).toBeLessThanOrEqual(MAX_LINE_BYTES);
    // docs/firmware-sim.md states this length.
    expect(line.length - 1).toBe(404);
  });
});

describe('physical actions', () => {
  it.each([
    ['short press', { kind: 'button', press: 'short' }, [{ event: 'BUTTON', press: 'short' }]],
    ['long press', { kind: 'button', press: 'long' }, [{ event: 'BUTTON', press: 'long' }]],
    ['keycard tap', { kind: 'keycard', cardId: '04A224B2' }, [{ event: 'KEYCARD', cardId: '04A224B2' }]],
    ['closing a closed trunk does nothing', { kind: 'close-trunk' }, []],
  ] as const)('%s', (_name, action: PhysicalAction, events) => {
    const before = deepFreeze(initialState(4));
    const outcome = applyAction(before, action);
    expect(outcome.events).toEqual(events);
    expect(outcome.state).toEqual(before);
  });

  it('a person opens an unlocked door and shuts it again; each move is one event', () => {
    const unlocked = deepFreeze(applyCommand(initialState(4), { verb: 'UNLOCK', doors: ['rear-left'] }).state);
    const opened = applyAction(unlocked, { kind: 'open-door', door: 'rear-left' });
    expect(opened.refused).toBeUndefined();
    expect(opened.state.positions).toEqual({ 'front-left': 'closed', 'front-right': 'closed', 'rear-left': 'open', 'rear-right': 'closed' });
    expect(opened.events).toEqual([{ event: 'DOOR', door: 'rear-left', position: 'open' }]);
    expect(applyAction(opened.state, { kind: 'open-door', door: 'rear-left' })).toEqual({ state: opened.state, events: [] });
    // Locking an open door locks its latch; the door stays open until it is shut.
    const latched = applyCommand(opened.state, { verb: 'LOCK', doors: 'all' }).state;
    expect(latched.positions['rear-left']).toBe('open');
    const shut = applyAction(latched, { kind: 'close-door', door: 'rear-left' });
    expect(shut.state.positions['rear-left']).toBe('closed');
    expect(shut.events).toEqual([{ event: 'DOOR', door: 'rear-left', position: 'closed' }]);
  });

  it.each([
    ['a locked door does not open from outside', 4, { kind: 'open-door', door: 'front-left' }, 'LOCKED'],
    ['a door the car does not have', 2, { kind: 'open-door', door: 'rear-right' }, 'NODOOR'],
    ['closing a door the car does not have', 2, { kind: 'close-door', door: 'rear-left' }, 'NODOOR'],
  ] as const)('refuses: %s (nothing changes, no event)', (_name, doors, action: PhysicalAction, code) => {
    const before = deepFreeze(initialState(doors));
    const outcome = applyAction(before, action);
    expect(outcome.refused?.code).toBe(code);
    expect(outcome.state).toBe(before);
    expect(outcome.events).toEqual([]);
  });

  it('a person closes an open trunk', () => {
    const open = deepFreeze(applyCommand(initialState(4), { verb: 'TRUNK' }).state);
    const outcome = applyAction(open, { kind: 'close-trunk' });
    expect(outcome.state.trunk).toBe('closed');
    expect(outcome.events).toEqual([{ event: 'TRUNK', state: 'closed' }]);
  });
});

describe('properties', () => {
  const door = fc.constantFrom(...WIRE_DOORS);
  const text = fc.string({ unit: 'binary-ascii', maxLength: 25 });
  const command: fc.Arbitrary<HostCommand> = fc.oneof(
    fc.constant<HostCommand>({ verb: 'PING' }),
    fc.constant<HostCommand>({ verb: 'STATE' }),
    fc.constant<HostCommand>({ verb: 'TRUNK' }),
    fc.oneof(fc.constant('all' as const), fc.uniqueArray(door, { minLength: 1, maxLength: 4 })).chain((doors) =>
      fc.constantFrom<HostCommand>({ verb: 'LOCK', doors }, { verb: 'UNLOCK', doors }),
    ),
    fc.boolean().map((on): HostCommand => ({ verb: 'DRIVE', on })),
    fc.array(text, { minLength: 0, maxLength: 3 }).map((rows): HostCommand => ({ verb: 'DISPLAY', op: 'show', rows })),
    fc.constant<HostCommand>({ verb: 'DISPLAY', op: 'clear' }),
    fc.integer({ min: 1, max: 9 }).map((count): HostCommand => ({ verb: 'FLASH', count })),
  );
  const doorCount = fc.constantFrom<DoorCount>(2, 4);

  it('keeps its invariants and never mutates its input, whatever the commands', () => {
    fc.assert(
      fc.property(doorCount, fc.array(command, { maxLength: 30 }), (doors, commands) => {
        const { state, outcomes } = run(doors, commands);
        expect(Object.keys(state.locks)).toEqual(fittedDoors(doors));
        expect(Object.keys(state.positions)).toEqual(fittedDoors(doors));
        expect(state.display).toHaveLength(DISPLAY_ROWS);
        for (const row of state.display) {
          expect(row.length).toBeLessThanOrEqual(DISPLAY_COLUMNS);
          expect(row).toMatch(/^[\x20-\x7e]*$/);
          expect(row).toBe(row.trimEnd());
        }
        for (const [i, outcome] of outcomes.entries()) {
          const previous = i === 0 ? undefined : outcomes[i - 1]?.state;
          if (!outcome.reply.ok && previous !== undefined) expect(outcome.state).toBe(previous);
        }
      }),
    );
  });

  it('is deterministic: the same commands give the same states, replies and events', () => {
    fc.assert(
      fc.property(doorCount, fc.array(command, { maxLength: 20 }), (doors, commands) => {
        expect(run(doors, commands)).toEqual(run(doors, commands));
      }),
    );
  });

  it('actuator commands are idempotent: applying one twice equals applying it once', () => {
    const actuator = command.filter((c) => c.verb !== 'FLASH' && c.verb !== 'BEEP');
    fc.assert(
      fc.property(doorCount, fc.array(command, { maxLength: 10 }), actuator, (doors, prefix, repeated) => {
        const once = run(doors, [...prefix, repeated]).state;
        const twice = run(doors, [...prefix, repeated, repeated]).state;
        expect(twice).toEqual(once);
      }),
    );
  });
});
