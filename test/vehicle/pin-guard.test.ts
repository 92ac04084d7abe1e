/**
 * The start-PIN guard: per-key lockout, the non-owner backstop that never
 * touches owners, and bounded memory. Table-driven: each row is a script of
 * PIN outcomes by subject and time, and the locked-out state of subjects at
 * the end.
 */
import { describe, expect, it } from 'vitest';
import { PinGuard, type PinGuardOptions, type PinSubject } from '../../src/vehicle/pin-guard.js';

const owner: PinSubject = { key: 'aa'.repeat(32), owner: true };
const owner2: PinSubject = { key: 'ab'.repeat(32), owner: true };
const guest: PinSubject = { key: 'bb'.repeat(32), owner: false };
const guest2: PinSubject = { key: 'cc'.repeat(32), owner: false };
const MIN = 60_000;

type Step = readonly [PinSubject, 'ok' | 'wrong', number];
const times = (n: number, subject: PinSubject, outcome: 'ok' | 'wrong', from = 0): Step[] => Array.from({ length: n }, (_, i) => [subject, outcome, from + i] as const);
const guestKey = (i: number): PinSubject => ({ key: i.toString(16).padStart(64, '0'), owner: false });

interface Row {
  readonly name: string;
  readonly options?: PinGuardOptions;
  readonly steps: readonly Step[];
  readonly at: number;
  readonly locked: readonly PinSubject[];
  readonly open: readonly PinSubject[];
}

const rows: readonly Row[] = [
  { name: '4 wrong PINs do not lock', steps: times(4, guest, 'wrong'), at: 10, locked: [], open: [guest] },
  { name: '5 wrong PINs lock that key', steps: times(5, guest, 'wrong'), at: 10, locked: [guest], open: [] },
  { name: 'the lockout ends after 5 minutes', steps: times(5, guest, 'wrong'), at: 4 + 5 * MIN, locked: [], open: [guest] },
  { name: "a grantee's wrong PINs do not lock the owner", steps: times(5, guest, 'wrong'), at: 10, locked: [guest], open: [owner, guest2] },
  { name: "an owner's wrong PINs lock only that owner", steps: times(5, owner, 'wrong'), at: 10, locked: [owner], open: [owner2, guest] },
  { name: 'a right PIN resets the count', steps: [...times(4, guest, 'wrong'), [guest, 'ok', 5], [guest, 'wrong', 6]], at: 7, locked: [], open: [guest] },
  { name: 'old failures fall out of the window', options: { windowMs: 1000 }, steps: [...times(4, guest, 'wrong'), [guest, 'wrong', 5000]], at: 5001, locked: [], open: [guest] },
  {
    name: 'non-owner backstop: 20 wrong PINs from 5 grantees lock every grantee, never an owner',
    steps: [1, 2, 3, 4, 5].flatMap((i) => times(4, guestKey(i), 'wrong', i * 10)),
    at: 100,
    locked: [guestKey(1), guestKey(9)],
    open: [owner, owner2],
  },
  {
    name: 'owners never feed the backstop',
    steps: [owner, owner2].flatMap((o, i) => times(4, o, 'wrong', i * 10)).concat(times(4, { key: 'ad'.repeat(32), owner: true }, 'wrong', 40)),
    at: 100,
    locked: [],
    open: [guest, owner],
  },
];

describe('PIN guard', () => {
  it.each(rows)('$name', ({ options, steps, at, locked, open }) => {
    const guard = new PinGuard(options);
    for (const [subject, outcome, time] of steps) {
      if (!guard.locked(subject, time)) guard.record(subject, outcome, time);
    }
    for (const subject of locked) expect(guard.locked(subject, at), `${subject.key.slice(0, 4)} locked`).toBe(true);
    for (const subject of open) expect(guard.locked(subject, at), `${subject.key.slice(0, 4)} open`).toBe(false);
  });

  it('lockedFor says how long the lockout lasts: from the 5th wrong PIN, counting down to 0', () => {
    const guard = new PinGuard();
    for (let i = 0; i < 5; i++) guard.record(guest, 'wrong', i);
    expect(guard.lockedFor(guest, 4)).toBe(5 * MIN);
    expect(guard.lockedFor(guest, 4 + MIN)).toBe(4 * MIN);
    expect(guard.lockedFor(guest, 4 + 5 * MIN)).toBe(0);
    expect(guard.lockedFor(owner, 10)).toBe(0);
  });

  it('lockedFor a non-owner is the later of its own and the car-wide non-owner lockout', () => {
    const guard = new PinGuard({ globalMaxFailures: 6 });
    for (let i = 0; i < 5; i++) guard.record(guest, 'wrong', i); // guest locked until 4 + 5 min
    guard.record(guest2, 'wrong', MIN); // 6th non-owner failure: every non-owner locked until 1 min + 5 min
    expect(guard.lockedFor(guest, 2 * MIN)).toBe(4 * MIN);
    expect(guard.lockedFor(guest2, 2 * MIN)).toBe(4 * MIN);
    expect(guard.lockedFor(owner, 2 * MIN)).toBe(0);
  });

  it('tracks at most maxTrackedKeys keys, evicting the oldest unlocked one first', () => {
    const guard = new PinGuard({ maxTrackedKeys: 4, globalMaxFailures: 1000 });
    for (let i = 0; i < 5; i++) guard.record(guest, 'wrong', i); // locked, oldest
    for (let k = 1; k <= 10; k++) guard.record(guestKey(k), 'wrong', 100 + k);
    expect(guard.trackedKeys).toBe(4);
    // The locked key survived ten newer keys; unlocked ones were evicted oldest first.
    expect(guard.locked(guest, 200)).toBe(true);
  });

  it('when every tracked key is locked, the oldest lockout is forgotten (memory stays bounded)', () => {
    const guard = new PinGuard({ maxTrackedKeys: 2, globalMaxFailures: 1000 });
    for (const [n, subject] of [guest, guest2, owner].entries()) for (let i = 0; i < 5; i++) guard.record(subject, 'wrong', n * 10 + i);
    expect(guard.trackedKeys).toBe(2);
    expect(guard.locked(guest, 50)).toBe(false);
    expect(guard.locked(guest2, 50)).toBe(true);
    expect(guard.locked(owner, 50)).toBe(true);
  });
});
