/**
 * The access decision. One table row per DENY_REASONS entry, each an allowed
 * input plus the one change that produces exactly that reason (the table must
 * cover every reason: adding one without a row fails). Allow rows for every
 * role × command checked against ROLE_MASK / COMMAND_PERMISSION and against an
 * independent table of what each role may do; grant narrowing; the `revealOf`
 * mapping for every reason.
 */
import fc from 'fast-check';
import { keyIdOf } from '../../src/core/identity.js';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { decide, DENY_REASONS, revealOf, type Credential, type DecisionInput, type DenyCategory, type DenyReason } from '../../src/core/authorize.js';
import type { Grant } from '../../src/core/credentials.js';
import { DenyCategoryCode } from '../../src/core/messages.js';
import { Command, COMMAND_PERMISSION, ROLE_MASK, type CommandName, type RoleName } from '../../src/core/roles.js';
import { crypto, DAY_MS, grantFor, pairedWorld, party, propertyRuns, signList, T0, type GrantFields } from '../helpers/core-harness.js';

const world = pairedWorld();
const friend = party('friend');
const stranger = party('stranger');
const otherWorld = pairedWorld({ car: 'other car' });
const COMMANDS = Object.keys(Command) as CommandName[];

function grantCredential(fields: GrantFields = {}, subject = friend, issuer = world.owner, target = world): Credential & { kind: 'grant' } {
  return { kind: 'grant', grant: grantFor(target, subject, { role: 'driver', permissions: ROLE_MASK.driver, notBefore: T0 - DAY_MS, notAfter: T0 + DAY_MS, ...fields }, issuer) };
}

/** An input the car allows: the owner (or `friend` with a driver grant) unlocking, near, fast, no PIN policy. */
function allowedInput(kind: 'owner' | 'grant', change: Partial<DecisionInput> = {}): DecisionInput {
  const base: DecisionInput = {
    vehicleId: world.vehicleId,
    keyList: world.keyList,
    peerKey: kind === 'owner' ? world.owner.publicKey : friend.publicKey,
    credential: kind === 'owner' ? { kind: 'owner' } : grantCredential(),
    command: 'unlock',
    now: T0,
    proximity: { rssi: -50, near: true, responseTimeMs: 20 },
    policy: { relayBoundMs: 50, startPinRequired: false },
    pin: undefined,
  };
  return { ...base, ...change };
}

function grantOf(input: DecisionInput): Grant {
  if (input.credential.kind !== 'grant') throw new Error('not a grant input');
  return input.credential.grant;
}

interface DenyRow {
  readonly base: 'owner' | 'grant';
  /** The single change that turns the allowed base into this denial. */
  readonly change: () => Partial<DecisionInput>;
}

const defaultGrant = grantOf(allowedInput('grant'));

const DENY_TABLE: Record<DenyReason, DenyRow> = {
  'not-paired': { base: 'owner', change: () => ({ keyList: undefined }) },
  'unknown-key': { base: 'owner', change: () => ({ peerKey: stranger.publicKey }) },
  'key-revoked': { base: 'grant', change: () => ({ keyList: signList(world, world.owner, { version: 2, revokedKeys: [friend.publicKey] }) }) },
  'grant-invalid': { base: 'grant', change: () => ({ credential: { kind: 'grant', grant: { ...defaultGrant, signature: new Uint8Array(64) } } }) },
  'grant-wrong-vehicle': { base: 'grant', change: () => ({ credential: grantCredential({}, friend, world.owner, otherWorld) }) },
  'grant-wrong-subject': { base: 'grant', change: () => ({ peerKey: stranger.publicKey }) },
  'grant-issuer-not-owner': { base: 'grant', change: () => ({ credential: grantCredential({}, friend, stranger) }) },
  'grant-revoked': { base: 'grant', change: () => ({ keyList: signList(world, world.owner, { version: 2, revokedSerials: [defaultGrant.serial] }) }) },
  'grant-not-yet-valid': { base: 'grant', change: () => ({ now: defaultGrant.notBefore - 1 }) },
  'grant-expired': { base: 'grant', change: () => ({ now: defaultGrant.notAfter }) },
  'not-permitted': { base: 'grant', change: () => ({ credential: grantCredential({ role: 'guest', permissions: ROLE_MASK.guest }), command: 'trunk' }) },
  'relay-bound': { base: 'owner', change: () => ({ proximity: { rssi: -50, near: true, responseTimeMs: 51 } }) },
  'out-of-range': { base: 'owner', change: () => ({ command: 'passiveUnlock', proximity: { rssi: -95, near: false, responseTimeMs: 20 } }) },
  'pin-required': { base: 'owner', change: () => ({ command: 'start', policy: { relayBoundMs: 50, startPinRequired: true } }) },
  'pin-wrong': { base: 'owner', change: () => ({ command: 'start', policy: { relayBoundMs: 50, startPinRequired: true }, pin: 'wrong' }) },
  'pin-locked-out': { base: 'owner', change: () => ({ command: 'start', policy: { relayBoundMs: 50, startPinRequired: true }, pin: 'locked' }) },
};

describe('deny reasons: one row per reason', () => {
  it('the table covers every DENY_REASONS entry and nothing else', () => {
    expect(Object.keys(DENY_TABLE).sort()).toEqual([...DENY_REASONS].sort());
  });

  it.each([...DENY_REASONS])('%s', (reason) => {
    const row = DENY_TABLE[reason];
    const base = allowedInput(row.base);
    expect(decide(crypto, base)).toMatchObject({ allow: true });
    const decision = decide(crypto, { ...base, ...row.change() });
    expect(decision).toMatchObject({ allow: false, reason });
  });

  it('a locked-out PIN is denied as locked out, not as missing or wrong (the right PIN included)', () => {
    const policy = { relayBoundMs: 50, startPinRequired: true };
    expect(decide(crypto, allowedInput('owner', { command: 'start', policy, pin: 'locked' }))).toMatchObject({ allow: false, reason: 'pin-locked-out' });
    expect(revealOf('pin-locked-out')).toBe('locked-out');
  });

  it('boundaries: the last allowed instant and response time', () => {
    expect(decide(crypto, allowedInput('grant', { now: defaultGrant.notBefore })).allow).toBe(true);
    expect(decide(crypto, allowedInput('grant', { now: defaultGrant.notAfter - 1 })).allow).toBe(true);
    expect(decide(crypto, allowedInput('owner', { proximity: { rssi: undefined, near: false, responseTimeMs: 50 } })).allow).toBe(true);
    expect(decide(crypto, allowedInput('owner', { command: 'start', policy: { relayBoundMs: 50, startPinRequired: true }, pin: 'ok' })).allow).toBe(true);
  });

  it('a revoked key is denied even for an owner, before anything else', () => {
    const list = signList(world, world.owner, { version: 2, owners: [world.owner.publicKey, stranger.publicKey], revokedKeys: [world.owner.publicKey] });
    expect(decide(crypto, allowedInput('owner', { keyList: list, proximity: { rssi: undefined, near: false, responseTimeMs: 9999 } }))).toMatchObject({ allow: false, reason: 'key-revoked' });
  });

  it('revocation wins: a grant whose issuer is in revokedKeys is not honoured, even if a hand-made list also names the issuer as an owner', () => {
    const list = signList(world, world.owner, { version: 2, owners: [world.owner.publicKey, stranger.publicKey], revokedKeys: [world.owner.publicKey] });
    expect(decide(crypto, allowedInput('grant', { keyList: list }))).toMatchObject({ allow: false, reason: 'grant-issuer-not-owner' });
    expect(revealOf('grant-issuer-not-owner')).toBeUndefined();
  });

  it('a grant for another epoch (made before a factory reset) is not recognised', () => {
    const afterReset = signList(world, world.owner, { epoch: 1, version: 1 });
    expect(decide(crypto, allowedInput('grant', { keyList: afterReset }))).toMatchObject({ allow: false, reason: 'grant-invalid' });
    const sameEpoch = grantCredential({ epoch: 1 });
    expect(decide(crypto, allowedInput('grant', { keyList: afterReset, credential: sameEpoch }))).toMatchObject({ allow: true });
  });

  it('names the subject by grant serial or by key id, never the whole key', () => {
    expect(decide(crypto, allowedInput('grant')).subject).toBe(`grant:${toHex(defaultGrant.serial)}`);
    expect(decide(crypto, allowedInput('owner')).subject).toBe(`key:${keyIdOf(crypto, world.owner.publicKey)}`);
  });
});

describe('allow rows: every role × every command', () => {
  /** What each role may do, written out from the role descriptions (independent of the masks). */
  const MAY: Record<RoleName, readonly CommandName[]> = {
    owner: COMMANDS,
    driver: ['unlock', 'lock', 'start', 'trunk', 'status', 'passiveUnlock', 'honk', 'flash'],
    guest: ['unlock', 'lock', 'start', 'status', 'flash'],
    monitor: ['status'],
  };

  function inputFor(role: RoleName, command: CommandName): DecisionInput {
    if (role === 'owner') return allowedInput('owner', { command });
    return allowedInput('grant', { command, credential: grantCredential({ role, permissions: ROLE_MASK[role] }) });
  }

  const rows = (Object.keys(MAY) as RoleName[]).flatMap((role) => COMMANDS.map((command) => [role, command] as const));

  it('covers 4 roles × every command', () => {
    expect(rows.length).toBe(4 * COMMANDS.length);
    expect(COMMANDS.length).toBe(12);
  });

  it.each(rows)('%s / %s', (role, command) => {
    const decision = decide(crypto, inputFor(role, command));
    const need = COMMAND_PERMISSION[command];
    const byMask = (ROLE_MASK[role] & need) === need;
    expect(byMask).toBe(MAY[role].includes(command));
    if (byMask) expect(decision).toEqual({ allow: true, role, subject: decision.subject });
    else expect(decision).toMatchObject({ allow: false, reason: 'not-permitted' });
  });

  it('a grant narrows its role: allowed iff the command needs only granted bits within the role mask', () => {
    const roles = ['driver', 'guest', 'monitor'] as const;
    fc.assert(
      fc.property(fc.constantFrom(...roles), fc.integer({ min: 0, max: 0x1ff }), fc.constantFrom(...COMMANDS), (role, bits, command) => {
        const permissions = bits & ROLE_MASK[role];
        const decision = decide(crypto, allowedInput('grant', { command, credential: grantCredential({ role, permissions }) }));
        const need = COMMAND_PERMISSION[command];
        expect(decision.allow).toBe((permissions & need) === need);
      }),
      propertyRuns(200),
    );
  });
});

describe('revealOf', () => {
  const EXPECTED: Record<DenyReason, DenyCategory | undefined> = {
    'not-paired': undefined,
    'unknown-key': undefined,
    'key-revoked': undefined,
    'grant-invalid': undefined,
    'grant-wrong-vehicle': undefined,
    'grant-wrong-subject': undefined,
    'grant-issuer-not-owner': undefined,
    'grant-revoked': undefined,
    'grant-not-yet-valid': 'expired',
    'grant-expired': 'expired',
    'not-permitted': 'not-permitted',
    'relay-bound': 'proximity',
    'out-of-range': 'proximity',
    'pin-required': 'pin',
    'pin-wrong': 'pin',
    'pin-locked-out': 'locked-out',
  };

  it('covers every reason', () => {
    expect(Object.keys(EXPECTED).sort()).toEqual([...DENY_REASONS].sort());
  });

  it.each([...DENY_REASONS])('%s', (reason) => {
    expect(revealOf(reason)).toBe(EXPECTED[reason]);
  });

  it('every revealed category has a wire code', () => {
    for (const reason of DENY_REASONS) {
      const category = revealOf(reason);
      if (category !== undefined) expect(DenyCategoryCode[category]).toBeGreaterThan(0);
    }
  });
});
