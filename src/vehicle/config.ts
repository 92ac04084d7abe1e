/**
 * carkeyd configuration: one JSON file plus command-line flags, validated once
 * at start (as pino validates its options), with precise errors.
 *
 * Guarantees: `resolveConfig` either returns a complete, frozen `DaemonConfig`
 * whose every field is in range, or throws CK_CONFIG_INVALID naming the field,
 * the value and the allowed range. Flags override the file; the file overrides
 * defaults. Unknown keys in the file are errors (typos must not silently
 * weaken security settings). The file is checked first against its JSON
 * Schema (config-schema.ts: strict types, no coercion, "did you mean").
 */
import { readFileSync } from 'node:fs';
import { CarkeyError } from '../core/errors.js';
import { PIN_PATTERN } from '../core/payloads.js';
import { INTEGER_KEYS, parseIntegerFlag, validateConfigFile } from './config-schema.js';
import type { AutoRelockSettings } from './auto-relock.js';
import type { WalkAwaySettings } from './walk-away.js';

export type TransportKind = 'ble' | 'sim';

export interface DaemonConfig {
  readonly transport: TransportKind;
  /** BLE adapter, e.g. hci0. */
  readonly adapter: string;
  /** Sim radio broker socket (transport sim). */
  readonly radio: string;
  /** Optional H4 socket of an emulated controller (btvirt) for transport ble. */
  readonly hciSocket: string | undefined;
  /** Body controller: UNIX socket or serial device path. */
  readonly hardware: string;
  readonly stateDir: string;
  /** Name shown to a pairing phone (≤ 32 bytes UTF-8). */
  readonly name: string;
  /** Advertised local name (generic on purpose: it must not identify the owner). */
  readonly localName: string;
  /** Concurrent connection slots (≥ 3). */
  readonly slots: number;
  /** Drop links that have not authenticated within this time (ms, ≤ 3000). */
  readonly idleTimeoutMs: number;
  /** Drop authenticated links idle for this long (ms). */
  readonly sessionIdleMs: number;
  readonly challengeTtlMs: number;
  /** Deny when challenge→request took longer (relay bound, ms). */
  readonly relayBoundMs: number;
  /** RSSI hysteresis for walk-up unlock: near at ≥ enter, far again below exit (dBm). */
  readonly passiveEnterRssi: number;
  readonly passiveExitRssi: number;
  /** PIN required for `start`, when set (4..8 digits). */
  readonly startPin: string | undefined;
  /** Messages per second per link, and globally (token buckets). */
  readonly perLinkRate: number;
  readonly perLinkBurst: number;
  readonly globalRate: number;
  readonly globalBurst: number;
  /** Pairing window after the button/keycard (ms). */
  readonly pairingWindowMs: number;
  /** Keycard ids that may open pairing / confirm factory reset (empty: button only). */
  readonly keycards: readonly string[];
  /** Status HTTP port on 127.0.0.1 (0 = pick a free port, -1 = off). */
  readonly statusPort: number;
  /** Address the status server binds (an IP literal; default 127.0.0.1; 0.0.0.0 or a LAN address for off-box Prometheus scraping). */
  readonly statusHost: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly auditCheckpointEvery: number;
  /** Keep at most about this many audit entries; the oldest, up to a signed checkpoint, are pruned (≥ 4 × auditCheckpointEvery). */
  readonly auditMaxEntries: number;
  /** How often refusals to unrecognised peers are written as one summary entry, and the log size is checked (ms). */
  readonly auditSummaryEveryMs: number;
  readonly cryptoBackend: 'node' | 'tweetnacl';
  /** The optional cloud sync worker (src/vehicle/sync); undefined = no cloud, nothing is contacted. */
  readonly cloud: CloudConfig | undefined;
  /** Lock again when no door opened within afterMs of an unlock; undefined = off (docs/operations.md). */
  readonly autoRelock: AutoRelockSettings | undefined;
  /** Lock when the phone that unlocked over BLE walks away; undefined = off (docs/operations.md). */
  readonly walkAwayLock: WalkAwaySettings | undefined;
}

export const AUTO_RELOCK_DEFAULTS: AutoRelockSettings = { afterMs: 30_000 };
export const WALK_AWAY_DEFAULTS: WalkAwaySettings = { leaveRssi: -80, hysteresisDb: 6, graceMs: 5000, doorWaitMs: 120_000 };

// --- the `cloud` section (owned by the sync worker, src/vehicle/sync) ---------

export type CloudMode = 'long-poll' | 'poll' | 'mqtt';

/** Commands a phone may send through the cloud; passiveUnlock and key management never travel that way. */
export const REMOTE_COMMANDS = ['lock', 'unlock', 'start', 'trunk', 'status'] as const;
export type RemoteCommandName = (typeof REMOTE_COMMANDS)[number];

export interface CloudConfig {
  /** carkey-cloud base URL (http:// or https://). The car only connects out; it opens no port. */
  readonly url: string;
  /** How the car learns of changes: hold a long-poll, poll every pollIntervalMs, or wait for MQTT notices. */
  readonly mode: CloudMode;
  /** MQTT broker for notices (mode mqtt only). */
  readonly mqttUrl: string | undefined;
  /** Poll period (mode poll), and the fallback fetch period in mode mqtt (ms). */
  readonly pollIntervalMs: number;
  /** How long the cloud may hold a long-poll (s, 1..60). */
  readonly longPollSeconds: number;
  /** Deadline of every request, on top of a long-poll's wait (ms). */
  readonly requestTimeoutMs: number;
  readonly auditUpload: boolean;
  readonly auditUploadIntervalMs: number;
  /** Which remote commands the car carries out (still decided by the same policy as BLE). */
  readonly remote: Readonly<Record<RemoteCommandName, boolean>>;
  /** Most undelivered remote results kept on disk (sync.db). */
  readonly outboxMaxEntries: number;
}

export const CLOUD_DEFAULTS: Omit<CloudConfig, 'url'> = {
  mode: 'long-poll',
  mqttUrl: undefined,
  pollIntervalMs: 30_000,
  longPollSeconds: 30,
  requestTimeoutMs: 10_000,
  auditUpload: true,
  auditUploadIntervalMs: 60_000,
  remote: { lock: true, status: true, unlock: false, start: false, trunk: false },
  outboxMaxEntries: 256,
};

export const DEFAULTS: DaemonConfig = {
  transport: 'ble',
  adapter: 'hci0',
  radio: '/tmp/carkey-radio.sock',
  hciSocket: undefined,
  hardware: '/tmp/carkey-hw.sock',
  stateDir: '/var/lib/carkey',
  name: 'carkey',
  localName: 'carkey',
  slots: 4,
  idleTimeoutMs: 3000,
  sessionIdleMs: 30_000,
  challengeTtlMs: 3000,
  relayBoundMs: 500,
  passiveEnterRssi: -60,
  passiveExitRssi: -70,
  startPin: undefined,
  perLinkRate: 10,
  perLinkBurst: 20,
  globalRate: 50,
  globalBurst: 100,
  pairingWindowMs: 60_000,
  keycards: [],
  statusPort: 7341,
  statusHost: '127.0.0.1',
  logLevel: 'info',
  auditCheckpointEvery: 64,
  auditMaxEntries: 100_000,
  auditSummaryEveryMs: 60_000,
  cryptoBackend: 'node',
  cloud: undefined,
  autoRelock: undefined,
  walkAwayLock: undefined,
};

type Key = keyof DaemonConfig;
type Check = (value: unknown, key: string) => unknown;

function invalid(key: string, value: unknown, expected: string): CarkeyError {
  return new CarkeyError('CK_CONFIG_INVALID', `${key} = ${JSON.stringify(value)}: expected ${expected}`);
}

function int(min: number, max: number): Check {
  return (value, key) => {
    // No coercion: a string is never a number here (flags are parsed strictly by parseIntegerFlag first).
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalid(key, value, `an integer in ${min}..${max}`);
    return value;
  };
}

function oneOf(...allowed: string[]): Check {
  return (value, key) => {
    if (typeof value !== 'string' || !allowed.includes(value)) throw invalid(key, value, `one of ${allowed.join(', ')}`);
    return value;
  };
}

function text(pattern: RegExp, what: string): Check {
  return (value, key) => {
    if (typeof value !== 'string' || !pattern.test(value)) throw invalid(key, value, what);
    return value;
  };
}

function optional(check: Check): Check {
  return (value, key) => (value === undefined || value === null || value === '' ? undefined : check(value, key));
}

const path = text(/^[^\0]{1,4096}$/, 'a path');

function bool(value: unknown, key: string): boolean {
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw invalid(key, value, 'true or false');
}

function urlWith(protocols: readonly string[]): Check {
  return (value, key) => {
    let url: URL | undefined;
    try {
      url = typeof value === 'string' && value.length <= 2048 ? new URL(value) : undefined;
    } catch {
      url = undefined;
    }
    if (url === undefined || !protocols.includes(url.protocol) || url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
      throw invalid(key, value, `a ${protocols.map((p) => `${p}//`).join(' or ')} URL without credentials, query or fragment`);
    }
    return value;
  };
}

function object(value: unknown, key: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(key, value, 'an object');
  return value as Record<string, unknown>;
}

/** An IPv4 or IPv6 literal (not node:net's isIP: this module is on the BLE entry path, which imports no networking). */
function isIpLiteral(value: string): boolean {
  if (/^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/.test(value)) return true;
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(value) || !value.includes(':')) return false;
  try {
    return new URL(`http://[${value}]/`).hostname !== '';
  } catch {
    return false;
  }
}

const REMOTE_NEVER = new Set(['passiveUnlock', 'keyListPush', 'keyListGet', 'auditRead', 'vehicleStatement']);

function remotePolicy(value: unknown, key: string): Readonly<Record<RemoteCommandName, boolean>> {
  const given = object(value, key);
  const out: Record<RemoteCommandName, boolean> = { ...CLOUD_DEFAULTS.remote };
  for (const [name, allowed] of Object.entries(given)) {
    if (REMOTE_NEVER.has(name)) throw new CarkeyError('CK_CONFIG_INVALID', `${key}.${name}: ${name} is never carried out remotely (walk-up unlock needs the phone at the car; key management goes over BLE)`);
    if (!(REMOTE_COMMANDS as readonly string[]).includes(name)) throw new CarkeyError('CK_CONFIG_INVALID', `unknown setting "${key}.${name}" (remote commands: ${REMOTE_COMMANDS.join(', ')})`);
    out[name as RemoteCommandName] = bool(allowed, `${key}.${name}`);
  }
  return Object.freeze(out);
}

const CLOUD_CHECKS: Readonly<Record<keyof CloudConfig, Check>> = {
  url: urlWith(['http:', 'https:']),
  mode: oneOf('long-poll', 'poll', 'mqtt'),
  mqttUrl: optional(urlWith(['mqtt:', 'mqtts:', 'ws:', 'wss:'])),
  pollIntervalMs: int(1000, 86_400_000),
  longPollSeconds: int(1, 60),
  requestTimeoutMs: int(500, 120_000),
  auditUpload: bool,
  auditUploadIntervalMs: int(1000, 86_400_000),
  remote: remotePolicy,
  outboxMaxEntries: int(1, 100_000),
};

/** The `cloud` section: absent (or null) = no cloud. Unknown keys are errors, as at the top level. */
function cloudSection(value: unknown, key: string): CloudConfig | undefined {
  if (value === undefined || value === null) return undefined;
  const given = object(value, key);
  for (const name of Object.keys(given)) {
    if (!(name in CLOUD_CHECKS)) throw new CarkeyError('CK_CONFIG_INVALID', `unknown setting "${key}.${name}" in the config file`);
  }
  if (given.url === undefined) throw new CarkeyError('CK_CONFIG_INVALID', `${key}.url is required when the ${key} section is present`);
  const merged: Record<string, unknown> = { ...CLOUD_DEFAULTS, ...given };
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(CLOUD_CHECKS) as (keyof CloudConfig)[]) out[name] = CLOUD_CHECKS[name](merged[name], `${key}.${name}`);
  const cloud = out as unknown as CloudConfig;
  if (cloud.mode === 'mqtt' && cloud.mqttUrl === undefined) throw new CarkeyError('CK_CONFIG_INVALID', `${key}.mqttUrl is required with ${key}.mode = "mqtt"`);
  if (cloud.mode !== 'mqtt' && cloud.mqttUrl !== undefined) throw new CarkeyError('CK_CONFIG_INVALID', `${key}.mqttUrl is only used with ${key}.mode = "mqtt"`);
  return Object.freeze(cloud);
}

/** An optional section of integer settings: absent or null = off; `{}` = on with the defaults. */
function integerSection<T extends object>(defaults: T, ranges: Readonly<Record<keyof T, Check>>): Check {
  return (value, key) => {
    if (value === undefined || value === null) return undefined;
    const given = object(value, key);
    for (const name of Object.keys(given)) {
      if (!(name in ranges)) throw new CarkeyError('CK_CONFIG_INVALID', `unknown setting "${key}.${name}" in the config file`);
    }
    const merged: Record<string, unknown> = { ...defaults, ...given };
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(ranges) as (keyof T & string)[]) out[name] = ranges[name](merged[name], `${key}.${name}`);
    return Object.freeze(out);
  };
}

const CHECKS: Readonly<Record<Key, Check>> = {
  transport: oneOf('ble', 'sim'),
  adapter: text(/^hci[0-9]{1,2}$/, 'an adapter name like hci0'),
  radio: path,
  hciSocket: optional(path),
  hardware: path,
  stateDir: path,
  name: (value, key) => {
    if (typeof value !== 'string' || value.length === 0 || new TextEncoder().encode(value).length > 32) throw invalid(key, value, '1..32 bytes of UTF-8');
    return value;
  },
  localName: text(/^[\x20-\x7e]{1,20}$/, '1..20 printable ASCII characters'),
  slots: int(3, 16),
  idleTimeoutMs: int(200, 3000),
  sessionIdleMs: int(1000, 600_000),
  challengeTtlMs: int(100, 65_535),
  relayBoundMs: int(1, 65_535),
  passiveEnterRssi: int(-127, 20),
  passiveExitRssi: int(-127, 20),
  startPin: optional(text(PIN_PATTERN, '4 to 8 digits')),
  perLinkRate: int(1, 1000),
  perLinkBurst: int(1, 1000),
  globalRate: int(1, 10_000),
  globalBurst: int(1, 10_000),
  pairingWindowMs: int(5000, 600_000),
  keycards: (value, key) => {
    if (!Array.isArray(value) || !value.every((card) => typeof card === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(card))) {
      throw invalid(key, value, 'a list of keycard ids');
    }
    return [...(value as string[])];
  },
  statusPort: int(-1, 65_535),
  statusHost: (value, key) => {
    if (typeof value !== 'string' || !isIpLiteral(value)) throw invalid(key, value, 'an IP address such as 127.0.0.1, 0.0.0.0 or ::1 (not a host name)');
    return value;
  },
  logLevel: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  auditCheckpointEvery: int(1, 100_000),
  auditMaxEntries: int(100, 100_000_000),
  auditSummaryEveryMs: int(1000, 3_600_000),
  cryptoBackend: oneOf('node', 'tweetnacl'),
  cloud: cloudSection,
  autoRelock: integerSection(AUTO_RELOCK_DEFAULTS, { afterMs: int(1000, 600_000) }),
  walkAwayLock: integerSection(WALK_AWAY_DEFAULTS, { leaveRssi: int(-127, 20), hysteresisDb: int(0, 40), graceMs: int(0, 60_000), doorWaitMs: int(0, 1_800_000) }),
};

export function loadConfigFile(file: string): Record<string, unknown> {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CarkeyError('CK_CONFIG_INVALID', `cannot read config file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new CarkeyError('CK_CONFIG_INVALID', `config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CarkeyError('CK_CONFIG_INVALID', `config file ${file} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Merge defaults ← file ← flags and validate every field once. */
export function resolveConfig(file: Record<string, unknown>, flags: Partial<Record<Key, unknown>>): DaemonConfig {
  validateConfigFile(file);
  const merged: Record<string, unknown> = { ...DEFAULTS };
  for (const [key, value] of Object.entries(file)) {
    if (!(key in CHECKS)) throw new CarkeyError('CK_CONFIG_INVALID', `unknown setting "${key}" in the config file`);
    merged[key] = value;
  }
  for (const [key, value] of Object.entries(flags)) {
    if (value !== undefined) merged[key] = INTEGER_KEYS.has(key) && typeof value === 'string' ? parseIntegerFlag(key, value) : value;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(CHECKS) as Key[]) out[key] = CHECKS[key](merged[key], key);
  const config = out as unknown as DaemonConfig;
  if (config.passiveExitRssi > config.passiveEnterRssi) {
    throw new CarkeyError('CK_CONFIG_INVALID', 'passiveExitRssi must not be above passiveEnterRssi (hysteresis)');
  }
  if (config.relayBoundMs > config.challengeTtlMs) {
    throw new CarkeyError('CK_CONFIG_INVALID', 'relayBoundMs must not exceed challengeTtlMs');
  }
  if (config.auditMaxEntries < 4 * config.auditCheckpointEvery) {
    throw new CarkeyError('CK_CONFIG_INVALID', 'auditMaxEntries must be at least 4 × auditCheckpointEvery (pruning stops at a signed checkpoint)');
  }
  return Object.freeze(config);
}
