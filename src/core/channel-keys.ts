/**
 * Session keys and the sealed-message envelope shared by both sides.
 *
 * Key derivation: okm = SHA-512(label ‖ X25519 shared secret ‖ transcript hash);
 * phone→car key = okm[0..32], car→phone key = okm[32..64].
 * Nonce (24 bytes) = version ‖ type ‖ seq u32 (the message header) ‖
 * direction u8 (1 phone→car, 2 car→phone) ‖ 17 zero bytes, so the header is
 * authenticated: changing type or seq makes the box fail to open.
 *
 * Guarantees: sequence numbers per direction start at 0 and must arrive
 * strictly in order (CK_PROTO_REPLAY otherwise); a key is never used with the
 * same nonce twice; `open` never throws.
 */
import { concatBytes } from './bytes.js';
import type { Crypto } from './crypto/policy.js';
import { fail, ok, type Result } from './errors.js';
import { decodeSealed, encodeSealed, sealedHeader } from './messages.js';

export type Side = 'phone' | 'car';
const DIRECTION = { phoneToCar: 1, carToPhone: 2 } as const;

export function sealNonce(type: number, seq: number, direction: number): Uint8Array {
  const nonce = new Uint8Array(24);
  nonce.set(sealedHeader(type, seq), 0);
  nonce[6] = direction;
  return nonce;
}

export function deriveSessionKeys(crypto: Crypto, label: Uint8Array, shared: Uint8Array, transcriptHash: Uint8Array): { phoneToCar: Uint8Array; carToPhone: Uint8Array } {
  const okm = crypto.hash(concatBytes(label, shared, transcriptHash));
  return { phoneToCar: okm.slice(0, 32), carToPhone: okm.slice(32, 64) };
}

export class SealedChannel {
  private sendSeq = 0;
  private receiveSeq = 0;
  private readonly sendKey: Uint8Array;
  private readonly receiveKey: Uint8Array;
  private readonly sendDirection: number;
  private readonly receiveDirection: number;

  constructor(
    private readonly crypto: Crypto,
    side: Side,
    keys: { readonly phoneToCar: Uint8Array; readonly carToPhone: Uint8Array },
  ) {
    if (side === 'phone') {
      this.sendKey = keys.phoneToCar;
      this.receiveKey = keys.carToPhone;
      this.sendDirection = DIRECTION.phoneToCar;
      this.receiveDirection = DIRECTION.carToPhone;
    } else {
      this.sendKey = keys.carToPhone;
      this.receiveKey = keys.phoneToCar;
      this.sendDirection = DIRECTION.carToPhone;
      this.receiveDirection = DIRECTION.phoneToCar;
    }
  }

  /** Seal `plaintext` as message `type` with the next send sequence number. */
  seal(type: number, plaintext: Uint8Array): Uint8Array {
    const seq = this.sendSeq++;
    const box = this.crypto.seal(plaintext, sealNonce(type, seq, this.sendDirection), this.sendKey);
    return encodeSealed({ type, seq, box });
  }

  /** Open the next received message; it must be of one of `types` and carry the expected seq. */
  open(bytes: Uint8Array, types: readonly number[]): Result<{ type: number; seq: number; plaintext: Uint8Array }> {
    const sealed = decodeSealed(bytes);
    if (!sealed.ok) return sealed;
    const { type, seq, box } = sealed.value;
    if (!types.includes(type)) return fail('CK_PROTO_UNEXPECTED_MESSAGE', `sealed type ${type}`);
    if (seq !== this.receiveSeq) return fail('CK_PROTO_REPLAY', `seq ${seq}, expected ${this.receiveSeq}`);
    const opened = this.crypto.open(box, sealNonce(type, seq, this.receiveDirection), this.receiveKey);
    if (!opened.ok) return opened;
    this.receiveSeq++;
    return ok({ type, seq, plaintext: opened.value });
  }

  /** Sequence number the next received message must carry. */
  get expectedReceiveSeq(): number {
    return this.receiveSeq;
  }
}
