/**
 * Wire encodings of carkey-cloud (docs/cloud.md "Conventions"): binary values
 * are base64url without padding, keys and ids lowercase hex.
 *
 * Guarantees: `decodeB64` accepts exactly the canonical unpadded base64url
 * text of some byte string (so two different texts never name the same
 * bytes, and a document is stored byte for byte as it was sent) and returns
 * undefined for anything else; it never throws. The patterns are the ones
 * the JSON schemas use, so a value that passed validation decodes.
 */

export const HEX32_PATTERN = '^[0-9a-f]{32}$';
export const HEX64_PATTERN = '^[0-9a-f]{64}$';
export const B64_PATTERN = '^[A-Za-z0-9_-]*$';

const B64 = new RegExp(B64_PATTERN);

export function encodeB64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}

/** Canonical unpadded base64url → bytes; undefined for non-canonical or invalid text. */
export function decodeB64(text: string): Uint8Array | undefined {
  if (!B64.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  if (bytes.toString('base64url') !== text) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A Buffer view of bytes (what the database drivers bind), without a copy. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
