/**
 * Typed, bounded field readers for the JSON objects of the simulated radio
 * protocol and its configuration file.
 *
 * Guarantees: every reader checks type and range before returning a value;
 * a bad field throws a `CarkeyError` with the given code whose message names
 * the field (callers at a decode boundary turn it into a `Result`). Byte
 * fields are canonical base64 with a length cap. `assertNoUnknownKeys`
 * rejects fields nobody read, so a typo in a fault profile is an error rather
 * than a silently ignored setting.
 */

import { CarkeyError, type ErrorCode } from '../core/errors.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export type JsonObject = Readonly<Record<string, unknown>>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * JSON text of a protocol message whose top-level byte fields are
 * `Uint8Array`s (sent as base64). Reads own fields directly, so a `Buffer`
 * is encoded as base64 and not through its `toJSON`.
 */
export function encodeJsonLine(message: object): string {
  const wire: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message)) {
    wire[key] = value instanceof Uint8Array ? encodeBase64(value) : (value as unknown);
  }
  return JSON.stringify(wire);
}

export class FieldReader {
  private readonly source: JsonObject;
  private readonly where: string;
  private readonly code: ErrorCode;
  private readonly seen = new Set<string>();

  constructor(object: JsonObject, where: string, code: ErrorCode) {
    this.source = object;
    this.where = where;
    this.code = code;
  }

  has(key: string): boolean {
    return this.source[key] !== undefined;
  }

  string(key: string, maxLength: number, pattern?: RegExp): string {
    const value = this.take(key);
    if (typeof value !== 'string') throw this.bad(key, 'must be a string');
    if (value.length > maxLength) throw this.bad(key, `is longer than ${maxLength} characters`);
    if (pattern !== undefined && !pattern.test(value)) throw this.bad(key, `must match ${pattern.source}`);
    return value;
  }

  optionalString(key: string, maxLength: number, pattern?: RegExp): string | undefined {
    return this.has(key) ? this.string(key, maxLength, pattern) : this.skip(key);
  }

  number(key: string, min: number, max: number): number {
    const value = this.take(key);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw this.bad(key, 'must be a finite number');
    if (value < min || value > max) throw this.bad(key, `must be between ${min} and ${max}`);
    return value;
  }

  optionalNumber(key: string, min: number, max: number): number | undefined {
    return this.has(key) ? this.number(key, min, max) : this.skip(key);
  }

  integer(key: string, min: number, max: number): number {
    const value = this.number(key, min, max);
    if (!Number.isInteger(value)) throw this.bad(key, 'must be an integer');
    return value;
  }

  optionalInteger(key: string, min: number, max: number): number | undefined {
    return this.has(key) ? this.integer(key, min, max) : this.skip(key);
  }

  boolean(key: string): boolean {
    const value = this.take(key);
    if (typeof value !== 'boolean') throw this.bad(key, 'must be true or false');
    return value;
  }

  optionalBoolean(key: string): boolean | undefined {
    return this.has(key) ? this.boolean(key) : this.skip(key);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const value = this.take(key);
    const match = allowed.find((candidate) => candidate === value);
    if (match === undefined) throw this.bad(key, `must be one of ${allowed.join(', ')}`);
    return match;
  }

  /** Canonical base64 decoding to at most `maxBytes` bytes. */
  bytes(key: string, maxBytes: number): Uint8Array {
    const text = this.string(key, Math.ceil(maxBytes / 3) * 4);
    if (!BASE64.test(text)) throw this.bad(key, 'must be canonical base64');
    const bytes = Buffer.from(text, 'base64');
    if (bytes.length > maxBytes) throw this.bad(key, `must decode to at most ${maxBytes} bytes`);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  object(key: string): JsonObject {
    const value = this.take(key);
    if (!isJsonObject(value)) throw this.bad(key, 'must be an object');
    return value;
  }

  optionalObject(key: string): JsonObject | undefined {
    return this.has(key) ? this.object(key) : this.skip(key);
  }

  array(key: string, maxItems: number): readonly unknown[] {
    const value = this.take(key);
    if (!Array.isArray(value)) throw this.bad(key, 'must be an array');
    if (value.length > maxItems) throw this.bad(key, `must have at most ${maxItems} items`);
    return value as readonly unknown[];
  }

  /** Marks `key` as read without checking it (the caller handles it). */
  raw(key: string): unknown {
    return this.take(key);
  }

  assertNoUnknownKeys(): void {
    for (const key of Object.keys(this.source)) {
      if (!this.seen.has(key)) throw new CarkeyError(this.code, `${this.where}: unknown field "${key}"`);
    }
  }

  bad(key: string, problem: string): CarkeyError {
    return new CarkeyError(this.code, `${this.where}: "${key}" ${problem}`);
  }

  private take(key: string): unknown {
    this.seen.add(key);
    if (!Object.hasOwn(this.source, key)) throw this.bad(key, 'is missing');
    return this.source[key];
  }

  private skip(key: string): undefined {
    this.seen.add(key);
    return undefined;
  }
}
