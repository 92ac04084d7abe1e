/**
 * Request signatures for carkey-cloud: no passwords, no bearer tokens. Every
 * write and every private read is signed by the caller's Ed25519 identity
 * (a car signs with its identity key, a phone with its own).
 *
 * Signed bytes (docs/cloud.md "Authentication", docs/protocol.md §17.1):
 *   L("carkey/v1/cloud-request") ‖ vbytes(method, upper case ASCII) ‖
 *   vbytes(path, as sent, without the query) ‖ vbytes(query, as sent, without
 *   "?", "" when none) ‖ SHA-512(body bytes) ‖ u64 time ms ‖ nonce (16 bytes)
 * Headers: x-carkey-key (64 hex, the caller's public key), x-carkey-time
 * (decimal ms), x-carkey-nonce (32 hex), x-carkey-signature (128 hex).
 *
 * Guarantees: `verifyRequestSignature` checks header syntax, the key
 * (canonical, not small order), the replay window (|server time − time| ≤
 * window) and the signature, in that order, and never throws; the nonce
 * check (seen before within the window?) is the caller's, because it needs
 * storage. Pure: clock and randomness are parameters.
 */
import { fromHex, toHex } from './bytes.js';
import { Writer } from './codec.js';
import type { RandomSource } from './crypto/backend.js';
import type { Crypto } from './crypto/policy.js';
import { fail, ok, type Result } from './errors.js';
import { LABELS } from './labels.js';

export const CLOUD_HEADERS = {
  key: 'x-carkey-key',
  time: 'x-carkey-time',
  nonce: 'x-carkey-nonce',
  signature: 'x-carkey-signature',
} as const;

/** Requests whose time is further than this from the server's clock are refused. */
export const DEFAULT_REPLAY_WINDOW_MS = 120_000;
export const REQUEST_NONCE_LENGTH = 16;
const MAX_PATH = 2048;
const MAX_QUERY = 2048;

export interface RequestToSign {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly body: Uint8Array;
}

export type SignedHeaders = Readonly<Record<(typeof CLOUD_HEADERS)[keyof typeof CLOUD_HEADERS], string>>;

/** The bytes a caller signs for one request. Throws CK_CODEC_TOO_LARGE for an oversized path or query. */
export function requestSigningBytes(crypto: Crypto, request: RequestToSign, timeMs: number, nonce: Uint8Array): Uint8Array {
  const encoder = new TextEncoder();
  return new Writer()
    .raw(LABELS.cloudRequest)
    .vbytes(encoder.encode(request.method.toUpperCase()), 16, 'method')
    .vbytes(encoder.encode(request.path), MAX_PATH, 'path')
    .vbytes(encoder.encode(request.query), MAX_QUERY, 'query')
    .raw(crypto.hash(request.body))
    .time(timeMs)
    .fixed(nonce, REQUEST_NONCE_LENGTH, 'nonce')
    .finish();
}

/** Sign one request: the headers to send with it. */
export function signRequest(crypto: Crypto, random: RandomSource, seed: Uint8Array, request: RequestToSign, timeMs: number): SignedHeaders {
  const nonce = random(REQUEST_NONCE_LENGTH);
  const signature = crypto.sign(seed, requestSigningBytes(crypto, request, Math.floor(timeMs), nonce));
  return {
    [CLOUD_HEADERS.key]: toHex(crypto.publicKeyFromSeed(seed)),
    [CLOUD_HEADERS.time]: String(Math.floor(timeMs)),
    [CLOUD_HEADERS.nonce]: toHex(nonce),
    [CLOUD_HEADERS.signature]: toHex(signature),
  };
}

export interface VerifiedCaller {
  readonly publicKey: Uint8Array;
  readonly nonce: Uint8Array;
  readonly timeMs: number;
}

/** Header values as a server framework hands them over (possibly repeated or absent). */
export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

function single(headers: HeaderBag, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Check a request's signature headers. Failures are CK_CLOUD_AUTH_MISSING
 * (no or malformed headers), CK_CLOUD_AUTH_STALE (outside the replay window)
 * or CK_CLOUD_AUTH_BAD_SIGNATURE (bad key or signature).
 */
export function verifyRequestSignature(crypto: Crypto, headers: HeaderBag, request: RequestToSign, serverNowMs: number, windowMs = DEFAULT_REPLAY_WINDOW_MS): Result<VerifiedCaller> {
  const keyHex = single(headers, CLOUD_HEADERS.key);
  const timeText = single(headers, CLOUD_HEADERS.time);
  const nonceHex = single(headers, CLOUD_HEADERS.nonce);
  const signatureHex = single(headers, CLOUD_HEADERS.signature);
  if (keyHex === undefined || timeText === undefined || nonceHex === undefined || signatureHex === undefined) {
    return fail('CK_CLOUD_AUTH_MISSING', `send ${Object.values(CLOUD_HEADERS).join(', ')}`);
  }
  const publicKey = /^[0-9a-f]{64}$/.test(keyHex) ? fromHex(keyHex) : undefined;
  const nonce = /^[0-9a-f]{32}$/.test(nonceHex) ? fromHex(nonceHex) : undefined;
  const signature = /^[0-9a-f]{128}$/.test(signatureHex) ? fromHex(signatureHex) : undefined;
  const timeMs = /^[0-9]{1,16}$/.test(timeText) ? Number(timeText) : Number.NaN;
  if (publicKey === undefined || nonce === undefined || signature === undefined || !Number.isSafeInteger(timeMs)) {
    return fail('CK_CLOUD_AUTH_MISSING', 'malformed signature headers (lowercase hex, decimal ms)');
  }
  if (Math.abs(serverNowMs - timeMs) > windowMs) return fail('CK_CLOUD_AUTH_STALE', `request time is more than ${windowMs} ms from the server's clock`);
  if (!crypto.checkPublicKey(publicKey).ok) return fail('CK_CLOUD_AUTH_BAD_SIGNATURE', 'caller key');
  let signed: Uint8Array;
  try {
    signed = requestSigningBytes(crypto, request, timeMs, nonce);
  } catch {
    return fail('CK_CLOUD_AUTH_BAD_SIGNATURE', 'request too large to sign');
  }
  if (!crypto.verify(publicKey, signed, signature).ok) return fail('CK_CLOUD_AUTH_BAD_SIGNATURE');
  return ok({ publicKey, nonce, timeMs });
}
