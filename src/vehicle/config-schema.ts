/**
 * The JSON Schema of the carkeyd config file, and the strict validator that
 * runs it (ajv 8, draft-07).
 *
 * Guarantees: `validateConfigFile` accepts exactly the documented shape and
 * types — no coercion ("4", " 4 ", "0x4", "5e2" and "7341" are strings, not
 * numbers), no unknown keys (refused with the nearest known key as a "did you
 * mean"), no placeholder left over from deploy/carkeyd.example.json — or
 * throws CK_CONFIG_INVALID naming the field path (`cloud.remote.unlock`,
 * `keycards[0]`) and what is expected. Cross-field rules (hysteresis, relay
 * bound ≤ TTL, mqttUrl with mode mqtt) and URL parsing stay in config.ts.
 *
 * `parseIntegerFlag` is the one place a string becomes a number: a command-line
 * flag, with the same strictness (decimal digits, optional minus sign).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { CarkeyError } from '../core/errors.js';

type Schema = Readonly<Record<string, unknown>>;

function integer(minimum: number, maximum: number): Schema {
  return { type: 'integer', minimum, maximum };
}

function text(pattern: string, description: string): Schema {
  return { type: 'string', pattern, description };
}

const PATH: Schema = { type: 'string', minLength: 1, maxLength: 4096, pattern: '^[^\\u0000]*$', description: 'a path' };
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Commands that never travel through the cloud: named so the refusal says why. */
const REMOTE_NEVER = ['passiveUnlock', 'keyListPush', 'keyListGet', 'auditRead', 'vehicleStatement'];
const NEVER_REMOTE: Schema = {
  not: {},
  description: 'is never carried out remotely (walk-up unlock needs the phone at the car; key management goes over BLE)',
};

const CLOUD_SCHEMA: Schema = {
  type: ['object', 'null'],
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', maxLength: 2048, description: 'an http:// or https:// URL' },
    mode: { enum: ['long-poll', 'poll', 'mqtt'] },
    mqttUrl: { type: ['string', 'null'], maxLength: 2048, description: 'an mqtt://, mqtts://, ws:// or wss:// URL' },
    pollIntervalMs: integer(1000, 86_400_000),
    longPollSeconds: integer(1, 60),
    requestTimeoutMs: integer(500, 120_000),
    auditUpload: { type: 'boolean' },
    auditUploadIntervalMs: integer(1000, 86_400_000),
    remote: {
      type: 'object',
      additionalProperties: false,
      properties: {
        lock: { type: 'boolean' },
        unlock: { type: 'boolean' },
        start: { type: 'boolean' },
        trunk: { type: 'boolean' },
        status: { type: 'boolean' },
        ...Object.fromEntries(REMOTE_NEVER.map((name) => [name, NEVER_REMOTE])),
      },
    },
    outboxMaxEntries: integer(1, 100_000),
  },
};

/** autoRelock / walkAwayLock: absent or null = off, an object = on (missing fields take the defaults in config.ts). */
const AUTO_RELOCK_SCHEMA: Schema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { afterMs: integer(1000, 600_000) },
};
const WALK_AWAY_SCHEMA: Schema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    leaveRssi: integer(-127, 20),
    hysteresisDb: integer(0, 40),
    graceMs: integer(0, 60_000),
    doorWaitMs: integer(0, 1_800_000),
  },
};

/** The config file's schema (every key optional; defaults in config.ts). */
export const CONFIG_SCHEMA: Schema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'carkeyd configuration (docs/operations.md)',
  type: 'object',
  additionalProperties: false,
  properties: {
    transport: { enum: ['ble', 'sim'] },
    adapter: text('^hci[0-9]{1,2}$', 'an adapter name like hci0'),
    radio: PATH,
    hciSocket: { ...PATH, type: ['string', 'null'] },
    hardware: PATH,
    stateDir: PATH,
    name: { type: 'string', minLength: 1, maxLength: 32, description: '1..32 bytes of UTF-8' },
    localName: text('^[\\x20-\\x7e]{1,20}$', '1..20 printable ASCII characters'),
    slots: integer(3, 16),
    idleTimeoutMs: integer(200, 3000),
    sessionIdleMs: integer(1000, 600_000),
    challengeTtlMs: integer(100, 65_535),
    relayBoundMs: integer(1, 65_535),
    passiveEnterRssi: integer(-127, 20),
    passiveExitRssi: integer(-127, 20),
    startPin: { type: ['string', 'null'], pattern: '^[0-9]{4,8}$', description: '4 to 8 digits, as a string' },
    perLinkRate: integer(1, 1000),
    perLinkBurst: integer(1, 1000),
    globalRate: integer(1, 10_000),
    globalBurst: integer(1, 10_000),
    pairingWindowMs: integer(5000, 600_000),
    keycards: {
      type: 'array',
      maxItems: 64,
      uniqueItems: true,
      items: {
        type: 'string',
        pattern: '^[A-Za-z0-9_-]{1,64}$',
        not: { pattern: '^replace-with' },
        description: 'a keycard id (1..64 of A-Z a-z 0-9 _ -)',
      },
    },
    statusPort: integer(-1, 65_535),
    statusHost: { type: 'string', minLength: 2, maxLength: 45, description: 'an IP address such as 127.0.0.1, 0.0.0.0 or ::1' },
    logLevel: { enum: LOG_LEVELS },
    auditCheckpointEvery: integer(1, 100_000),
    auditMaxEntries: integer(100, 100_000_000),
    auditSummaryEveryMs: integer(1000, 3_600_000),
    cryptoBackend: { enum: ['node', 'tweetnacl'] },
    cloud: CLOUD_SCHEMA,
    autoRelock: AUTO_RELOCK_SCHEMA,
    walkAwayLock: WALK_AWAY_SCHEMA,
  },
};

const ajv = new Ajv({ allErrors: false, strict: true, coerceTypes: false, useDefaults: false, verbose: true, allowUnionTypes: true });
const validate = ajv.compile(CONFIG_SCHEMA);

/** `/cloud/remote/unlock` → `cloud.remote.unlock`, `/keycards/0` → `keycards[0]`. */
function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const raw of parts) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^[0-9]+$/.test(part) ? `[${part}]` : out === '' ? part : `.${part}`;
  }
  return out === '' ? 'the config file' : out;
}

/** Levenshtein distance, case-insensitive (a wrong capital costs nothing). */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= y.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (x[i - 1] === y[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[y.length] ?? 0;
}

/** The known key nearest to `given`, when it is near enough to be a typo. */
export function suggestKey(given: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(given, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(given.length / 3)) ? best : undefined;
}

function schemaOf(error: ErrorObject): Record<string, unknown> {
  const parent: unknown = error.parentSchema;
  return typeof parent === 'object' && parent !== null ? (parent as Record<string, unknown>) : {};
}

function describeType(schema: Record<string, unknown>): string {
  const types = Array.isArray(schema.type) ? (schema.type as unknown[]) : [schema.type];
  const integerRange = typeof schema.minimum === 'number' && typeof schema.maximum === 'number' ? ` in ${schema.minimum}..${schema.maximum}` : '';
  if (types.includes('integer')) return `an integer${integerRange} (a JSON number, not a string)`;
  if (types.includes('boolean')) return 'true or false (not a string)';
  if (types.includes('array')) return 'a list';
  if (typeof schema.description === 'string') return schema.description;
  if (types.includes('object')) return 'an object';
  return types.includes('string') ? 'a string' : types.join(' or ');
}

function message(error: ErrorObject): string {
  const schema = schemaOf(error);
  const field = fieldPath(error.instancePath);
  const value = JSON.stringify(error.data);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'additionalProperty':
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      const properties = typeof schema.properties === 'object' && schema.properties !== null ? Object.keys(schema.properties) : [];
      const suggestion = suggestKey(name, properties.filter((key) => !REMOTE_NEVER.includes(key)));
      return `unknown setting "${fieldPath(error.instancePath, name)}" in the config file${suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`}`;
    }
    case 'required': {
      const missing = String(params.missingProperty);
      return `${fieldPath(error.instancePath, missing)} is required when the ${field} section is present`;
    }
    case 'not':
      return field.startsWith('keycards')
        ? `${field} = ${value}: this is the example's placeholder: put the id of your own keycard here, or remove the entry (no keycards: the pairing button alone opens pairing on an unpaired car)`
        : `${field}: ${String(schema.description)}`;
    case 'enum':
      return `${field} = ${value}: expected one of ${(schema.enum as unknown[]).map((v) => String(v)).join(', ')}`;
    case 'uniqueItems':
      return `${field}: each entry may appear once`;
    case 'maxItems':
      return `${field}: at most ${String(params.limit)} entries`;
    default:
      return `${field} = ${value}: expected ${describeType(schema)}`;
  }
}

/** Validate a parsed config file strictly; throws CK_CONFIG_INVALID with the field path. */
export function validateConfigFile(file: unknown): void {
  if (validate(file)) return;
  const first = validate.errors?.[0];
  throw new CarkeyError('CK_CONFIG_INVALID', first === undefined ? 'the config file does not match its schema' : message(first), first === undefined ? undefined : { path: fieldPath(first.instancePath) });
}

/** Strict integer from a command-line flag: decimal digits with an optional minus sign, nothing else. */
export function parseIntegerFlag(key: string, value: string): number {
  if (!/^-?(0|[1-9][0-9]{0,15})$/.test(value)) throw new CarkeyError('CK_CONFIG_INVALID', `${key} = ${JSON.stringify(value)}: expected a decimal integer`);
  return Number(value);
}

/** The keys the schema types as integers (flags for them are parsed with parseIntegerFlag). */
export const INTEGER_KEYS: ReadonlySet<string> = new Set(
  Object.entries(CONFIG_SCHEMA.properties as Record<string, Schema>)
    .filter(([, schema]) => schema.type === 'integer')
    .map(([key]) => key),
);
