/**
 * JSON schemas of every request and answer (docs/cloud.md), used by fastify
 * to validate input before a handler runs and to serialize output (so an
 * answer never carries a field the contract does not name), and published
 * as OpenAPI at /docs.
 *
 * Guarantees: every id and key is pinned to its exact hex form, every binary
 * value to base64url text, every time to a non-negative safe integer, every
 * list to a maximum length; objects accept no unknown members.
 */
import { MAX_PAGE_CHECKPOINTS } from '../core/audit-page.js';
import { MAX_AUDIT_PAGE } from '../core/payloads.js';
import { B64_PATTERN, HEX32_PATTERN, HEX64_PATTERN } from './encoding.js';

export const BODY_LIMIT = 64 * 1024;
export const MAX_WAIT_SECONDS = 60;
export const MAX_AUDIT_LIMIT = 256;
export const MAX_MAILBOX_ITEMS = 100;
export const MAX_PENDING_COMMANDS = 64;

export const hex32 = { type: 'string', pattern: HEX32_PATTERN, minLength: 32, maxLength: 32 } as const;
export const hex64 = { type: 'string', pattern: HEX64_PATTERN, minLength: 64, maxLength: 64 } as const;
const hex128 = { type: 'string', pattern: '^[0-9a-f]{128}$', minLength: 128, maxLength: 128 } as const;
export const b64 = { type: 'string', pattern: B64_PATTERN, maxLength: BODY_LIMIT * 2 } as const;
export const ms = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const u32 = { type: 'integer', minimum: 0, maximum: 0xffff_ffff } as const;
const seq = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'details'],
      properties: {
        code: { type: 'string', pattern: '^CK_[A-Z0-9_]+$' },
        message: { type: 'string' },
        details: { type: 'object', additionalProperties: true },
      },
    },
  },
} as const;

/** Error answers every route can give. */
export const errorResponses = { '4xx': errorSchema, '5xx': errorSchema } as const;

const empty = { type: 'null', description: 'no body' } as const;

export const signedSecurity = [{ carkeySignature: [] as string[] }];

export const vehicleParams = { type: 'object', required: ['vehicleId'], additionalProperties: false, properties: { vehicleId: hex32 } } as const;
export const waitQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { wait: { type: 'integer', minimum: 1, maximum: MAX_WAIT_SECONDS, description: 'hold the answer up to this many seconds' } },
} as const;

// --- vehicles and key lists --------------------------------------------------

export const putVehicleSchema = {
  tags: ['vehicles'],
  summary: 'Register a vehicle, or move its key list forward, with a car-signed statement',
  security: signedSecurity,
  params: vehicleParams,
  body: { type: 'object', required: ['statement'], additionalProperties: false, properties: { statement: b64 } },
  response: {
    200: { type: 'object', required: ['vehicleId', 'epoch', 'version'], additionalProperties: false, properties: { vehicleId: hex32, epoch: u32, version: u32 } },
    ...errorResponses,
  },
} as const;

export const getKeyListSchema = {
  tags: ['key lists'],
  summary: 'Fetch the current key list (car or owner); ETag/If-None-Match; ?wait long-poll',
  security: signedSecurity,
  params: vehicleParams,
  querystring: waitQuery,
  headers: { type: 'object', properties: { 'if-none-match': { type: 'string', maxLength: 200 } } },
  response: {
    200: { type: 'object', required: ['keyList', 'epoch', 'version'], additionalProperties: false, properties: { keyList: b64, epoch: u32, version: u32 } },
    304: empty,
    ...errorResponses,
  },
} as const;

export const postKeyListSchema = {
  tags: ['key lists'],
  summary: 'Publish the next owner-signed key list (owner)',
  security: signedSecurity,
  params: vehicleParams,
  body: { type: 'object', required: ['keyList'], additionalProperties: false, properties: { keyList: b64 } },
  response: {
    200: { type: 'object', required: ['epoch', 'version'], additionalProperties: false, properties: { epoch: u32, version: u32 } },
    ...errorResponses,
  },
} as const;

// --- mailbox ---------------------------------------------------------------------

const mailboxItem = {
  type: 'object',
  required: ['id', 'vehicleId', 'box', 'postedAt', 'expiresAt', 'sender'],
  additionalProperties: false,
  properties: { id: hex32, vehicleId: hex32, box: b64, postedAt: ms, expiresAt: ms, sender: hex64 },
} as const;

export const postMailboxSchema = {
  tags: ['mailbox'],
  summary: "Post a sealed share bundle for a recipient (an owner of the bundle's vehicle)",
  security: signedSecurity,
  params: { type: 'object', required: ['recipientKey'], additionalProperties: false, properties: { recipientKey: hex64 } },
  body: { type: 'object', required: ['vehicleId', 'box', 'expiresAt'], additionalProperties: false, properties: { vehicleId: hex32, box: b64, expiresAt: ms } },
  response: { 201: { type: 'object', required: ['id'], additionalProperties: false, properties: { id: hex32 } }, ...errorResponses },
} as const;

export const getMailboxSchema = {
  tags: ['mailbox'],
  summary: "The caller's own unexpired items",
  security: signedSecurity,
  querystring: { type: 'object', additionalProperties: false, properties: {} },
  response: { 200: { type: 'object', required: ['items'], additionalProperties: false, properties: { items: { type: 'array', maxItems: MAX_MAILBOX_ITEMS, items: mailboxItem } } }, ...errorResponses },
} as const;

export const deleteMailboxSchema = {
  tags: ['mailbox'],
  summary: 'Acknowledge (delete) an item (its recipient)',
  security: signedSecurity,
  params: { type: 'object', required: ['itemId'], additionalProperties: false, properties: { itemId: hex32 } },
  response: { 204: empty, ...errorResponses },
} as const;

// --- audit -------------------------------------------------------------------------

const auditEntry = {
  type: 'object',
  required: ['seq', 'time', 'kind', 'fields', 'hash'],
  additionalProperties: false,
  properties: { seq, time: ms, kind: { type: 'string', maxLength: 32 }, fields: { type: 'object', additionalProperties: true }, hash: hex128 },
} as const;
const auditCheckpoint = { type: 'object', required: ['seq', 'hash', 'signature'], additionalProperties: false, properties: { seq, hash: hex128, signature: hex128 } } as const;
const auditPage = {
  type: 'object',
  required: ['entries', 'checkpoints', 'last'],
  additionalProperties: false,
  properties: {
    entries: { type: 'array', maxItems: MAX_AUDIT_PAGE, items: auditEntry },
    checkpoints: { type: 'array', maxItems: MAX_PAGE_CHECKPOINTS, items: auditCheckpoint },
    last: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    // The first page after a prune carries the checkpoint the retained log starts after (core/audit-page.ts).
    anchor: auditCheckpoint,
  },
} as const;

export const postAuditSchema = {
  tags: ['audit'],
  summary: 'Upload an audit page (the car); idempotent by seq, must continue the stored chain',
  security: signedSecurity,
  params: vehicleParams,
  body: auditPage,
  response: {
    200: { type: 'object', required: ['stored', 'lastSeq'], additionalProperties: false, properties: { stored: { type: 'integer', minimum: 0 }, lastSeq: { type: 'integer', minimum: 0 } } },
    ...errorResponses,
  },
} as const;

export const getAuditSchema = {
  tags: ['audit'],
  summary: 'Read the audit log from a seq (owner); at most 64 entries per page',
  security: signedSecurity,
  params: vehicleParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { from: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: 1 }, limit: { type: 'integer', minimum: 1, maximum: MAX_AUDIT_LIMIT, default: MAX_AUDIT_PAGE } },
  },
  response: { 200: auditPage, ...errorResponses },
} as const;

// --- remote commands ----------------------------------------------------------------

const commandParams = { type: 'object', required: ['vehicleId', 'commandId'], additionalProperties: false, properties: { vehicleId: hex32, commandId: hex32 } } as const;

export const postCommandSchema = {
  tags: ['remote commands'],
  summary: 'Post a phone-signed remote command sealed to the car (any signed key; the car decides)',
  security: signedSecurity,
  params: vehicleParams,
  body: { type: 'object', required: ['commandId', 'expiresAt', 'box'], additionalProperties: false, properties: { commandId: hex32, expiresAt: ms, box: b64 } },
  response: { 202: { type: 'object', required: ['commandId'], additionalProperties: false, properties: { commandId: hex32 } }, ...errorResponses },
} as const;

export const getCommandsSchema = {
  tags: ['remote commands'],
  summary: 'Pending commands (the car); ?wait long-poll while there are none',
  security: signedSecurity,
  params: vehicleParams,
  querystring: waitQuery,
  response: {
    200: {
      type: 'object',
      required: ['commands'],
      additionalProperties: false,
      properties: {
        commands: {
          type: 'array',
          maxItems: MAX_PENDING_COMMANDS,
          items: { type: 'object', required: ['commandId', 'box', 'caller', 'expiresAt'], additionalProperties: false, properties: { commandId: hex32, box: b64, caller: hex64, expiresAt: ms } },
        },
      },
    },
    ...errorResponses,
  },
} as const;

export const putResultSchema = {
  tags: ['remote commands'],
  summary: 'Post the car-signed result sealed to the caller (the car); idempotent',
  security: signedSecurity,
  params: commandParams,
  body: { type: 'object', required: ['box'], additionalProperties: false, properties: { box: b64 } },
  response: { 204: empty, ...errorResponses },
} as const;

export const getResultSchema = {
  tags: ['remote commands'],
  summary: 'The result of a command (only the key that posted it); 204 while there is none',
  security: signedSecurity,
  params: commandParams,
  querystring: waitQuery,
  response: { 200: { type: 'object', required: ['box'], additionalProperties: false, properties: { box: b64 } }, 204: empty, ...errorResponses },
} as const;

// --- operations -----------------------------------------------------------------------

export const timeSchema = {
  tags: ['operations'],
  summary: "The cloud's clock (unauthenticated)",
  response: { 200: { type: 'object', required: ['time'], additionalProperties: false, properties: { time: ms } } },
} as const;

export const healthSchema = {
  tags: ['operations'],
  summary: 'Liveness',
  response: { 200: { type: 'object', required: ['ok'], additionalProperties: false, properties: { ok: { type: 'boolean' } } } },
} as const;

export const readySchema = {
  tags: ['operations'],
  summary: 'Readiness: the database answers',
  response: { 200: { type: 'object', required: ['ok', 'store'], additionalProperties: false, properties: { ok: { type: 'boolean' }, store: { type: 'string' } } }, ...errorResponses },
} as const;

export const FAULT_ROUTES = ['key-list', 'commands', 'audit', 'mailbox', 'vehicles', '*'] as const;
export const FAULT_MODES = ['off', '500', '503', 'hang', 'reset', 'trickle', 'malformed', 'truncated', 'tamper'] as const;

export const faultsSchema = {
  tags: ['operations'],
  summary: 'Fault switch (only with --faults, only from loopback)',
  body: {
    type: 'object',
    required: ['route', 'mode'],
    additionalProperties: false,
    properties: { route: { type: 'string', enum: FAULT_ROUTES }, mode: { type: 'string', enum: FAULT_MODES } },
  },
  response: {
    200: { type: 'object', required: ['faults'], additionalProperties: false, properties: { faults: { type: 'object', additionalProperties: { type: 'string' } } } },
    ...errorResponses,
  },
} as const;
