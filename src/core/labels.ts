/**
 * Domain-separation labels. Every signature and every derived key in carkey
 * starts its signed/hashed input with exactly one of these labels, so a
 * signature made for one purpose can never be replayed as another.
 *
 * Encoding on the wire and in hashes: the ASCII bytes of the label followed
 * by one 0x00 byte (labels never contain 0x00). Changing a label is a
 * protocol version change.
 */
import { utf8 } from './bytes.js';

const LABEL_TEXT = {
  /** car signs HELLO ‖ CHALLENGE body */
  challenge: 'carkey/v1/challenge',
  /** phone signs the transcript of its REQUEST */
  request: 'carkey/v1/request',
  /** session key derivation */
  sessionKeys: 'carkey/v1/session-keys',
  /** owner signs a grant */
  grant: 'carkey/v1/grant',
  /** owner signs a key list */
  keyList: 'carkey/v1/key-list',
  /** vehicle id from the car's identity key */
  vehicleId: 'carkey/v1/vehicle-id',
  /** rotating advertising identifier */
  advertising: 'carkey/v1/adv-id',
  /** pairing: commitment to the phone's nonce */
  pairCommit: 'carkey/v1/pair-commit',
  /** pairing: car signs the pairing challenge */
  pairChallenge: 'carkey/v1/pair-challenge',
  /** pairing: 6-digit comparison code */
  pairCode: 'carkey/v1/pair-code',
  /** pairing: phone signs its confirmation */
  pairConfirm: 'carkey/v1/pair-confirm',
  /** pairing: session keys */
  pairKeys: 'carkey/v1/pair-keys',
  /** vehicle signs an audit checkpoint */
  auditCheckpoint: 'carkey/v1/audit-checkpoint',
  /** audit chain link hash */
  auditEntry: 'carkey/v1/audit-entry',
  /** key id (short fingerprint of a public key) */
  keyId: 'carkey/v1/key-id',
  /** a caller signs one HTTP request to carkey-cloud (not on the BLE wire) */
  cloudRequest: 'carkey/v1/cloud-request',
  /** car signs a statement of its identity and current key list (registration) */
  vehicleStatement: 'carkey/v1/vehicle-statement',
  /** key derivation of a sealed box to an Ed25519 identity */
  sealedBox: 'carkey/v1/sealed-box',
  /** phone signs a remote command relayed by the cloud */
  remoteCommand: 'carkey/v1/remote-command',
  /** car signs the result of a remote command */
  remoteResult: 'carkey/v1/remote-result',
} as const;

export type LabelName = keyof typeof LABEL_TEXT;

function encodeLabel(text: string): Uint8Array {
  const bytes = utf8(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

export const LABELS: Readonly<Record<LabelName, Uint8Array>> = Object.fromEntries(
  Object.entries(LABEL_TEXT).map(([name, text]) => [name, encodeLabel(text)]),
) as Record<LabelName, Uint8Array>;

export const LABEL_STRINGS: Readonly<Record<LabelName, string>> = LABEL_TEXT;
