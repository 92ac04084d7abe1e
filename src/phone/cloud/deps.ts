/**
 * What the phone's cloud operations (src/phone/cloud/*) need, injected:
 * crypto, RNG, wall clock, sleep, the signed HTTP client (src/cloud-client)
 * and the key store. No globals, so every operation runs in a unit test
 * against an in-process server and in the CLI against a real one.
 *
 * Also the one list of cloud failures that mean "the cloud is not reachable
 * right now" (worth a retry of an idempotent read, never of a write).
 */
import type { CloudClient } from '../../cloud-client/client.js';
import type { Clock, Crypto, RandomSource } from '../../core/crypto/index.js';
import type { CarkeyError, ErrorCode } from '../../core/errors.js';
import type { VehicleStore } from '../client.js';

export interface PhoneCloudDeps {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  /** wall clock, ms since the Unix epoch */
  readonly clock: Clock;
  readonly sleep: (ms: number) => Promise<void>;
  /** signed with this phone's identity */
  readonly client: CloudClient;
  readonly store: VehicleStore;
  /** one line of progress for a person (stderr in the CLI) */
  readonly progress?: (line: string) => void;
}

const TRANSIENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['CK_CLOUD_UNAVAILABLE', 'CK_CLOUD_TIMEOUT', 'CK_CLOUD_SERVER_ERROR', 'CK_CLOUD_RATE_LIMITED', 'CK_CLOUD_STORE']);

/** The cloud is down, slow or overloaded (as opposed to refusing the request). */
export function isCloudTransient(error: CarkeyError): boolean {
  return TRANSIENT.has(error.code);
}
