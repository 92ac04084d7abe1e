/**
 * The phone's side of a session and of owner pairing, as pure state machines.
 *
 * Guarantees: the car's CHALLENGE must be signed by the identity key pinned at
 * pairing (a spoofed car fails with CK_PROTO_BAD_CAR_SIGNATURE); the phone's
 * identity and credentials leave only inside sealed messages; a REFUSE from
 * the car becomes CK_PROTO_REFUSED; a link that closes while a REQUEST or
 * COMMAND is outstanding becomes CK_PROTO_NO_ANSWER (the car may have acted),
 * distinct from a link lost before anything was asked (CK_TRANSPORT_DISCONNECTED);
 * every method either returns bytes to send
 * or a typed Result — nothing from the radio makes it throw. Randomness is
 * injected.
 */
import { concatBytes, equalBytes } from './bytes.js';
import { SealedChannel, deriveSessionKeys } from './channel-keys.js';
import type { RandomSource } from './crypto/backend.js';
import type { Crypto } from './crypto/policy.js';
import { CarkeyError, fail, ok, type Result } from './errors.js';
import { LABELS } from './labels.js';
import {
  CredentialKind,
  DenyCategoryCode,
  MessageType,
  NONCE_LENGTH,
  REFUSE_BYTES,
  ResultStatus,
  classify,
  decodeChallenge,
  decodePairChallenge,
  decodePairReadyPlain,
  type PairReadyPlain,
  decodePairResultPlain,
  decodeLockoutPayload,
  decodeResultPlain,
  encodeCommandPlain,
  encodeHello,
  encodePairConfirmBody,
  encodePairHello,
  encodePairReveal,
  encodeRequestBody,
  type DenyCategoryName,
} from './messages.js';
import { pairingCode, pairingCommitment } from './pairing-code.js';
import { Command, type CommandName } from './roles.js';
import { checkedSign, type Signer } from './signer.js';

export type PhoneCredential = { readonly kind: 'owner' } | { readonly kind: 'grant'; readonly bytes: Uint8Array };

export interface ChallengeInfo {
  readonly carTime: number;
  readonly ttlMs: number;
  readonly keyListVersion: number;
}

export type CommandResult =
  | { readonly status: 'ok'; readonly payload: Uint8Array }
  | { readonly status: 'denied'; readonly category: DenyCategoryName; readonly retryAfterSeconds?: number }
  | { readonly status: 'failed'; readonly payload: Uint8Array };

function isRefuse(bytes: Uint8Array): boolean {
  return equalBytes(bytes, REFUSE_BYTES);
}

function categoryName(code: number): DenyCategoryName {
  const entry = (Object.entries(DenyCategoryCode) as [DenyCategoryName, number][]).find(([, value]) => value === code);
  return entry === undefined ? 'none' : entry[0];
}

/**
 * How the phone signs: a seed in memory (`identitySeed`, for the sync
 * `request`/`confirm`), or a `signer` (e.g. a non-extractable WebCrypto key)
 * for `requestWith`/`confirmWith`. Give one of the two.
 */
export type PhoneIdentity = { readonly identitySeed: Uint8Array; readonly signer?: undefined } | { readonly signer: Signer; readonly identitySeed?: undefined };

export type PhoneSessionDeps = {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  /** The car's identity key, pinned at pairing. */
  readonly carIdentityKey: Uint8Array;
} & PhoneIdentity;

function identityKeyOf(crypto: Crypto, identity: PhoneIdentity): Uint8Array {
  return identity.signer !== undefined ? identity.signer.publicKey : crypto.publicKeyFromSeed(identity.identitySeed);
}

function seedOf(identity: PhoneIdentity): Uint8Array {
  if (identity.identitySeed === undefined) throw new CarkeyError('CK_INTERNAL', 'this session signs with a signer: use the …With method');
  return identity.identitySeed;
}

export class PhoneSession {
  private hello: Uint8Array | undefined;
  private ephemeralSecret: Uint8Array | undefined;
  private th: Uint8Array | undefined;
  private channel: SealedChannel | undefined;
  private lastSentSeq = -1;
  private awaiting = false;
  private readonly identityKey: Uint8Array;

  constructor(private readonly deps: PhoneSessionDeps) {
    this.identityKey = identityKeyOf(deps.crypto, deps);
  }

  /** First message: HELLO with a fresh ephemeral key and nonce. */
  start(): Uint8Array {
    if (this.hello !== undefined) throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'session already started');
    const pair = this.deps.crypto.x25519KeyPair(this.deps.random(32));
    this.ephemeralSecret = pair.secretKey;
    this.hello = encodeHello({ ephemeral: pair.publicKey, nonce: this.deps.random(NONCE_LENGTH) });
    return this.hello;
  }

  /** Verify the car's CHALLENGE against the pinned key and derive session keys. */
  onChallenge(bytes: Uint8Array): Result<ChallengeInfo> {
    if (isRefuse(bytes)) return fail('CK_PROTO_REFUSED');
    const { hello, ephemeralSecret } = this;
    if (hello === undefined || ephemeralSecret === undefined || this.th !== undefined) return fail('CK_PROTO_UNEXPECTED_MESSAGE', 'no HELLO outstanding');
    const type = classify(bytes);
    if (!type.ok) return type;
    const challenge = decodeChallenge(bytes);
    if (!challenge.ok) return challenge;
    const { crypto } = this.deps;
    const body = bytes.subarray(0, bytes.length - 64);
    if (!crypto.verify(this.deps.carIdentityKey, concatBytes(LABELS.challenge, hello, body), challenge.value.signature).ok) {
      return fail('CK_PROTO_BAD_CAR_SIGNATURE');
    }
    const shared = crypto.sharedSecret(ephemeralSecret, challenge.value.ephemeral);
    if (!shared.ok) return shared;
    this.th = crypto.hash(hello, bytes);
    this.channel = new SealedChannel(crypto, 'phone', deriveSessionKeys(crypto, LABELS.sessionKeys, shared.value, this.th));
    const { carTime, ttlMs, keyListVersion } = challenge.value;
    return ok({ carTime, ttlMs, keyListVersion });
  }

  /** The signed REQUEST carrying identity, credential and the first command. */
  request(credential: PhoneCredential, command: CommandName, args: Uint8Array = new Uint8Array(0)): Uint8Array {
    const { body, toSign } = this.requestBody(credential, command, args);
    return this.sealRequest(body, this.deps.crypto.sign(seedOf(this.deps), toSign));
  }

  /** `request` signed by the session's `signer` (async, e.g. WebCrypto); the signature is checked before it is sent. */
  async requestWith(credential: PhoneCredential, command: CommandName, args: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    const signer = this.deps.signer;
    if (signer === undefined) return this.request(credential, command, args);
    const { body, toSign } = this.requestBody(credential, command, args);
    return this.sealRequest(body, await checkedSign(this.deps.crypto, signer, toSign));
  }

  private requestBody(credential: PhoneCredential, command: CommandName, args: Uint8Array): { body: Uint8Array; toSign: Uint8Array } {
    const { th, channel } = this;
    if (th === undefined || channel === undefined || this.lastSentSeq !== -1) throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'REQUEST needs a verified CHALLENGE and is sent once');
    const body = encodeRequestBody({
      identity: this.identityKey,
      credentialKind: credential.kind === 'owner' ? CredentialKind.owner : CredentialKind.grant,
      credential: credential.kind === 'owner' ? new Uint8Array(0) : credential.bytes,
      command: Command[command],
      args,
    });
    return { body, toSign: concatBytes(LABELS.request, th, body) };
  }

  private sealRequest(body: Uint8Array, signature: Uint8Array): Uint8Array {
    const channel = this.channel;
    if (channel === undefined || this.lastSentSeq !== -1) throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'REQUEST needs a verified CHALLENGE and is sent once');
    this.lastSentSeq = 0;
    this.awaiting = true;
    return channel.seal(MessageType.request, concatBytes(body, signature));
  }

  /** A further command on the same session: sealed, no signature. */
  command(command: CommandName, args: Uint8Array = new Uint8Array(0)): Uint8Array {
    const channel = this.channel;
    if (channel === undefined || this.lastSentSeq < 0 || this.awaiting) throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'a COMMAND follows an answered REQUEST');
    this.lastSentSeq++;
    this.awaiting = true;
    return channel.seal(MessageType.command, encodeCommandPlain({ command: Command[command], args }));
  }

  /** True from building a REQUEST or COMMAND until its RESULT (or REFUSE) was opened. */
  get answerPending(): boolean {
    return this.awaiting;
  }

  /**
   * The link closed. While a REQUEST or COMMAND is outstanding (the phone has
   * started sending it and no RESULT came) that is CK_PROTO_NO_ANSWER: the car
   * may have acted on it. Otherwise nothing was asked of the car yet, and it
   * is the transport failure CK_TRANSPORT_DISCONNECTED (safe to retry).
   * The session cannot continue either way.
   */
  onLinkClosed(detail?: string): CarkeyError {
    const pending = this.awaiting;
    this.awaiting = false;
    this.channel = undefined;
    return new CarkeyError(pending ? 'CK_PROTO_NO_ANSWER' : 'CK_TRANSPORT_DISCONNECTED', detail);
  }

  /** Open the car's RESULT for the last request or command. */
  onResult(bytes: Uint8Array): Result<CommandResult> {
    if (isRefuse(bytes)) {
      this.awaiting = false; // an answer: the car ended the session without acting
      return fail('CK_PROTO_REFUSED');
    }
    const channel = this.channel;
    if (channel === undefined || !this.awaiting) return fail('CK_PROTO_UNEXPECTED_MESSAGE', 'no request outstanding');
    const opened = channel.open(bytes, [MessageType.result]);
    if (!opened.ok) return opened;
    const plain = decodeResultPlain(opened.value.plaintext);
    if (!plain.ok) return plain;
    if (plain.value.requestSeq !== this.lastSentSeq) return fail('CK_PROTO_REPLAY', `result for ${plain.value.requestSeq}, sent ${this.lastSentSeq}`);
    this.awaiting = false;
    switch (plain.value.status) {
      case ResultStatus.ok:
        return ok({ status: 'ok', payload: plain.value.payload });
      case ResultStatus.denied: {
        const category = categoryName(plain.value.category);
        if (category !== 'locked-out') return ok({ status: 'denied', category });
        const seconds = decodeLockoutPayload(plain.value.payload);
        return seconds.ok ? ok({ status: 'denied', category, retryAfterSeconds: seconds.value }) : seconds;
      }
      case ResultStatus.failed:
        return ok({ status: 'failed', payload: plain.value.payload });
      default:
        return fail('CK_CODEC_BAD_VALUE', `result status ${plain.value.status}`);
    }
  }
}

// --- pairing -------------------------------------------------------------------

export interface PairingOutcome {
  readonly carIdentityKey: Uint8Array;
  readonly advSecret: Uint8Array;
  readonly vehicleName: string;
}

export class PhonePairing {
  private ephemeralSecret: Uint8Array | undefined;
  private ephemeralPublic: Uint8Array | undefined;
  private nonce: Uint8Array | undefined;
  private hello: Uint8Array | undefined;
  private challenge: Uint8Array | undefined;
  private peerEphemeral: Uint8Array | undefined;
  private carIdentity: Uint8Array | undefined;
  private th: Uint8Array | undefined;
  private channel: SealedChannel | undefined;
  private readonly identityKey: Uint8Array;

  constructor(private readonly deps: { readonly crypto: Crypto; readonly random: RandomSource } & PhoneIdentity) {
    this.identityKey = identityKeyOf(deps.crypto, deps);
  }

  /** PAIR_HELLO: ephemeral key and a commitment to a nonce revealed later. */
  start(): Uint8Array {
    const { crypto, random } = this.deps;
    const pair = crypto.x25519KeyPair(random(32));
    this.ephemeralSecret = pair.secretKey;
    this.ephemeralPublic = pair.publicKey;
    this.nonce = random(NONCE_LENGTH);
    this.hello = encodePairHello({ ephemeral: pair.publicKey, commitment: pairingCommitment(crypto, pair.publicKey, this.nonce) });
    return this.hello;
  }

  /** Check PAIR_CHALLENGE (signed by the identity key it presents) and return that key. */
  onChallenge(bytes: Uint8Array): Result<{ carIdentityKey: Uint8Array }> {
    if (isRefuse(bytes)) return fail('CK_PROTO_REFUSED', 'is the car in pairing mode? press its pairing button or tap the keycard');
    if (this.hello === undefined || this.challenge !== undefined) return fail('CK_PROTO_UNEXPECTED_MESSAGE');
    const type = classify(bytes);
    if (!type.ok) return type;
    const challenge = decodePairChallenge(bytes);
    if (!challenge.ok) return challenge;
    const { crypto } = this.deps;
    const keyCheck = crypto.checkPublicKey(challenge.value.carIdentity);
    if (!keyCheck.ok) return keyCheck;
    const body = bytes.subarray(0, bytes.length - 64);
    if (!crypto.verify(challenge.value.carIdentity, concatBytes(LABELS.pairChallenge, this.hello, body), challenge.value.signature).ok) {
      return fail('CK_PROTO_BAD_CAR_SIGNATURE', 'pairing challenge');
    }
    this.challenge = bytes;
    this.peerEphemeral = challenge.value.ephemeral;
    this.carIdentity = challenge.value.carIdentity;
    return ok({ carIdentityKey: challenge.value.carIdentity });
  }

  /** PAIR_REVEAL and the 6-digit code to compare with the car's display. */
  reveal(): Result<{ message: Uint8Array; code: string }> {
    const { hello, challenge, nonce, ephemeralSecret, peerEphemeral } = this;
    if (hello === undefined || challenge === undefined || nonce === undefined || ephemeralSecret === undefined || peerEphemeral === undefined) {
      return fail('CK_PROTO_UNEXPECTED_MESSAGE', 'reveal follows a verified pairing challenge');
    }
    const { crypto } = this.deps;
    const message = encodePairReveal(nonce);
    const shared = crypto.sharedSecret(ephemeralSecret, peerEphemeral);
    if (!shared.ok) return shared;
    this.th = crypto.hash(hello, challenge, message);
    this.channel = new SealedChannel(crypto, 'phone', deriveSessionKeys(crypto, LABELS.pairKeys, shared.value, this.th));
    return ok({ message, code: pairingCode(crypto, this.th) });
  }

  /**
   * PAIR_READY: what the new key list must carry (epoch, version) and the
   * car's current list (empty when it has no owner yet). A car that cannot
   * take this pairing says why here, before anyone compares codes.
   */
  onReady(bytes: Uint8Array): Result<PairReadyPlain> {
    if (isRefuse(bytes)) return fail('CK_PROTO_REFUSED', 'the car ended pairing');
    if (this.channel === undefined) return fail('CK_PROTO_UNEXPECTED_MESSAGE');
    const opened = this.channel.open(bytes, [MessageType.pairReady]);
    if (!opened.ok) return opened;
    const ready = decodePairReadyPlain(opened.value.plaintext);
    if (!ready.ok) return ready;
    switch (ready.value.status) {
      case 'ready':
        return ready;
      case 'busy':
        return fail('CK_PAIRING_BUSY');
      case 'ownersFull':
        return fail('CK_KEYLIST_TOO_LARGE', 'the car already has the most owners a key list can hold; revoke one from an owner phone first');
      case 'versionExhausted':
        return fail('CK_KEYLIST_VERSION_EXHAUSTED');
    }
  }

  /** PAIR_CONFIRM, sent only after the person confirmed the codes match. */
  confirm(keyList: Uint8Array, name: string): Uint8Array {
    const { body, toSign, channel } = this.confirmBody(keyList, name);
    return channel.seal(MessageType.pairConfirm, concatBytes(body, this.deps.crypto.sign(seedOf(this.deps), toSign)));
  }

  /** `confirm` signed by the pairing's `signer` (async, e.g. WebCrypto); the signature is checked before it is sent. */
  async confirmWith(keyList: Uint8Array, name: string): Promise<Uint8Array> {
    const signer = this.deps.signer;
    if (signer === undefined) return this.confirm(keyList, name);
    const { body, toSign, channel } = this.confirmBody(keyList, name);
    return channel.seal(MessageType.pairConfirm, concatBytes(body, await checkedSign(this.deps.crypto, signer, toSign)));
  }

  private confirmBody(keyList: Uint8Array, name: string): { body: Uint8Array; toSign: Uint8Array; channel: SealedChannel } {
    const { th, channel } = this;
    if (th === undefined || channel === undefined) throw new CarkeyError('CK_PROTO_UNEXPECTED_MESSAGE', 'confirm follows reveal');
    const body = encodePairConfirmBody({ identity: this.identityKey, name, keyList });
    return { body, toSign: concatBytes(LABELS.pairConfirm, th, body), channel };
  }

  /** PAIR_RESULT: pairing accepted; returns what the phone stores. */
  onResult(bytes: Uint8Array): Result<PairingOutcome> {
    if (isRefuse(bytes)) return fail('CK_PROTO_PAIRING_NOT_CONFIRMED');
    const { channel, carIdentity } = this;
    if (channel === undefined || carIdentity === undefined) return fail('CK_PROTO_UNEXPECTED_MESSAGE');
    const opened = channel.open(bytes, [MessageType.pairResult]);
    if (!opened.ok) return opened;
    const plain = decodePairResultPlain(opened.value.plaintext);
    if (!plain.ok) return plain;
    if (plain.value.status !== 0) return fail('CK_PROTO_PAIRING_NOT_CONFIRMED');
    return ok({ carIdentityKey: carIdentity, advSecret: plain.value.advSecret, vehicleName: plain.value.vehicleName });
  }

  /** The phone's ephemeral public key (for tests and vectors). */
  get ephemeralPublicKey(): Uint8Array | undefined {
    return this.ephemeralPublic;
  }
}
