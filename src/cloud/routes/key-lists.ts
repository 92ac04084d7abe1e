/**
 * Vehicles and their key lists: PUT /v1/vehicles/{id} (car-signed
 * statement), GET and POST /v1/vehicles/{id}/key-list.
 *
 * Guarantees:
 * - A vehicle id can only be registered by a statement the car's own
 *   identity key signed, and the id must be the one derived from that key:
 *   nobody can squat an id with a list they signed themselves.
 * - The stored list only moves forward: by a car statement naming a later
 *   epoch, or the same epoch and a version ≥ the stored one; or by an
 *   owner-signed list that core `acceptKeyList` accepts against the stored
 *   one (same epoch, version +1..+16, signer an unrevoked owner). Every
 *   write is a compare-and-set, so racing instances cannot both win.
 * - The exact bytes sent are stored and served; GET carries ETag "E.V",
 *   answers 304 to a matching If-None-Match, and with ?wait holds until a
 *   newer list is stored (re-checking the caller's role on the new list).
 */
import type { FastifyInstance } from 'fastify';
import { fromHex, toHex } from '../../core/bytes.js';
import { verifyVehicleStatement } from '../../core/vehicle-statement.js';
import { acceptKeyList, decodeKeyList } from '../../core/credentials.js';
import { CarkeyError } from '../../core/errors.js';
import { accessTo, decodeStoredList, requireRole } from '../access.js';
import { callerOf, disconnectSignal, type CloudContext } from '../context.js';
import { decodeB64, encodeB64 } from '../encoding.js';
import { badRequest, conflict, forbidden, refusedDocument } from '../http-errors.js';
import { getKeyListSchema, postKeyListSchema, putVehicleSchema } from '../schemas.js';
import { topics, type VehicleRecord } from '../store.js';

const CAS_ATTEMPTS = 3;

export function etagOf(record: { readonly epoch: number; readonly version: number }): string {
  return `"${record.epoch}.${record.version}"`;
}

/** Does an If-None-Match header name this ETag (or `*`)? Weak and listed forms accepted. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((part) => {
    const tag = part.trim().replace(/^W\//, '');
    return tag === '*' || tag === etag;
  });
}

function idBytes(vehicleId: string): Uint8Array {
  const bytes = fromHex(vehicleId);
  if (bytes === undefined) throw badRequest('vehicle id must be 32 lowercase hex digits');
  return bytes;
}

interface VehicleParams {
  readonly vehicleId: string;
}

export function registerKeyListRoutes(scope: FastifyInstance, ctx: CloudContext): void {
  const { store, crypto } = ctx;

  scope.put<{ Params: VehicleParams; Body: { statement: string } }>('/v1/vehicles/:vehicleId', { schema: putVehicleSchema, config: { group: 'vehicles' } }, async (request) => {
    const { vehicleId } = request.params;
    const bytes = decodeB64(request.body.statement);
    if (bytes === undefined) throw badRequest('statement must be canonical base64url');
    const verified = verifyVehicleStatement(crypto, bytes);
    if (!verified.ok) throw refusedDocument('vehicle statement', verified.error);
    const statement = verified.value;
    if (toHex(statement.vehicleId) !== vehicleId) {
      throw conflict('CK_CRED_WRONG_VEHICLE', 'the statement is signed by another car than the one this id belongs to');
    }
    const list = statement.keyList;
    if (list === undefined) throw badRequest('the statement names no key list (the car has no owner yet)', { reason: 'CK_KEYLIST_EMPTY_OWNERS' });
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const stored = await store.getVehicle(vehicleId);
      const now = ctx.now();
      if (stored === undefined) {
        const record: VehicleRecord = {
          vehicleId,
          vehicleKey: statement.vehicleKey,
          statement: bytes,
          keyList: statement.keyListBytes,
          epoch: list.epoch,
          version: list.version,
          registeredAt: now,
          updatedAt: now,
        };
        if (await store.insertVehicle(record)) {
          ctx.metrics.documents.inc({ kind: 'vehicle-statement' });
          ctx.notices.publish(vehicleId, 'key-list');
          return { vehicleId, epoch: list.epoch, version: list.version };
        }
        continue;
      }
      if (list.epoch < stored.epoch) throw conflict('CK_KEYLIST_WRONG_EPOCH', `the statement names epoch ${list.epoch}; the cloud holds epoch ${stored.epoch}`, { epoch: stored.epoch, version: stored.version });
      if (list.epoch === stored.epoch && list.version < stored.version) {
        throw conflict('CK_KEYLIST_ROLLBACK', `the statement names version ${list.version}; the cloud holds ${stored.version}`, { epoch: stored.epoch, version: stored.version });
      }
      if (list.epoch === stored.epoch && list.version === stored.version) return { vehicleId, epoch: stored.epoch, version: stored.version };
      const moved = await store.updateKeyList(vehicleId, stored, { keyList: statement.keyListBytes, statement: bytes, epoch: list.epoch, version: list.version, updatedAt: now });
      if (moved) {
        ctx.metrics.documents.inc({ kind: 'vehicle-statement' });
        ctx.notices.publish(vehicleId, 'key-list');
        return { vehicleId, epoch: list.epoch, version: list.version };
      }
    }
    throw conflict('CK_CLOUD_CONFLICT', 'the stored key list kept changing; send the statement again');
  });

  scope.get<{ Params: VehicleParams; Querystring: { wait?: number } }>('/v1/vehicles/:vehicleId/key-list', { schema: getKeyListSchema, config: { group: 'key-list' } }, async (request, reply) => {
    const { vehicleId } = request.params;
    const caller = callerOf(request);
    let access = await requireRole(store, vehicleId, caller.key, ['car', 'owner']);
    const known = request.headers['if-none-match'];
    if (etagMatches(known, etagOf(access.record))) {
      const wait = request.query.wait;
      if (wait !== undefined) {
        const etag = etagOf(access.record);
        const newer = await ctx.poller.wait(
          topics.keyList(vehicleId),
          wait * 1000,
          async () => {
            const record = await store.getVehicle(vehicleId);
            return record !== undefined && etagOf(record) !== etag ? record : undefined;
          },
          disconnectSignal(reply),
        );
        if (newer !== undefined) {
          const renewed = accessTo(newer, caller.key, ['car', 'owner']);
          if (renewed === undefined) throw forbidden();
          access = renewed;
        }
      }
    }
    const record = access.record;
    reply.header('etag', etagOf(record)).header('cache-control', 'private, no-cache');
    if (etagMatches(known, etagOf(record))) return reply.code(304).send();
    return { keyList: encodeB64(record.keyList), epoch: record.epoch, version: record.version };
  });

  scope.post<{ Params: VehicleParams; Body: { keyList: string } }>('/v1/vehicles/:vehicleId/key-list', { schema: postKeyListSchema, config: { group: 'key-list' } }, async (request) => {
    const { vehicleId } = request.params;
    const caller = callerOf(request);
    const bytes = decodeB64(request.body.keyList);
    if (bytes === undefined) throw badRequest('keyList must be canonical base64url');
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const access = await requireRole(store, vehicleId, caller.key, ['owner']);
      const decoded = decodeKeyList(bytes);
      if (!decoded.ok) throw refusedDocument('key list', decoded.error);
      const current = decodeStoredList(access.record);
      if (current === undefined) throw new CarkeyError('CK_CLOUD_STORE', 'the stored key list does not decode');
      const record = access.record;
      const accepted = acceptKeyList(crypto, decoded.value, current, idBytes(vehicleId), { state: { epoch: record.epoch, highestVersion: record.version } });
      if (!accepted.ok) throw refusedDocument('key list', accepted.error);
      const list = accepted.value;
      if (await store.updateKeyList(vehicleId, record, { keyList: bytes, epoch: list.epoch, version: list.version, updatedAt: ctx.now() })) {
        ctx.metrics.documents.inc({ kind: 'key-list' });
        ctx.notices.publish(vehicleId, 'key-list');
        return { epoch: list.epoch, version: list.version };
      }
    }
    throw conflict('CK_CLOUD_CONFLICT', 'the stored key list kept changing; fetch it and try again');
  });
}
