/**
 * The car's entry decision, bound to local state only.
 *
 * Guarantees (DESIGN invariant 1, "no network on the entry path"): this
 * module imports only the pure core; it cannot reach the cloud client, HTTP
 * or sockets (the lint rule for src/vehicle/authorizer*.ts and the test
 * test/vehicle/no-network.test.ts enforce it). The decision is the core's
 * pure `decide` over the stored key list, the trusted time and proximity
 * facts; the PIN is compared in constant time.
 */
import { equalBytes, utf8 } from '../core/bytes.js';
import { decide, type Credential, type Decision, type ProximityFacts, type Recognition } from '../core/authorize.js';
import type { KeyList } from '../core/credentials.js';
import type { Crypto } from '../core/crypto/policy.js';
import type { CommandName } from '../core/roles.js';

export interface AuthorizerPolicy {
  readonly relayBoundMs: number;
  readonly startPin: string | undefined;
}

export interface AuthorizationRequest {
  readonly vehicleId: Uint8Array;
  readonly keyList: KeyList | undefined;
  readonly trustedNow: number;
  readonly peerKey: Uint8Array;
  readonly credential: Credential;
  readonly command: CommandName;
  readonly proximity: ProximityFacts;
  /** PIN given with `start`, if any. */
  readonly pin: string | undefined;
  /** This key's PIN is locked out (PinGuard): every PIN is refused as locked out, the right one too. */
  readonly pinLocked?: boolean;
}

export function checkPin(crypto: Crypto, expected: string | undefined, given: string | undefined): 'ok' | 'wrong' | undefined {
  if (expected === undefined || given === undefined) return undefined;
  // Hash both so the comparison is constant-time whatever the lengths.
  return equalBytes(crypto.hash(utf8(expected)), crypto.hash(utf8(given))) ? 'ok' : 'wrong';
}

/** `recognition`: the result of `recognize` for this same request, if the caller has it. */
export function authorize(crypto: Crypto, policy: AuthorizerPolicy, request: AuthorizationRequest, recognition?: Recognition): Decision {
  return decide(crypto, {
    vehicleId: request.vehicleId,
    keyList: request.keyList,
    peerKey: request.peerKey,
    credential: request.credential,
    command: request.command,
    now: request.trustedNow,
    proximity: request.proximity,
    policy: { relayBoundMs: policy.relayBoundMs, startPinRequired: policy.startPin !== undefined },
    pin: request.pinLocked === true && policy.startPin !== undefined ? 'locked' : checkPin(crypto, policy.startPin, request.pin),
  }, recognition);
}
