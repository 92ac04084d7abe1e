/**
 * The phone state machine's answer to "the link closed": CK_PROTO_NO_ANSWER
 * while a REQUEST or COMMAND is outstanding (the car may have acted on it),
 * CK_TRANSPORT_DISCONNECTED when nothing was asked yet or the last question
 * was answered (RESULT or REFUSE). Driven with the real car and phone
 * session machines and recorded messages (docs/protocol.md §9.3).
 */
import { describe, expect, it } from 'vitest';
import { REFUSE_BYTES } from '../../src/core/messages.js';
import { newPhone, pairedWorld, phoneBeforeUnlock, runUnlock, type UnlockDone } from '../helpers/core-harness.js';

const world = pairedWorld();

function recorded(label: string): UnlockDone {
  const run = runUnlock(world, { seedLabel: label, followUp: 'lock' });
  if (!run.ok) throw new Error(`unlock stopped at ${run.stage}: ${run.code}`);
  return run;
}

function message(run: UnlockDone, name: keyof UnlockDone['messages']): Uint8Array {
  const bytes = run.messages[name];
  if (bytes === undefined) throw new Error(`${name} not recorded`);
  return bytes;
}

describe('PhoneSession.onLinkClosed', () => {
  it('before anything was asked: a transport failure (safe to retry)', () => {
    const run = recorded('closed-early');
    const waiting = phoneBeforeUnlock(world, { seedLabel: 'closed-early' }, run.messages, 'CHALLENGE');
    expect(waiting.answerPending).toBe(false);
    expect(waiting.onLinkClosed().code).toBe('CK_TRANSPORT_DISCONNECTED');

    const verified = newPhone(world, world.owner, 'closed-early');
    verified.start();
    expect(verified.onChallenge(message(run, 'CHALLENGE')).ok).toBe(true);
    expect(verified.onLinkClosed().code).toBe('CK_TRANSPORT_DISCONNECTED');
  });

  it('after the REQUEST, before its RESULT: no answer, and the session is over', () => {
    const run = recorded('closed-request');
    const phone = phoneBeforeUnlock(world, { seedLabel: 'closed-request' }, run.messages, 'RESULT');
    expect(phone.answerPending).toBe(true);
    const error = phone.onLinkClosed('no RESULT for "unlock"');
    expect(error.code).toBe('CK_PROTO_NO_ANSWER');
    expect(error.message).toMatch(/may or may not have been carried out/);
    expect(error.exitCode).not.toBe(0);
    expect(phone.answerPending).toBe(false);
    // a RESULT arriving afterwards is not accepted, and nothing more can be sent
    expect(phone.onResult(message(run, 'RESULT')).ok).toBe(false);
    expect(() => phone.command('lock')).toThrow();
  });

  it('after a COMMAND, before its RESULT: no answer', () => {
    const run = recorded('closed-command');
    const phone = phoneBeforeUnlock(world, { seedLabel: 'closed-command', followUp: 'lock' }, run.messages, 'COMMAND_RESULT');
    expect(phone.answerPending).toBe(true);
    expect(phone.onLinkClosed().code).toBe('CK_PROTO_NO_ANSWER');
  });

  it('after the RESULT, or after a REFUSE: the question was answered', () => {
    const run = recorded('closed-answered');
    const answered = phoneBeforeUnlock(world, { seedLabel: 'closed-answered' }, run.messages, 'RESULT');
    expect(answered.onResult(message(run, 'RESULT')).ok).toBe(true);
    expect(answered.answerPending).toBe(false);
    expect(answered.onLinkClosed().code).toBe('CK_TRANSPORT_DISCONNECTED');

    const refused = phoneBeforeUnlock(world, { seedLabel: 'closed-answered' }, run.messages, 'RESULT');
    const result = refused.onResult(REFUSE_BYTES);
    expect(!result.ok && result.error.code).toBe('CK_PROTO_REFUSED');
    expect(refused.onLinkClosed().code).toBe('CK_TRANSPORT_DISCONNECTED');
  });
});
