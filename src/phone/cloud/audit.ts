/**
 * The cloud's copy of a car's audit log, read by an owner page by page into
 * the same AuditCollector the BLE `audit` path uses, so `--verify` is the
 * same check (src/core/audit.ts: every link hash, no gaps, every checkpoint
 * against the car key pinned at pairing).
 *
 * Guarantees: every page is decoded with core's decodeAuditPage before use
 * (a malformed page is CK_CLOUD_BAD_RESPONSE); the number of pages is
 * bounded; the cloud can withhold entries after the newest checkpoint (the
 * verifier reports them as uncovered), never alter or reorder covered ones
 * without CK_AUDIT_CHAIN_BROKEN.
 */
import { AuditCollector, decodeAuditPage } from '../../core/audit-page.js';
import { CarkeyError } from '../../core/errors.js';
import { MAX_AUDIT_PAGE } from '../../core/payloads.js';
import type { VehicleRecord } from '../vehicle-record.js';
import type { PhoneCloudDeps } from './deps.js';

/** Entries asked for per page: the most core's page decoder accepts (the cloud serves at most this many too). */
export const CLOUD_AUDIT_PAGE = MAX_AUDIT_PAGE;
const MAX_PAGES = 10_000;

/** Read entries from `fromSeq` until the cloud has no more, or `limit` entries were read. */
export async function readCloudAudit(deps: PhoneCloudDeps, record: VehicleRecord, fromSeq: number, limit: number): Promise<AuditCollector> {
  const collector = new AuditCollector(fromSeq);
  for (let page = 0; page < MAX_PAGES && collector.all.length < limit; page++) {
    deps.progress?.(`reading the cloud's audit entries from ${collector.nextSeq}…`);
    const bytes = await deps.client.readAudit(record.vehicleId, collector.nextSeq, Math.min(CLOUD_AUDIT_PAGE, limit - collector.all.length));
    const decoded = decodeAuditPage(bytes);
    if (!decoded.ok) throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', `audit page: ${decoded.error.message}`, { reason: decoded.error.code });
    if (!collector.add(decoded.value)) break;
  }
  return collector;
}
