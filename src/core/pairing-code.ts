/**
 * Pairing derivations shared by car and phone: the commitment to the phone's
 * nonce and the 6-digit comparison code.
 *
 * commitment = SHA-512(LABELS.pairCommit ‖ phone ephemeral ‖ phone nonce)[0..32]
 * code = (u32 big-endian of SHA-512(LABELS.pairCode ‖ transcript hash)[0..4]) mod 10^6,
 *        zero-padded to 6 digits.
 * The phone commits before it sees the car's nonce, so a man in the middle
 * cannot search for keys that make both codes match (as in BLE numeric comparison).
 */
import type { Crypto } from './crypto/policy.js';
import { LABELS } from './labels.js';

export function pairingCommitment(crypto: Crypto, phoneEphemeral: Uint8Array, phoneNonce: Uint8Array): Uint8Array {
  return crypto.hash(LABELS.pairCommit, phoneEphemeral, phoneNonce).slice(0, 32);
}

export function pairingCode(crypto: Crypto, transcriptHash: Uint8Array): string {
  const digest = crypto.hash(LABELS.pairCode, transcriptHash);
  const value = (((digest[0] ?? 0) << 24) | ((digest[1] ?? 0) << 16) | ((digest[2] ?? 0) << 8) | (digest[3] ?? 0)) >>> 0;
  return (value % 1_000_000).toString().padStart(6, '0');
}
