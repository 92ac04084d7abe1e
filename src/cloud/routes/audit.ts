/**
 * The car's audit log in the cloud: POST /v1/vehicles/{id}/audit (the car
 * uploads a page), GET …/audit?from&limit (an owner reads).
 *
 * Guarantees:
 * - Only what will verify is stored: the page is decoded by core
 *   (`decodeAuditPage`); new entries must continue the stored chain with no
 *   gap, each link hash recomputed from its predecessor (`auditLinkHash`);
 *   each checkpoint must match the entry hash at its seq and carry a valid
 *   signature by the registered car key.
 * - Idempotent by seq: an entry or checkpoint already stored with the same
 *   content is skipped; a different one for a stored seq is 409 (the cloud
 *   never rewrites history). Racing uploads are a compare-and-set.
 * - Reads return stored entries in seq order with the checkpoints inside the
 *   returned range, at most MAX_AUDIT_PAGE (64) per page, so the phone's
 *   `verifyAuditPage`/AuditCollector checks them end to end.
 */
import type { FastifyInstance } from 'fastify';
import { equalBytes, toHex } from '../../core/bytes.js';
import { decodeAuditPage } from '../../core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, canonicalAuditFields, checkpointPayload, type AuditEntry } from '../../core/audit.js';
import { CarkeyError } from '../../core/errors.js';
import { MAX_AUDIT_PAGE } from '../../core/payloads.js';
import { requireRole } from '../access.js';
import { callerOf, rawBodyOf, type CloudContext } from '../context.js';
import { badRequest, conflict, refusedDocument } from '../http-errors.js';
import { getAuditSchema, postAuditSchema } from '../schemas.js';
import type { StoredAuditEntry, StoredCheckpoint } from '../store.js';

const CAS_ATTEMPTS = 3;

function chainBroken(detail: string, details: Record<string, unknown>): CarkeyError {
  return conflict('CK_AUDIT_CHAIN_BROKEN', detail, details);
}

function stored(entry: AuditEntry): StoredAuditEntry {
  return { seq: entry.seq, time: entry.time, kind: entry.kind, fields: canonicalAuditFields(entry.fields), hash: entry.hash };
}

function sameEntry(a: StoredAuditEntry, b: StoredAuditEntry): boolean {
  return a.seq === b.seq && a.time === b.time && a.kind === b.kind && a.fields === b.fields && equalBytes(a.hash, b.hash);
}

function parseFields(text: string): Record<string, string | number | boolean | null> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CarkeyError('CK_CLOUD_STORE', 'stored audit fields are not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CarkeyError('CK_CLOUD_STORE', 'stored audit fields are not an object');
  return parsed as Record<string, string | number | boolean | null>;
}

export function registerAuditRoutes(scope: FastifyInstance, ctx: CloudContext): void {
  const { store, crypto } = ctx;

  scope.post<{ Params: { vehicleId: string } }>('/v1/vehicles/:vehicleId/audit', { schema: postAuditSchema, config: { group: 'audit' } }, async (request) => {
    const { vehicleId } = request.params;
    const caller = callerOf(request);
    const access = await requireRole(store, vehicleId, caller.key, ['car']);
    const decoded = decodeAuditPage(rawBodyOf(request));
    if (!decoded.ok) throw refusedDocument('audit page', decoded.error);
    const page = decoded.value;
    const entries = page.entries.map(stored);
    for (let i = 1; i < entries.length; i++) {
      if (entries[i]?.seq !== (entries[0]?.seq ?? 0) + i) throw badRequest('page entries must have consecutive seqs in order', { reason: 'CK_AUDIT_CHAIN_BROKEN' });
    }
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const head = await store.auditHead(vehicleId);
      const headSeq = head?.seq ?? 0;
      const first = entries[0];
      const fresh: StoredAuditEntry[] = [];
      if (first !== undefined) {
        if (first.seq > headSeq + 1) throw chainBroken(`the page starts at seq ${first.seq}; the cloud holds up to ${headSeq}`, { expectedSeq: headSeq + 1, foundSeq: first.seq });
        const overlap = entries.filter((e) => e.seq <= headSeq);
        const known = overlap.length === 0 ? [] : await store.auditEntries(vehicleId, first.seq, headSeq);
        for (const entry of overlap) {
          const existing = known.find((k) => k.seq === entry.seq);
          if (existing === undefined || !sameEntry(existing, entry)) throw chainBroken(`entry seq ${entry.seq} differs from the one stored`, { seq: entry.seq });
        }
        let previous = head?.hash ?? AUDIT_GENESIS_HASH;
        for (const entry of entries.filter((e) => e.seq > headSeq)) {
          const computed = auditLinkHash(crypto, previous, { seq: entry.seq, time: entry.time, kind: entry.kind, fields: parseFields(entry.fields) });
          if (!equalBytes(computed, entry.hash)) throw chainBroken(`entry seq ${entry.seq} does not continue the chain`, { seq: entry.seq });
          fresh.push(entry);
          previous = entry.hash;
        }
      }
      const lastSeq = Math.max(headSeq, entries[entries.length - 1]?.seq ?? 0);
      const newCheckpoints: StoredCheckpoint[] = [];
      for (const checkpoint of page.checkpoints) {
        if (checkpoint.seq > lastSeq) throw chainBroken(`checkpoint seq ${checkpoint.seq} is past the last entry ${lastSeq}`, { checkpointSeq: checkpoint.seq });
        const [storedCheckpoint] = await store.auditCheckpoints(vehicleId, checkpoint.seq, checkpoint.seq);
        if (storedCheckpoint !== undefined) {
          if (!equalBytes(storedCheckpoint.hash, checkpoint.hash) || !equalBytes(storedCheckpoint.signature, checkpoint.signature)) {
            throw chainBroken(`checkpoint seq ${checkpoint.seq} differs from the one stored`, { checkpointSeq: checkpoint.seq });
          }
          continue;
        }
        const entry = entries.find((e) => e.seq === checkpoint.seq) ?? (await store.auditEntries(vehicleId, checkpoint.seq, checkpoint.seq))[0];
        if (entry === undefined || !equalBytes(entry.hash, checkpoint.hash)) throw chainBroken(`checkpoint seq ${checkpoint.seq} does not match the chain`, { checkpointSeq: checkpoint.seq });
        if (!crypto.verify(access.record.vehicleKey, checkpointPayload(checkpoint.seq, checkpoint.hash), checkpoint.signature).ok) {
          throw chainBroken(`checkpoint seq ${checkpoint.seq} is not signed by this car`, { checkpointSeq: checkpoint.seq, signature: 'CK_CRED_BAD_SIGNATURE' });
        }
        if (!newCheckpoints.some((c) => c.seq === checkpoint.seq)) newCheckpoints.push(checkpoint);
      }
      if (await store.appendAudit(vehicleId, fresh, newCheckpoints, ctx.now())) {
        if (fresh.length > 0) ctx.metrics.documents.inc({ kind: 'audit-entry' }, fresh.length);
        return { stored: fresh.length, lastSeq };
      }
    }
    throw conflict('CK_CLOUD_CONFLICT', 'another upload for this car was stored meanwhile; send the page again');
  });

  scope.get<{ Params: { vehicleId: string }; Querystring: { from: number; limit: number } }>(
    '/v1/vehicles/:vehicleId/audit',
    { schema: getAuditSchema, config: { group: 'audit' } },
    async (request) => {
      const { vehicleId } = request.params;
      await requireRole(store, vehicleId, callerOf(request).key, ['owner']);
      const from = request.query.from;
      const limit = Math.min(request.query.limit, MAX_AUDIT_PAGE);
      const entries = await store.auditEntries(vehicleId, from, from + limit - 1);
      const to = entries[entries.length - 1]?.seq ?? from - 1;
      const checkpoints = to >= from ? await store.auditCheckpoints(vehicleId, from, to) : [];
      const head = await store.auditHead(vehicleId);
      return {
        entries: entries.map((e) => ({ seq: e.seq, time: e.time, kind: e.kind, fields: parseFields(e.fields), hash: toHex(e.hash) })),
        checkpoints: checkpoints.map((c) => ({ seq: c.seq, hash: toHex(c.hash), signature: toHex(c.signature) })),
        last: head?.seq ?? 0,
      };
    },
  );
}
