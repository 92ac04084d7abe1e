/**
 * The one HTTP client for carkey-cloud (docs/cloud.md), used by the car's
 * sync worker and by the phone: signs every request with the caller's
 * identity (src/core/cloud-auth.ts), bounds every wait, and maps every
 * failure to a catalog error.
 *
 * Guarantees:
 * - Every request has a deadline (`timeoutMs`, plus the long-poll wait);
 *   nothing here waits forever, whatever the server does (hang, trickle).
 * - Answers are read up to MAX_RESPONSE_BYTES and parsed defensively: a
 *   malformed, truncated or oversized body is CK_CLOUD_BAD_RESPONSE, a
 *   refused request carries the server's catalog code when it is one
 *   (CK_CLOUD_FORBIDDEN, CK_CLOUD_CONFLICT with details.reason, …), 5xx is
 *   CK_CLOUD_SERVER_ERROR, no connection is CK_CLOUD_UNAVAILABLE, a deadline
 *   is CK_CLOUD_TIMEOUT. Nothing throws anything but a CarkeyError.
 * - Documents are returned as bytes; verifying them is the caller's job,
 *   with src/core (the cloud is untrusted).
 * - It is never imported by the car's entry path (authorizer, link handler).
 * - It runs in a browser as in Node (the web app uses it): only fetch,
 *   streams and AbortSignal, the body read through a stream reader; the
 *   caller's identity is a seed or an async Signer (a non-extractable
 *   WebCrypto key), whose signature is checked before it is sent.
 */
import { fromBase64Url, fromHex, toBase64Url, toHex } from '../core/bytes.js';
import { CLOUD_HEADERS, REQUEST_NONCE_LENGTH, requestSigningBytes, signRequest, type RequestToSign, type SignedHeaders } from '../core/cloud-auth.js';
import type { Clock, Crypto, RandomSource } from '../core/crypto/index.js';
import { CarkeyError, isErrorCode } from '../core/errors.js';
import { checkedSign, type Signer } from '../core/signer.js';

export const MAX_RESPONSE_BYTES = 1024 * 1024;
export const DEFAULT_CLOUD_TIMEOUT_MS = 10_000;
/** Longest long-poll the cloud holds (docs/cloud.md). */
export const MAX_WAIT_SECONDS = 60;

interface CloudClientBase {
  /** e.g. http://127.0.0.1:8443 (no trailing path) */
  readonly baseUrl: string;
  readonly crypto: Crypto;
  readonly random: RandomSource;
  /** wall clock ms, for the request time */
  readonly clock: Clock;
  readonly timeoutMs?: number;
  /** injectable for tests (default: global fetch) */
  readonly fetch?: typeof fetch;
}

/** Who signs the requests: a seed (CLI, car) or a Signer (the web app's device-bound key). */
export type CloudClientOptions = CloudClientBase &
  (
    | {
        /** the caller's Ed25519 seed; read at each request, so it can be wiped by the owner of the bytes */
        readonly seed: () => Uint8Array;
        readonly signer?: undefined;
      }
    | { readonly signer: Signer; readonly seed?: undefined }
  );

export interface CloudAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

export interface KeyListAnswer {
  readonly keyList: Uint8Array;
  readonly epoch: number;
  readonly version: number;
  readonly etag: string;
}

export interface MailboxItem {
  readonly id: string;
  readonly vehicleId: Uint8Array;
  readonly box: Uint8Array;
  readonly postedAt: number;
  readonly expiresAt: number;
  readonly sender: Uint8Array;
}

export interface PendingCommand {
  readonly commandId: Uint8Array;
  readonly box: Uint8Array;
  readonly caller: Uint8Array;
  readonly expiresAt: number;
}

function badResponse(detail: string): CarkeyError {
  return new CarkeyError('CK_CLOUD_BAD_RESPONSE', detail);
}

function field(body: unknown, name: string): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badResponse('expected a JSON object');
  return (body as Record<string, unknown>)[name];
}

function stringField(body: unknown, name: string): string {
  const value = field(body, name);
  if (typeof value !== 'string') throw badResponse(`${name} must be a string`);
  return value;
}

function numberField(body: unknown, name: string): number {
  const value = field(body, name);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw badResponse(`${name} must be a non-negative integer`);
  return value;
}

function bytesField(body: unknown, name: string): Uint8Array {
  const bytes = fromBase64Url(stringField(body, name));
  if (bytes === undefined) throw badResponse(`${name} is not base64url`);
  return bytes;
}

function hexField(body: unknown, name: string, length: number): Uint8Array {
  const text = stringField(body, name);
  const bytes = text.length === length * 2 ? fromHex(text) : undefined;
  if (bytes === undefined) throw badResponse(`${name} must be ${length * 2} hex digits`);
  return bytes;
}

function arrayField(body: unknown, name: string): unknown[] {
  const value = field(body, name);
  if (!Array.isArray(value)) throw badResponse(`${name} must be an array`);
  return value;
}

function waitSeconds(wait: number | undefined): number | undefined {
  if (wait === undefined) return undefined;
  return Math.max(1, Math.min(MAX_WAIT_SECONDS, Math.floor(wait)));
}

async function readCapped(response: Response): Promise<Uint8Array> {
  const stream = response.body;
  if (stream === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  // A reader, not `for await`: not every browser makes a ReadableStream async-iterable.
  const reader = (stream as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw badResponse(`answer larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

export class CloudClient {
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly base: string;

  constructor(private readonly options: CloudClientOptions) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CLOUD_TIMEOUT_MS;
    // Called as a plain function: a browser's fetch throws "Illegal invocation" when called as a method of another object.
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new CarkeyError('CK_USAGE', `cloud URL ${JSON.stringify(options.baseUrl)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CarkeyError('CK_USAGE', 'the cloud URL must be http:// or https://');
    this.base = url.origin + url.pathname.replace(/\/+$/, '');
  }

  get baseUrl(): string {
    return this.base;
  }

  /**
   * One signed request. `accept` lists the statuses that are answers (not
   * errors); any other status becomes a CarkeyError.
   */
  async request(method: string, path: string, options: { query?: Record<string, string>; body?: unknown; headers?: Record<string, string>; waitS?: number; accept?: readonly number[]; signal?: AbortSignal } = {}): Promise<CloudAnswer> {
    const query = new URLSearchParams(options.query ?? {}).toString();
    const bodyText = options.body === undefined ? '' : JSON.stringify(options.body);
    const bodyBytes = new TextEncoder().encode(bodyText);
    const fullPath = new URL(this.base).pathname.replace(/\/+$/, '') + path;
    const signed = await this.sign({ method, path: fullPath, query, body: bodyBytes }, this.options.clock());
    const deadline = this.timeoutMs + (options.waitS ?? 0) * 1000;
    const timeout = AbortSignal.timeout(deadline);
    const signal = options.signal === undefined ? timeout : AbortSignal.any([timeout, options.signal]);
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.base}${path}${query === '' ? '' : `?${query}`}`, {
        method,
        headers: { ...signed, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
        ...(options.body === undefined ? {} : { body: bodyText }),
        signal,
      });
    } catch (error) {
      throw this.transportError(error, timeout, deadline);
    }
    let raw: Uint8Array;
    try {
      raw = await readCapped(response);
    } catch (error) {
      if (error instanceof CarkeyError) throw error;
      throw this.transportError(error, timeout, deadline);
    }
    let body: unknown = undefined;
    if (raw.length > 0) {
      try {
        body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw)) as unknown;
      } catch {
        if (response.status < 300) throw badResponse('the answer is not JSON');
      }
    }
    const accepted = options.accept ?? [200];
    if (accepted.includes(response.status)) return { status: response.status, headers: response.headers, body };
    throw this.refusal(response.status, body);
  }

  private async sign(request: RequestToSign, timeMs: number): Promise<SignedHeaders> {
    const { crypto, random } = this.options;
    if (this.options.seed !== undefined) return signRequest(crypto, random, this.options.seed(), request, timeMs);
    const signer = this.options.signer;
    const time = Math.floor(timeMs);
    const nonce = random(REQUEST_NONCE_LENGTH);
    const signature = await checkedSign(crypto, signer, requestSigningBytes(crypto, request, time, nonce));
    return {
      [CLOUD_HEADERS.key]: toHex(signer.publicKey),
      [CLOUD_HEADERS.time]: String(time),
      [CLOUD_HEADERS.nonce]: toHex(nonce),
      [CLOUD_HEADERS.signature]: toHex(signature),
    };
  }

  private transportError(error: unknown, timeout: AbortSignal, deadline: number): CarkeyError {
    if (timeout.aborted) return new CarkeyError('CK_CLOUD_TIMEOUT', `no complete answer from ${this.base} within ${deadline} ms`);
    const detail = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
    return new CarkeyError('CK_CLOUD_UNAVAILABLE', `${this.base}: ${detail}`);
  }

  private refusal(status: number, body: unknown): CarkeyError {
    if (status >= 500) return new CarkeyError('CK_CLOUD_SERVER_ERROR', `HTTP ${status}`);
    let code: string | undefined;
    let message: string | undefined;
    let details: Record<string, unknown> | undefined;
    try {
      const error = field(body, 'error');
      code = stringField(error, 'code');
      message = stringField(error, 'message');
      const rawDetails = field(error, 'details');
      if (typeof rawDetails === 'object' && rawDetails !== null && !Array.isArray(rawDetails)) details = rawDetails as Record<string, unknown>;
    } catch {
      // not a catalog error body
    }
    if (code !== undefined && isErrorCode(code) && code.startsWith('CK_CLOUD_')) return new CarkeyError(code, message === undefined ? `HTTP ${status}` : `HTTP ${status}: ${message}`, { status, ...details });
    if (status === 429) return new CarkeyError('CK_CLOUD_RATE_LIMITED', `HTTP ${status}`);
    return new CarkeyError('CK_CLOUD_BAD_RESPONSE', `HTTP ${status} without a carkey error`);
  }

  // --- typed API (docs/cloud.md "Resources") ----------------------------------

  async time(): Promise<number> {
    return numberField((await this.request('GET', '/v1/time')).body, 'time');
  }

  async registerVehicle(vehicleId: Uint8Array, statement: Uint8Array): Promise<{ epoch: number; version: number }> {
    const answer = await this.request('PUT', `/v1/vehicles/${toHex(vehicleId)}`, { body: { statement: toBase64Url(statement) } });
    return { epoch: numberField(answer.body, 'epoch'), version: numberField(answer.body, 'version') };
  }

  /** The current key list, or 'unchanged' when `etag` is still current (after up to `waitS` seconds of long-poll). */
  async getKeyList(vehicleId: Uint8Array, options: { etag?: string; waitS?: number; signal?: AbortSignal } = {}): Promise<KeyListAnswer | 'unchanged'> {
    const waitS = options.etag === undefined ? undefined : waitSeconds(options.waitS);
    const answer = await this.request('GET', `/v1/vehicles/${toHex(vehicleId)}/key-list`, {
      ...(waitS === undefined ? {} : { query: { wait: String(waitS) }, waitS }),
      ...(options.etag === undefined ? {} : { headers: { 'if-none-match': options.etag } }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      accept: [200, 304],
    });
    if (answer.status === 304) return 'unchanged';
    const etag = answer.headers.get('etag');
    const epoch = numberField(answer.body, 'epoch');
    const version = numberField(answer.body, 'version');
    return { keyList: bytesField(answer.body, 'keyList'), epoch, version, etag: etag ?? `"${epoch}.${version}"` };
  }

  async publishKeyList(vehicleId: Uint8Array, keyList: Uint8Array): Promise<{ epoch: number; version: number }> {
    const answer = await this.request('POST', `/v1/vehicles/${toHex(vehicleId)}/key-list`, { body: { keyList: toBase64Url(keyList) } });
    return { epoch: numberField(answer.body, 'epoch'), version: numberField(answer.body, 'version') };
  }

  async postMailbox(recipient: Uint8Array, vehicleId: Uint8Array, box: Uint8Array, expiresAt: number): Promise<string> {
    const answer = await this.request('POST', `/v1/mailbox/${toHex(recipient)}`, { body: { vehicleId: toHex(vehicleId), box: toBase64Url(box), expiresAt }, accept: [201] });
    return stringField(answer.body, 'id');
  }

  async listMailbox(): Promise<MailboxItem[]> {
    const answer = await this.request('GET', '/v1/mailbox');
    return arrayField(answer.body, 'items').map((item) => ({
      id: stringField(item, 'id'),
      vehicleId: hexField(item, 'vehicleId', 16),
      box: bytesField(item, 'box'),
      postedAt: numberField(item, 'postedAt'),
      expiresAt: numberField(item, 'expiresAt'),
      sender: hexField(item, 'sender', 32),
    }));
  }

  async ackMailbox(id: string): Promise<void> {
    await this.request('DELETE', `/v1/mailbox/${encodeURIComponent(id)}`, { accept: [204] });
  }

  /** Upload an audit page (the auditRead JSON, as a parsed object). */
  async uploadAudit(vehicleId: Uint8Array, page: unknown): Promise<{ stored: number; lastSeq: number }> {
    const answer = await this.request('POST', `/v1/vehicles/${toHex(vehicleId)}/audit`, { body: page });
    return { stored: numberField(answer.body, 'stored'), lastSeq: numberField(answer.body, 'lastSeq') };
  }

  /** An audit page as JSON bytes (verify with core's decodeAuditPage + verifyAuditPage). */
  async readAudit(vehicleId: Uint8Array, fromSeq: number, limit: number): Promise<Uint8Array> {
    const answer = await this.request('GET', `/v1/vehicles/${toHex(vehicleId)}/audit`, { query: { from: String(fromSeq), limit: String(limit) } });
    return new TextEncoder().encode(JSON.stringify(answer.body));
  }

  async postCommand(vehicleId: Uint8Array, commandId: Uint8Array, expiresAt: number, box: Uint8Array): Promise<void> {
    await this.request('POST', `/v1/vehicles/${toHex(vehicleId)}/commands`, { body: { commandId: toHex(commandId), expiresAt, box: toBase64Url(box) }, accept: [202] });
  }

  async fetchCommands(vehicleId: Uint8Array, options: { waitS?: number; signal?: AbortSignal } = {}): Promise<PendingCommand[]> {
    const waitS = waitSeconds(options.waitS);
    const answer = await this.request('GET', `/v1/vehicles/${toHex(vehicleId)}/commands`, {
      ...(waitS === undefined ? {} : { query: { wait: String(waitS) }, waitS }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return arrayField(answer.body, 'commands').map((item) => ({
      commandId: hexField(item, 'commandId', 16),
      box: bytesField(item, 'box'),
      caller: hexField(item, 'caller', 32),
      expiresAt: numberField(item, 'expiresAt'),
    }));
  }

  async putResult(vehicleId: Uint8Array, commandId: Uint8Array, box: Uint8Array): Promise<void> {
    await this.request('PUT', `/v1/vehicles/${toHex(vehicleId)}/commands/${toHex(commandId)}/result`, { body: { box: toBase64Url(box) }, accept: [204] });
  }

  /** The sealed result, or undefined while there is none (after up to `waitS` seconds). */
  async getResult(vehicleId: Uint8Array, commandId: Uint8Array, options: { waitS?: number; signal?: AbortSignal } = {}): Promise<Uint8Array | undefined> {
    const waitS = waitSeconds(options.waitS);
    const answer = await this.request('GET', `/v1/vehicles/${toHex(vehicleId)}/commands/${toHex(commandId)}/result`, {
      ...(waitS === undefined ? {} : { query: { wait: String(waitS) }, waitS }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      accept: [200, 204],
    });
    return answer.status === 204 ? undefined : bytesField(answer.body, 'box');
  }
}
