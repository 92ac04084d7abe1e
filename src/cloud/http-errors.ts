/**
 * How carkey-cloud answers a failure: `{"error":{"code","message","details"}}`
 * with the status docs/cloud.md gives for the code.
 *
 * Guarantees:
 * - Every answer is built from a catalog code (src/core/errors.ts); the
 *   status comes from `statusOf(code)` alone, so the same code always means
 *   the same status.
 * - `forbidden()` is one fixed answer (same code, message and no details)
 *   whether the resource is missing or the caller may not use it, so a
 *   caller cannot tell which (no enumeration).
 * - `refusedDocument(error)` turns a core verification failure into 400 (the
 *   document does not decode) or 409 (it decodes but does not follow the
 *   stored one), with the core code in `details.reason`.
 * - Framework errors (schema validation, body limit, media type, bad JSON,
 *   bad URL) become 400/413 CK_CLOUD_BAD_REQUEST; unknown failures become
 *   CK_INTERNAL (500) and are the only 5xx besides CK_CLOUD_STORE (503).
 */
import { CarkeyError, type ErrorCode } from '../core/errors.js';

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly details: Readonly<Record<string, unknown>> };
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  CK_CLOUD_BAD_REQUEST: 400,
  CK_CLOUD_AUTH_MISSING: 401,
  CK_CLOUD_AUTH_STALE: 401,
  CK_CLOUD_AUTH_BAD_SIGNATURE: 401,
  CK_CLOUD_AUTH_REPLAY: 401,
  CK_CLOUD_FORBIDDEN: 403,
  CK_CLOUD_CONFLICT: 409,
  CK_CLOUD_RATE_LIMITED: 429,
  CK_CLOUD_SERVER_ERROR: 500,
  CK_CLOUD_STORE: 503,
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500;
}

export function errorBody(error: CarkeyError): ErrorBody {
  return { error: { code: error.code, message: error.message, details: error.details ?? {} } };
}

/** The one answer for "missing" and "not yours". */
export function forbidden(): CarkeyError {
  return new CarkeyError('CK_CLOUD_FORBIDDEN');
}

export function badRequest(detail: string, details?: Record<string, unknown>): CarkeyError {
  return new CarkeyError('CK_CLOUD_BAD_REQUEST', detail, details);
}

export function conflict(reason: string, detail: string, details: Record<string, unknown> = {}): CarkeyError {
  return new CarkeyError('CK_CLOUD_CONFLICT', detail, { reason, ...details });
}

/** Codes that mean "this is not a well-formed document" (400) rather than "it does not follow" (409). */
const DECODE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CK_CODEC_TRUNCATED',
  'CK_CODEC_TRAILING_BYTES',
  'CK_CODEC_BAD_VERSION',
  'CK_CODEC_BAD_TYPE',
  'CK_CODEC_BAD_VALUE',
  'CK_CODEC_TOO_LARGE',
  'CK_KEYLIST_TOO_LARGE',
  'CK_KEYLIST_EMPTY_OWNERS',
  'CK_CRYPTO_BAD_LENGTH',
]);

/** A core refusal of a document, as the cloud answers it. */
export function refusedDocument(what: string, error: CarkeyError): CarkeyError {
  const details = { reason: error.code, ...(error.details ?? {}) };
  if (DECODE_CODES.has(error.code)) return new CarkeyError('CK_CLOUD_BAD_REQUEST', `${what}: ${error.message}`, details);
  return new CarkeyError('CK_CLOUD_CONFLICT', `${what}: ${error.message}`, details);
}

interface FrameworkError {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly validation?: unknown;
  readonly message?: unknown;
}

function asFrameworkError(value: unknown): FrameworkError {
  return typeof value === 'object' && value !== null ? value : {};
}

/** Map anything a handler or the framework threw to (status, catalog error). */
export function classifyError(thrown: unknown): { status: number; error: CarkeyError } {
  if (thrown instanceof CarkeyError) {
    // A core code that reached the HTTP layer unwrapped is the caller's document at fault.
    if (STATUS[thrown.code] === undefined && thrown.code !== 'CK_INTERNAL') {
      const wrapped = refusedDocument('document', thrown);
      return { status: statusOf(wrapped.code), error: wrapped };
    }
    return { status: statusOf(thrown.code), error: thrown };
  }
  const framework = asFrameworkError(thrown);
  const message = typeof framework.message === 'string' ? framework.message.slice(0, 300) : 'bad request';
  if (framework.validation !== undefined) return { status: 400, error: badRequest(message, { reason: 'schema' }) };
  const code = typeof framework.code === 'string' ? framework.code : '';
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, error: badRequest('the body is larger than the limit', { reason: 'body-limit' }) };
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { status: 400, error: badRequest('send application/json', { reason: 'media-type' }) };
  const status = typeof framework.statusCode === 'number' ? framework.statusCode : 500;
  if (code.startsWith('FST_') && status >= 400 && status < 500) return { status: 400, error: badRequest(message, { reason: code }) };
  if (status >= 400 && status < 500) return { status: 400, error: badRequest(message) };
  return { status: 500, error: new CarkeyError('CK_INTERNAL', 'the cloud failed to answer this request') };
}
