/**
 * The car's side of one BLE session, as a pure state machine.
 *
 * Unlock:  HELLO → CHALLENGE (signed by the car's identity key)
 *          REQUEST (sealed; identity, credential, command, phone signature over
 *          the transcript) → the daemon decides → RESULT (sealed).
 *          Then COMMAND → RESULT pairs on the same keys, no new signature.
 * Pairing: PAIR_HELLO (commitment) → PAIR_CHALLENGE (signed) ; PAIR_REVEAL →
 *          6-digit code shown on the car + PAIR_READY (current key list) ;
 *          PAIR_CONFIRM (new key list signed by the phone) → the car waits for
 *          physical confirmation → PAIR_RESULT.
 *
 * Guarantees: every input is length-checked and parsed before any crypto; a
 * message out of order, malformed, failing a signature, a MAC or the challenge
 * TTL ends the session with the one generic REFUSE on the wire, while the
 * specific reason is returned to the caller for the audit log. The challenge
 * is single-use (one REQUEST per session, bound into the transcript). No
 * clock or RNG is read: `now` comes in the context, randomness from `random`.
 */
import { concatBytes } from './bytes.js';
import { SealedChannel, deriveSessionKeys } from './channel-keys.js';
import type { Credential } from './authorize.js';
import { decodeGrant } from './credentials.js';
import type { RandomSource } from './crypto/backend.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError, type ErrorCode } from './errors.js';
import { LABELS } from './labels.js';
import {
  CredentialKind,
  DenyCategoryCode,
  MessageType,
  REFUSE_BYTES,
  ResultStatus,
  classify,
  decodeCommandPlain,
  decodeHello,
  decodePairConfirmPlain,
  decodePairHello,
  decodePairReveal,
  decodeRequestPlain,
  encodeChallengeBody,
  encodePairChallenge,
  encodePairChallengeBody,
  encodePairReadyPlain,
  type PairReadyPlain,
  type PairReadyStatus,
  encodePairResultPlain,
  encodeLockoutPayload,
  encodeResultPlain,
  NONCE_LENGTH,
  type DenyCategoryName,
} from './messages.js';
import { commandName, type CommandName } from './roles.js';
import { pairingCode, pairingCommitment } from './pairing-code.js';

export const DEFAULT_CHALLENGE_TTL_MS = 3000;

export interface VehicleSessionDeps {
  readonly crypto: Crypto;
  /** The car's Ed25519 identity seed. */
  readonly identitySeed: Uint8Array;
  readonly random: RandomSource;
  /** How long a challenge stays valid (ms, ≤ 65535). */
  readonly challengeTtlMs?: number;
}

export interface VehicleContext {
  /** Monotonic milliseconds, for TTL and response-time measurement. */
  readonly now: number;
  /** Trusted wall time (ms) to tell the phone. */
  readonly carTime: number;
  readonly keyListVersion: number;
  /** Physical pairing mode is on (button / keycard). */
  readonly pairingOpen: boolean;
  /**
   * What PAIR_READY tells a pairing phone: whether the car can take this
   * pairing (status), the epoch and version its new list must carry, and
   * the encoded current key list (empty when unpaired).
   */
  readonly pairReady: PairReadyPlain;
}

export type VehicleEvent =
  | { readonly kind: 'reply'; readonly reply: Uint8Array }
  | {
      readonly kind: 'request';
      readonly seq: number;
      readonly first: boolean;
      readonly peerKey: Uint8Array;
      readonly credential: Credential;
      readonly command: CommandName | undefined;
      readonly args: Uint8Array;
      readonly responseTimeMs: number;
    }
  /** PAIR_READY built; `status` other than 'ready' means the session is closed after `reply`. */
  | { readonly kind: 'pair-code'; readonly code: string; readonly status: PairReadyStatus; readonly reply: Uint8Array }
  | { readonly kind: 'pair-confirm'; readonly peerKey: Uint8Array; readonly name: string; readonly keyList: Uint8Array }
  | { readonly kind: 'refuse'; readonly error: CarkeyError; readonly reply: Uint8Array };

export type Outcome =
  | { readonly status: 'ok'; readonly payload?: Uint8Array }
  | { readonly status: 'denied'; readonly category: DenyCategoryName; readonly retryAfterSeconds?: number }
  | { readonly status: 'failed'; readonly payload?: Uint8Array };

type State =
  | { readonly name: 'idle' }
  | { readonly name: 'challenged'; readonly th: Uint8Array; readonly channel: SealedChannel; readonly sentAt: number; readonly ttlMs: number }
  | { readonly name: 'open'; readonly channel: SealedChannel; readonly peerKey: Uint8Array; readonly credential: Credential; readonly responseTimeMs: number; readonly pending: boolean }
  | { readonly name: 'pair-challenged'; readonly hello: Uint8Array; readonly challenge: Uint8Array; readonly ephemeralSecret: Uint8Array; readonly peerEphemeral: Uint8Array; readonly commitment: Uint8Array }
  | { readonly name: 'pair-revealed'; readonly th: Uint8Array; readonly channel: SealedChannel }
  | { readonly name: 'pair-confirming'; readonly channel: SealedChannel }
  | { readonly name: 'closed' };

export class VehicleSession {
  private state: State = { name: 'idle' };
  private readonly ttlMs: number;
  private readonly identityKey: Uint8Array;

  constructor(private readonly deps: VehicleSessionDeps) {
    this.ttlMs = deps.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 1 || this.ttlMs > 0xffff) throw new CarkeyError('CK_CONFIG_INVALID', 'challenge TTL must be 1..65535 ms');
    this.identityKey = deps.crypto.publicKeyFromSeed(deps.identitySeed);
  }

  get stateName(): State['name'] {
    return this.state.name;
  }

  /** True once the phone has proved its identity key (a REQUEST verified). */
  get authenticated(): boolean {
    return this.state.name === 'open';
  }

  get closed(): boolean {
    return this.state.name === 'closed';
  }

  /** Handle one complete message from the phone. Never throws. */
  handle(message: Uint8Array, context: VehicleContext): VehicleEvent {
    try {
      return this.dispatch(message, context);
    } catch (error) {
      const wrapped = error instanceof CarkeyError ? error : new CarkeyError('CK_INTERNAL', String(error));
      return this.refuse(wrapped);
    }
  }

  /** End the session with the generic refusal (for reasons decided outside, e.g. unknown key). */
  refuse(error: CarkeyError): VehicleEvent & { kind: 'refuse' } {
    this.state = { name: 'closed' };
    return { kind: 'refuse', error, reply: REFUSE_BYTES };
  }

  private fail(code: ErrorCode, detail?: string): VehicleEvent {
    return this.refuse(new CarkeyError(code, detail));
  }

  private dispatch(message: Uint8Array, context: VehicleContext): VehicleEvent {
    const type = classify(message);
    if (!type.ok) return this.refuse(type.error);
    const state = this.state;
    switch (state.name) {
      case 'idle':
        if (type.value === MessageType.hello) return this.onHello(message, context);
        if (type.value === MessageType.pairHello) {
          return context.pairingOpen ? this.onPairHello(message) : this.fail('CK_PAIRING_NOT_ACTIVE');
        }
        break;
      case 'challenged':
        if (type.value === MessageType.request) return this.onRequest(message, state, context);
        break;
      case 'open':
        if (type.value === MessageType.command && !state.pending) return this.onCommand(message, state);
        break;
      case 'pair-challenged':
        if (type.value === MessageType.pairReveal) return this.onPairReveal(message, state, context);
        break;
      case 'pair-revealed':
        if (type.value === MessageType.pairConfirm) return this.onPairConfirm(message, state);
        break;
      case 'pair-confirming':
      case 'closed':
        break;
    }
    return this.fail(state.name === 'closed' ? 'CK_PROTO_SESSION_CLOSED' : 'CK_PROTO_UNEXPECTED_MESSAGE', `type ${type.value} in state ${state.name}`);
  }

  private onHello(message: Uint8Array, context: VehicleContext): VehicleEvent {
    const hello = decodeHello(message);
    if (!hello.ok) return this.refuse(hello.error);
    const { crypto, random } = this.deps;
    const ephemeral = crypto.x25519KeyPair(random(32));
    const shared = crypto.sharedSecret(ephemeral.secretKey, hello.value.ephemeral);
    if (!shared.ok) return this.refuse(shared.error);
    const body = encodeChallengeBody({
      ephemeral: ephemeral.publicKey,
      challenge: random(NONCE_LENGTH),
      carTime: context.carTime,
      ttlMs: this.ttlMs,
      keyListVersion: context.keyListVersion,
    });
    const signature = crypto.sign(this.deps.identitySeed, concatBytes(LABELS.challenge, message, body));
    const challenge = concatBytes(body, signature);
    const th = crypto.hash(message, challenge);
    const channel = new SealedChannel(crypto, 'car', deriveSessionKeys(crypto, LABELS.sessionKeys, shared.value, th));
    this.state = { name: 'challenged', th, channel, sentAt: context.now, ttlMs: this.ttlMs };
    return { kind: 'reply', reply: challenge };
  }

  private onRequest(message: Uint8Array, state: State & { name: 'challenged' }, context: VehicleContext): VehicleEvent {
    const responseTimeMs = context.now - state.sentAt;
    if (responseTimeMs > state.ttlMs) return this.fail('CK_PROTO_CHALLENGE_EXPIRED', `${responseTimeMs} ms > ${state.ttlMs} ms`);
    const opened = state.channel.open(message, [MessageType.request]);
    if (!opened.ok) return this.refuse(opened.error);
    const plain = decodeRequestPlain(opened.value.plaintext);
    if (!plain.ok) return this.refuse(plain.error);
    const request = plain.value;
    const { crypto } = this.deps;
    const keyCheck = crypto.checkPublicKey(request.identity);
    if (!keyCheck.ok) return this.refuse(keyCheck.error);
    const body = opened.value.plaintext.subarray(0, opened.value.plaintext.length - 64);
    const verified = crypto.verify(request.identity, concatBytes(LABELS.request, state.th, body), request.signature);
    if (!verified.ok) return this.fail('CK_PROTO_BAD_PHONE_SIGNATURE');
    let credential: Credential;
    if (request.credentialKind === CredentialKind.owner && request.credential.length === 0) {
      credential = { kind: 'owner' };
    } else if (request.credentialKind === CredentialKind.grant) {
      const grant = decodeGrant(request.credential);
      if (!grant.ok) return this.refuse(grant.error);
      credential = { kind: 'grant', grant: grant.value };
    } else {
      return this.fail('CK_CODEC_BAD_VALUE', `credential kind ${request.credentialKind}`);
    }
    this.state = { name: 'open', channel: state.channel, peerKey: request.identity, credential, responseTimeMs, pending: true };
    return {
      kind: 'request',
      seq: opened.value.seq,
      first: true,
      peerKey: request.identity,
      credential,
      command: commandName(request.command),
      args: request.args,
      responseTimeMs,
    };
  }

  private onCommand(message: Uint8Array, state: State & { name: 'open' }): VehicleEvent {
    const opened = state.channel.open(message, [MessageType.command]);
    if (!opened.ok) return this.refuse(opened.error);
    const plain = decodeCommandPlain(opened.value.plaintext);
    if (!plain.ok) return this.refuse(plain.error);
    this.state = { ...state, pending: true };
    return {
      kind: 'request',
      seq: opened.value.seq,
      first: false,
      peerKey: state.peerKey,
      credential: state.credential,
      command: commandName(plain.value.command),
      args: plain.value.args,
      responseTimeMs: state.responseTimeMs,
    };
  }

  /** Seal the RESULT for the pending request `seq`. */
  respond(seq: number, outcome: Outcome): Uint8Array {
    const state = this.state;
    if (state.name !== 'open' || !state.pending) throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'no request is pending');
    this.state = { ...state, pending: false };
    const status = ResultStatus[outcome.status];
    const category = outcome.status === 'denied' ? DenyCategoryCode[outcome.category] : DenyCategoryCode.none;
    const payload =
      outcome.status !== 'denied' ? (outcome.payload ?? new Uint8Array(0)) : outcome.category === 'locked-out' ? encodeLockoutPayload(outcome.retryAfterSeconds ?? 0) : new Uint8Array(0);
    return state.channel.seal(MessageType.result, encodeResultPlain({ requestSeq: seq, status, category, payload }));
  }

  // --- pairing ---------------------------------------------------------------

  private onPairHello(message: Uint8Array): VehicleEvent {
    const hello = decodePairHello(message);
    if (!hello.ok) return this.refuse(hello.error);
    const { crypto, random } = this.deps;
    const ephemeral = crypto.x25519KeyPair(random(32));
    const fields = { ephemeral: ephemeral.publicKey, nonce: random(NONCE_LENGTH), carIdentity: this.identityKey };
    const body = encodePairChallengeBody(fields);
    const signature = crypto.sign(this.deps.identitySeed, concatBytes(LABELS.pairChallenge, message, body));
    const challenge = encodePairChallenge({ ...fields, signature });
    this.state = {
      name: 'pair-challenged',
      hello: message,
      challenge,
      ephemeralSecret: ephemeral.secretKey,
      peerEphemeral: hello.value.ephemeral,
      commitment: hello.value.commitment,
    };
    return { kind: 'reply', reply: challenge };
  }

  private onPairReveal(message: Uint8Array, state: State & { name: 'pair-challenged' }, context: VehicleContext): VehicleEvent {
    if (!context.pairingOpen) return this.fail('CK_PAIRING_NOT_ACTIVE');
    const nonce = decodePairReveal(message);
    if (!nonce.ok) return this.refuse(nonce.error);
    const { crypto } = this.deps;
    const expected = pairingCommitment(crypto, state.peerEphemeral, nonce.value);
    if (!expected.every((byte, i) => byte === state.commitment[i])) return this.fail('CK_PROTO_PAIRING_COMMITMENT');
    const shared = crypto.sharedSecret(state.ephemeralSecret, state.peerEphemeral);
    if (!shared.ok) return this.refuse(shared.error);
    const th = crypto.hash(state.hello, state.challenge, message);
    const channel = new SealedChannel(crypto, 'car', deriveSessionKeys(crypto, LABELS.pairKeys, shared.value, th));
    const code = pairingCode(crypto, th);
    const reply = channel.seal(MessageType.pairReady, encodePairReadyPlain(context.pairReady));
    this.state = context.pairReady.status === 'ready' ? { name: 'pair-revealed', th, channel } : { name: 'closed' };
    return { kind: 'pair-code', code, status: context.pairReady.status, reply };
  }

  private onPairConfirm(message: Uint8Array, state: State & { name: 'pair-revealed' }): VehicleEvent {
    const opened = state.channel.open(message, [MessageType.pairConfirm]);
    if (!opened.ok) return this.refuse(opened.error);
    const plain = decodePairConfirmPlain(opened.value.plaintext);
    if (!plain.ok) return this.refuse(plain.error);
    const { crypto } = this.deps;
    const keyCheck = crypto.checkPublicKey(plain.value.identity);
    if (!keyCheck.ok) return this.refuse(keyCheck.error);
    const body = opened.value.plaintext.subarray(0, opened.value.plaintext.length - 64);
    if (!crypto.verify(plain.value.identity, concatBytes(LABELS.pairConfirm, state.th, body), plain.value.signature).ok) {
      return this.fail('CK_PROTO_BAD_PHONE_SIGNATURE', 'pair confirm');
    }
    this.state = { name: 'pair-confirming', channel: state.channel };
    return { kind: 'pair-confirm', peerKey: plain.value.identity, name: plain.value.name, keyList: plain.value.keyList };
  }

  /**
   * Finish pairing after the car's owner confirmed physically (or refused).
   * Returns PAIR_RESULT (accepted) or the generic refusal; the session closes.
   */
  finishPairing(result: { readonly accepted: true; readonly advSecret: Uint8Array; readonly vehicleName: string } | { readonly accepted: false; readonly error: CarkeyError }): Uint8Array {
    const state = this.state;
    if (state.name !== 'pair-confirming') throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'no pairing awaits confirmation');
    this.state = { name: 'closed' };
    if (!result.accepted) return REFUSE_BYTES;
    return state.channel.seal(MessageType.pairResult, encodePairResultPlain({ status: 0, advSecret: result.advSecret, vehicleName: result.vehicleName }));
  }
}
