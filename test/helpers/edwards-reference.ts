/**
 * Test-only reference arithmetic on edwards25519 (RFC 8032 section 5.1), in
 * plain BigInt, written from the RFC and independent of both crypto backends
 * and of the policy's blocklist.
 *
 * Guarantees: exact (not constant-time, not fast; never use outside tests).
 * `decodePoint` follows RFC 8032 5.1.3 in `strict` mode (y >= p and x = 0 with
 * the sign bit set are refused) and ref10/tweetnacl-style leniency in
 * `lenient` mode (y is reduced mod p, the sign bit is ignored when x = 0), so
 * tests can say what a non-canonical encoding *means* to a lenient verifier.
 * Points use extended coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z; the
 * addition law is complete on this curve (a = -1 square, d non-square).
 */

export const P = 2n ** 255n - 19n;
/** Order of the prime-order subgroup. */
export const L = 2n ** 252n + 27742317777372353535851937790883648493n;
/** The full group has order 8L: the cofactor. */
export const COFACTOR = 8n;

export function mod(value: bigint, modulus: bigint = P): bigint {
  const r = value % modulus;
  return r >= 0n ? r : r + modulus;
}

export function powMod(base: bigint, exponent: bigint, modulus: bigint = P): bigint {
  let result = 1n;
  let b = mod(base, modulus);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

function invert(value: bigint): bigint {
  return powMod(value, P - 2n);
}

/** d = -121665 / 121666 mod p */
export const D = mod(-121665n * invert(121666n));
/** sqrt(-1) = 2^((p-1)/4) mod p */
const SQRT_M1 = powMod(2n, (P - 1n) / 4n);

export interface EdPoint {
  readonly X: bigint;
  readonly Y: bigint;
  readonly Z: bigint;
  readonly T: bigint;
}

export const IDENTITY: EdPoint = { X: 0n, Y: 1n, Z: 1n, T: 0n };

function fromAffine(x: bigint, y: bigint): EdPoint {
  return { X: x, Y: y, Z: 1n, T: mod(x * y) };
}

export function toAffine(point: EdPoint): { x: bigint; y: bigint } {
  const zInv = invert(point.Z);
  return { x: mod(point.X * zInv), y: mod(point.Y * zInv) };
}

/** True when the affine point satisfies -x^2 + y^2 = 1 + d x^2 y^2. */
export function isOnCurve(point: EdPoint): boolean {
  const { x, y } = toAffine(point);
  const x2 = mod(x * x);
  const y2 = mod(y * y);
  return mod(y2 - x2 - 1n - D * x2 * y2) === 0n;
}

/** RFC 8032 5.1.4 addition in extended coordinates (complete). */
export function add(p1: EdPoint, p2: EdPoint): EdPoint {
  const a = mod((p1.Y - p1.X) * (p2.Y - p2.X));
  const b = mod((p1.Y + p1.X) * (p2.Y + p2.X));
  const c = mod(2n * p1.T * p2.T * D);
  const d = mod(2n * p1.Z * p2.Z);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { X: mod(e * f), Y: mod(g * h), Z: mod(f * g), T: mod(e * h) };
}

export function negate(point: EdPoint): EdPoint {
  return { X: mod(-point.X), Y: point.Y, Z: point.Z, T: mod(-point.T) };
}

/** Double-and-add; the scalar is used as is (not reduced, not clamped). */
export function multiply(point: EdPoint, scalar: bigint): EdPoint {
  if (scalar < 0n) throw new RangeError('negative scalar');
  let result = IDENTITY;
  let addend = point;
  let k = scalar;
  while (k > 0n) {
    if (k & 1n) result = add(result, addend);
    addend = add(addend, addend);
    k >>= 1n;
  }
  return result;
}

export function pointsEqual(p1: EdPoint, p2: EdPoint): boolean {
  return mod(p1.X * p2.Z - p2.X * p1.Z) === 0n && mod(p1.Y * p2.Z - p2.Y * p1.Z) === 0n;
}

/** [8]P = O: the point lies in the 8-torsion subgroup (orders 1, 2, 4 or 8). */
export function hasSmallOrder(point: EdPoint): boolean {
  return pointsEqual(multiply(point, COFACTOR), IDENTITY);
}

/** Smallest n in {1, 2, 4, 8} with [n]P = O, or undefined if P is not of small order. */
export function smallOrder(point: EdPoint): 1 | 2 | 4 | 8 | undefined {
  for (const n of [1, 2, 4, 8] as const) if (pointsEqual(multiply(point, BigInt(n)), IDENTITY)) return n;
  return undefined;
}

export function bytesToNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n;
}

export function numberToBytesLE(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = value;
  for (let i = 0; i < length; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new RangeError('value does not fit');
  return out;
}

/** x from y and the sign bit (RFC 8032 5.1.3 steps 2-4); undefined when x^2 has no root. */
function recoverX(y: bigint, sign: number): bigint | undefined {
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * powMod(v, 3n) * powMod(u * powMod(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === u) {
    // x is a root
  } else if (vx2 === mod(-u)) {
    x = mod(x * SQRT_M1);
  } else {
    return undefined;
  }
  if (x === 0n) return 0n;
  return Number(x & 1n) === sign ? x : P - x;
}

export type DecodeMode = 'strict' | 'lenient';

/**
 * Decode a 32-byte point encoding. `strict`: RFC 8032 5.1.3 (refuses y >= p
 * and x = 0 with the sign bit set). `lenient`: what a ref10-style verifier
 * computes (y reduced mod p; sign ignored when x = 0). Undefined when the
 * encoding is not a point at all (x^2 has no square root) or is refused.
 */
export function decodePoint(encoded: Uint8Array, mode: DecodeMode = 'strict'): EdPoint | undefined {
  if (encoded.length !== 32) return undefined;
  const sign = ((encoded[31] ?? 0) >> 7) & 1;
  const masked = Uint8Array.from(encoded);
  masked[31] = (masked[31] ?? 0) & 0x7f;
  let y = bytesToNumberLE(masked);
  if (y >= P) {
    if (mode === 'strict') return undefined;
    y -= P;
  }
  const x = recoverX(y, sign);
  if (x === undefined) return undefined;
  if (x === 0n && sign === 1 && mode === 'strict') return undefined;
  return fromAffine(x, y);
}

export function encodePoint(point: EdPoint): Uint8Array {
  const { x, y } = toAffine(point);
  const out = numberToBytesLE(y, 32);
  out[31] = (out[31] ?? 0) | (Number(x & 1n) << 7);
  return out;
}

/** True when the encoding is the unique RFC 8032 encoding of a curve point. */
export function isCanonicalEncoding(encoded: Uint8Array): boolean {
  const point = decodePoint(encoded, 'strict');
  return point !== undefined && encodePoint(point).every((byte, i) => byte === encoded[i]);
}

/** The base point B: y = 4/5, x even. */
export const BASE: EdPoint = (() => {
  const y = mod(4n * invert(5n));
  const x = recoverX(y, 0);
  if (x === undefined) throw new Error('base point does not decode');
  return fromAffine(x, y);
})();

/**
 * The eight points of the 8-torsion subgroup, derived without any table: for
 * a point Q of the full group, [L]Q lies in the torsion subgroup (which is
 * cyclic of order 8); the first one found with order exactly 8 generates the
 * whole subgroup, whose elements are its multiples [0..7].
 */
export function torsionSubgroup(): EdPoint[] {
  for (let y = 2n; y < 1000n; y++) {
    const x = recoverX(y, 0);
    if (x === undefined) continue;
    const generator = multiply(fromAffine(x, y), L);
    if (smallOrder(generator) !== 8) continue;
    const points: EdPoint[] = [];
    let current = IDENTITY;
    for (let k = 0; k < 8; k++) {
      points.push(current);
      current = add(current, generator);
    }
    return points;
  }
  throw new Error('no point of order 8 found');
}
