/**
 * Wire format of the simulated radio broker (firmware-sim/radio): JSON lines
 * over a UNIX socket, byte fields in base64. Shared by the broker and the sim
 * transports so both sides encode and validate identically.
 *
 * Guarantees: `decodeRequest` and `decodeServerMessage` never throw; they
 * return a typed message or a CK_TRANSPORT_RADIO_PROTOCOL error (with the
 * request id when one could be read, so the broker can answer it). Lines are
 * capped (`MAX_REQUEST_LINE_BYTES` client → broker, `MAX_EVENT_LINE_BYTES`
 * broker → client), chunks at ATT_MAX_MTU - 3 bytes, advertisement fields at
 * what fits in a legacy 31-byte advertisement.
 */

import { CarkeyError, Catalog, type ErrorCode, type Result } from '../core/errors.js';
import { FieldReader, encodeJsonLine, isJsonObject, type JsonObject } from './sim-json.js';
import {
  readLinkProfileFields,
  readLinkProfilePatch,
  readRadioSettingsPatch,
  type LinkProfilePatch,
  type LinkProfileSettings,
  type RadioSettings,
  type RadioSettingsPatch,
} from './sim-profile.js';
import type { CloseReason } from './types.js';

export const SIM_PROTOCOL_VERSION = 1;
export const MAX_REQUEST_LINE_BYTES = 4096;
export const MAX_EVENT_LINE_BYTES = 65_536;
export const ATT_DEFAULT_MTU = 23;
export const ATT_MAX_MTU = 517;
export const ATT_HEADER_BYTES = 3;
export const MAX_CHUNK_BYTES = ATT_MAX_MTU - ATT_HEADER_BYTES;
/** Scan response (31 bytes) minus the AD header. */
export const MAX_LOCAL_NAME_BYTES = 29;
/** Advertising data (31 bytes) minus flags (3) and the 128-bit service-data AD header (18). */
export const MAX_SERVICE_DATA_BYTES = 10;
/** Names of radio clients and link ids. */
export const NAME_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
export const MAX_REQUEST_ID = 2 ** 31 - 1;
/** Cap on the links listed by a `status` reply. */
export const MAX_STATUS_LINKS = 200;

export type Role = 'peripheral' | 'central' | 'control';
const ROLES: readonly Role[] = ['peripheral', 'central', 'control'];
const CLOSE_REASONS: readonly CloseReason[] = ['local', 'remote', 'timeout', 'link-lost', 'error'];

/** Selects links by peripheral and/or central name (absent: any). */
export interface LinkSelector {
  readonly peripheral?: string | undefined;
  readonly central?: string | undefined;
}

export type Request =
  | { readonly op: 'hello'; readonly id: number; readonly v: number; readonly role: Role; readonly name?: string | undefined; readonly maxMtu?: number | undefined }
  | { readonly op: 'advertise'; readonly id: number; readonly localName: string; readonly serviceData: Uint8Array }
  | { readonly op: 'advertise-stop'; readonly id: number }
  | { readonly op: 'notify'; readonly id: number; readonly linkId: string; readonly data: Uint8Array }
  | { readonly op: 'write-ack'; readonly id: number; readonly linkId: string; readonly seq: number }
  | { readonly op: 'scan-start'; readonly id: number }
  | { readonly op: 'scan-stop'; readonly id: number }
  | { readonly op: 'connect'; readonly id: number; readonly address: string }
  | { readonly op: 'connect-cancel'; readonly id: number; readonly connectId: number }
  | { readonly op: 'mtu'; readonly id: number; readonly linkId: string; readonly mtu: number }
  | { readonly op: 'discover'; readonly id: number; readonly linkId: string }
  | { readonly op: 'subscribe'; readonly id: number; readonly linkId: string }
  | { readonly op: 'write'; readonly id: number; readonly linkId: string; readonly data: Uint8Array; readonly withResponse: boolean }
  | { readonly op: 'disconnect'; readonly id: number; readonly linkId: string }
  | ({ readonly op: 'set-profile'; readonly id: number; readonly profile: LinkProfilePatch } & LinkSelector)
  | { readonly op: 'set-radio'; readonly id: number; readonly radio: RadioSettingsPatch }
  | ({ readonly op: 'drop'; readonly id: number; readonly afterMs: number } & LinkSelector)
  | { readonly op: 'time'; readonly id: number }
  | { readonly op: 'status'; readonly id: number };

/** Request without its id (the connection assigns ids). */
export type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, 'id'> : never) : never;

export interface RadioStatus {
  readonly peripherals: readonly { readonly name: string; readonly advertising: boolean; readonly links: number }[];
  readonly centrals: readonly { readonly name: string; readonly scanning: boolean; readonly links: number }[];
  readonly links: readonly {
    readonly id: string;
    readonly peripheral: string;
    readonly central: string;
    readonly mtu: number;
    readonly subscribed: boolean;
    readonly silent: boolean;
  }[];
}

/** Fields an `ok` reply may carry (which ones depends on the request). */
export interface OkResult {
  readonly now?: number;
  readonly seed?: number;
  readonly linkId?: string;
  readonly mtu?: number;
  readonly rssi?: number;
  readonly links?: number;
  readonly services?: readonly string[];
  readonly profile?: LinkProfileSettings;
  readonly radio?: RadioSettings;
  readonly status?: RadioStatus;
}

export type ServerMessage =
  | { readonly ev: 'ok'; readonly id: number; readonly result: OkResult }
  | { readonly ev: 'error'; readonly id: number | null; readonly code: ErrorCode; readonly message: string; readonly detail: string | undefined }
  | { readonly ev: 'adv'; readonly address: string; readonly localName: string; readonly serviceData: Uint8Array; readonly rssi: number; readonly at: number }
  | { readonly ev: 'link-open'; readonly linkId: string; readonly address: string; readonly mtu: number; readonly rssi: number; readonly at: number }
  | { readonly ev: 'mtu'; readonly linkId: string; readonly mtu: number; readonly at: number }
  | { readonly ev: 'subscribed'; readonly linkId: string; readonly at: number }
  | { readonly ev: 'chunk'; readonly linkId: string; readonly seq: number; readonly data: Uint8Array; readonly withResponse: boolean; readonly rssi: number; readonly at: number }
  | { readonly ev: 'notification'; readonly linkId: string; readonly data: Uint8Array; readonly rssi: number; readonly at: number }
  | { readonly ev: 'rssi'; readonly linkId: string; readonly rssi: number; readonly at: number }
  | { readonly ev: 'link-closed'; readonly linkId: string; readonly reason: CloseReason; readonly at: number };

/** Decode failure that keeps the request id when one was readable. */
export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: CarkeyError; readonly id: number | undefined };

const PROTOCOL: ErrorCode = 'CK_TRANSPORT_RADIO_PROTOCOL';

// --- encoding ------------------------------------------------------------------

/** One JSON line (without the newline); top-level Uint8Array fields become base64. */
export function encodeMessage(message: Request | ServerMessage): string {
  return encodeJsonLine(message);
}

/** The `error` reply for a failure (code from the catalog, human message, detail). */
export function errorMessage(id: number | undefined, error: CarkeyError): ServerMessage {
  const base = Catalog[error.code].message;
  const detail = error.message.startsWith(`${base}: `) ? error.message.slice(base.length + 2) : undefined;
  return { ev: 'error', id: id ?? null, code: error.code, message: error.message, detail };
}

/** Turn an `error` reply back into the `CarkeyError` the broker raised. */
export function errorFromMessage(message: Extract<ServerMessage, { ev: 'error' }>): CarkeyError {
  return new CarkeyError(message.code, message.detail);
}

// --- decoding requests ----------------------------------------------------------

function parseLine(line: string): Result<JsonObject> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, error: new CarkeyError(PROTOCOL, 'line is not valid JSON') };
  }
  if (!isJsonObject(value)) return { ok: false, error: new CarkeyError(PROTOCOL, 'line is not a JSON object') };
  return { ok: true, value };
}

function readId(object: JsonObject): number | undefined {
  const id = object.id;
  return typeof id === 'number' && Number.isInteger(id) && id >= 1 && id <= MAX_REQUEST_ID ? id : undefined;
}

export function decodeRequest(line: string): Decoded<Request> {
  const parsed = parseLine(line);
  if (!parsed.ok) return { ok: false, error: parsed.error, id: undefined };
  const object = parsed.value;
  const id = readId(object);
  try {
    if (id === undefined) throw new CarkeyError(PROTOCOL, `"id" must be an integer from 1 to ${MAX_REQUEST_ID}`);
    return { ok: true, value: readRequest(new FieldReader(object, 'request', PROTOCOL), id) };
  } catch (error) {
    if (error instanceof CarkeyError) return { ok: false, error, id };
    throw error;
  }
}

function readRequest(r: FieldReader, id: number): Request {
  r.raw('id');
  const op = r.string('op', 32);
  switch (op) {
    case 'hello':
      return {
        op,
        id,
        v: r.integer('v', 0, 1000),
        role: r.oneOf('role', ROLES),
        name: r.optionalString('name', 64, NAME_PATTERN),
        maxMtu: r.optionalInteger('maxMtu', ATT_DEFAULT_MTU, ATT_MAX_MTU),
      };
    case 'advertise': {
      const localName = r.string('localName', MAX_LOCAL_NAME_BYTES);
      if (Buffer.byteLength(localName, 'utf8') > MAX_LOCAL_NAME_BYTES) throw r.bad('localName', `is longer than ${MAX_LOCAL_NAME_BYTES} bytes`);
      return { op, id, localName, serviceData: r.bytes('serviceData', MAX_SERVICE_DATA_BYTES) };
    }
    case 'advertise-stop':
    case 'scan-start':
    case 'scan-stop':
    case 'time':
    case 'status':
      return { op, id };
    case 'notify':
      return { op, id, linkId: linkId(r), data: r.bytes('data', MAX_CHUNK_BYTES) };
    case 'write-ack':
      return { op, id, linkId: linkId(r), seq: r.integer('seq', 0, Number.MAX_SAFE_INTEGER) };
    case 'connect':
      return { op, id, address: r.string('address', 64, NAME_PATTERN) };
    case 'connect-cancel':
      return { op, id, connectId: r.integer('connectId', 1, MAX_REQUEST_ID) };
    case 'mtu':
      return { op, id, linkId: linkId(r), mtu: r.integer('mtu', ATT_DEFAULT_MTU, ATT_MAX_MTU) };
    case 'discover':
    case 'subscribe':
    case 'disconnect':
      return { op, id, linkId: linkId(r) };
    case 'write':
      return { op, id, linkId: linkId(r), data: r.bytes('data', MAX_CHUNK_BYTES), withResponse: r.boolean('withResponse') };
    case 'set-profile':
      return {
        op,
        id,
        ...selector(r),
        profile: readLinkProfilePatch(r.object('profile'), 'profile', PROTOCOL),
      };
    case 'set-radio':
      return { op, id, radio: readRadioSettingsPatch(r.object('radio'), 'radio', PROTOCOL) };
    case 'drop':
      return { op, id, ...selector(r), afterMs: r.optionalNumber('afterMs', 0, 86_400_000) ?? 0 };
    default:
      throw new CarkeyError(PROTOCOL, `unknown op "${op.slice(0, 32)}"`);
  }
}

function linkId(r: FieldReader): string {
  return r.string('linkId', 64, NAME_PATTERN);
}

function selector(r: FieldReader): LinkSelector {
  return { peripheral: r.optionalString('peripheral', 64, NAME_PATTERN), central: r.optionalString('central', 64, NAME_PATTERN) };
}

// --- decoding broker messages ------------------------------------------------------

export function decodeServerMessage(line: string): Result<ServerMessage> {
  const parsed = parseLine(line);
  if (!parsed.ok) return parsed;
  try {
    return { ok: true, value: readServerMessage(new FieldReader(parsed.value, 'broker message', PROTOCOL)) };
  } catch (error) {
    if (error instanceof CarkeyError) return { ok: false, error };
    throw error;
  }
}

const RSSI_MIN = -127;
const RSSI_MAX = 20;

function readServerMessage(r: FieldReader): ServerMessage {
  const ev = r.string('ev', 32);
  const at = (): number => r.number('at', 0, Number.MAX_SAFE_INTEGER);
  const rssi = (): number => r.integer('rssi', RSSI_MIN, RSSI_MAX);
  switch (ev) {
    case 'ok':
      return { ev, id: r.integer('id', 1, MAX_REQUEST_ID), result: readOkResult(r.object('result')) };
    case 'error': {
      const idValue = r.raw('id');
      const id = idValue === null ? null : r.integer('id', 1, MAX_REQUEST_ID);
      const code = r.string('code', 64);
      if (!Object.hasOwn(Catalog, code)) throw r.bad('code', 'is not a known error code');
      return { ev, id, code: code as ErrorCode, message: r.string('message', 2048), detail: r.optionalString('detail', 2048) };
    }
    case 'adv':
      return {
        ev,
        address: r.string('address', 64, NAME_PATTERN),
        localName: r.string('localName', MAX_LOCAL_NAME_BYTES),
        serviceData: r.bytes('serviceData', MAX_SERVICE_DATA_BYTES),
        rssi: rssi(),
        at: at(),
      };
    case 'link-open':
      return { ev, linkId: linkId(r), address: r.string('address', 64, NAME_PATTERN), mtu: mtuField(r), rssi: rssi(), at: at() };
    case 'mtu':
      return { ev, linkId: linkId(r), mtu: mtuField(r), at: at() };
    case 'subscribed':
      return { ev, linkId: linkId(r), at: at() };
    case 'chunk':
      return {
        ev,
        linkId: linkId(r),
        seq: r.integer('seq', 0, Number.MAX_SAFE_INTEGER),
        data: r.bytes('data', MAX_CHUNK_BYTES),
        withResponse: r.boolean('withResponse'),
        rssi: rssi(),
        at: at(),
      };
    case 'notification':
      return { ev, linkId: linkId(r), data: r.bytes('data', MAX_CHUNK_BYTES), rssi: rssi(), at: at() };
    case 'rssi':
      return { ev, linkId: linkId(r), rssi: rssi(), at: at() };
    case 'link-closed':
      return { ev, linkId: linkId(r), reason: r.oneOf('reason', CLOSE_REASONS), at: at() };
    default:
      throw new CarkeyError(PROTOCOL, `unknown broker event "${ev.slice(0, 32)}"`);
  }
}

function mtuField(r: FieldReader): number {
  return r.integer('mtu', ATT_DEFAULT_MTU, ATT_MAX_MTU);
}

function readOkResult(object: JsonObject): OkResult {
  const r = new FieldReader(object, 'ok result', PROTOCOL);
  const result: { -readonly [K in keyof OkResult]: OkResult[K] } = {};
  const now = r.optionalNumber('now', 0, Number.MAX_SAFE_INTEGER);
  if (now !== undefined) result.now = now;
  const seed = r.optionalInteger('seed', 0, Number.MAX_SAFE_INTEGER);
  if (seed !== undefined) result.seed = seed;
  const id = r.optionalString('linkId', 64, NAME_PATTERN);
  if (id !== undefined) result.linkId = id;
  const mtu = r.optionalInteger('mtu', ATT_DEFAULT_MTU, ATT_MAX_MTU);
  if (mtu !== undefined) result.mtu = mtu;
  const rssi = r.optionalInteger('rssi', RSSI_MIN, RSSI_MAX);
  if (rssi !== undefined) result.rssi = rssi;
  const links = r.optionalInteger('links', 0, Number.MAX_SAFE_INTEGER);
  if (links !== undefined) result.links = links;
  if (r.has('services')) result.services = r.array('services', 16).map((s, i) => stringItem(s, `services[${i}]`));
  const profile = r.optionalObject('profile');
  if (profile !== undefined) result.profile = readFullProfile(profile);
  const radio = r.optionalObject('radio');
  if (radio !== undefined) result.radio = readFullRadio(radio);
  const status = r.optionalObject('status');
  if (status !== undefined) result.status = readStatus(status);
  return result;
}

function stringItem(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length > 64) throw new CarkeyError(PROTOCOL, `${where} must be a short string`);
  return value;
}

function readFullProfile(object: JsonObject): LinkProfileSettings {
  const r = new FieldReader(object, 'profile', PROTOCOL);
  const patch = readLinkProfileFields(r);
  const { connectionIntervalMs, jitterMs, lossRate, pdusPerEvent, supervisionTimeoutMs, rssi, mute, dropAfterConnectMs } = patch;
  if (
    connectionIntervalMs === undefined ||
    jitterMs === undefined ||
    lossRate === undefined ||
    pdusPerEvent === undefined ||
    supervisionTimeoutMs === undefined ||
    rssi === undefined ||
    mute === undefined ||
    dropAfterConnectMs === undefined
  ) {
    throw new CarkeyError(PROTOCOL, 'profile: a field is missing');
  }
  return { connectionIntervalMs, jitterMs, lossRate, pdusPerEvent, supervisionTimeoutMs, rssi, mute, dropAfterConnectMs };
}

function readFullRadio(object: JsonObject): RadioSettings {
  const patch = readRadioSettingsPatch(object, 'radio', PROTOCOL);
  const { advertisingIntervalMs, rssiReportIntervalMs, sensitivityDbm } = patch;
  if (advertisingIntervalMs === undefined || rssiReportIntervalMs === undefined || sensitivityDbm === undefined) {
    throw new CarkeyError(PROTOCOL, 'radio: a field is missing');
  }
  return { advertisingIntervalMs, rssiReportIntervalMs, sensitivityDbm };
}

function readStatus(object: JsonObject): RadioStatus {
  const r = new FieldReader(object, 'status', PROTOCOL);
  const items = (key: string, max: number): FieldReader[] =>
    r.array(key, max).map((item, i) => {
      if (!isJsonObject(item)) throw new CarkeyError(PROTOCOL, `status.${key}[${i}] must be an object`);
      return new FieldReader(item, `status.${key}[${i}]`, PROTOCOL);
    });
  return {
    peripherals: items('peripherals', 1000).map((p) => ({ name: p.string('name', 64), advertising: p.boolean('advertising'), links: p.integer('links', 0, 1e9) })),
    centrals: items('centrals', 1000).map((c) => ({ name: c.string('name', 64), scanning: c.boolean('scanning'), links: c.integer('links', 0, 1e9) })),
    links: items('links', MAX_STATUS_LINKS).map((l) => ({
      id: l.string('id', 64),
      peripheral: l.string('peripheral', 64),
      central: l.string('central', 64),
      mtu: mtuField(l),
      subscribed: l.boolean('subscribed'),
      silent: l.boolean('silent'),
    })),
  };
}
