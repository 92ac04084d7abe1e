/**
 * Audit upload pages: the car's log after the last seq the cloud
 * acknowledged, as the `auditRead` page JSON (entries, checkpoints, last,
 * and the anchor when the page starts a pruned log).
 *
 * Guarantees: the page is built by the same `auditRead` command the phone
 * uses over BLE (one codec, src/core/audit-page.ts; nothing re-encoded
 * here), so the cloud stores exactly what an owner's phone would verify.
 * Uploading is idempotent by seq (the cloud skips what it has), so a cursor
 * lost with sync.db only costs re-sending. Never throws past `nextPage`'s
 * caller: store failures surface as CarkeyErrors for the worker to retry.
 */
import { decodeAuditPage } from '../../core/audit-page.js';
import { CarkeyError } from '../../core/errors.js';
import { encodeAuditRead, MAX_AUDIT_PAGE } from '../../core/payloads.js';
import { executeCommand, type CommandContext } from '../commands.js';

export interface UploadPage {
  /** the page JSON, as the cloud takes it */
  readonly json: unknown;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** the car's newest seq when the page was read */
  readonly carLast: number;
}

/** The next page after `afterSeq`, or undefined when the cloud has everything. */
export async function nextPage(context: CommandContext, afterSeq: number): Promise<UploadPage | undefined> {
  if (context.store.lastAuditSeq() <= afterSeq) return undefined;
  const outcome = await executeCommand(context, 'auditRead', encodeAuditRead({ fromSeq: afterSeq + 1, limit: MAX_AUDIT_PAGE }));
  if (outcome.status !== 'ok') throw outcome.error;
  const bytes = outcome.payload ?? new Uint8Array(0);
  const page = decodeAuditPage(bytes);
  if (!page.ok) throw new CarkeyError('CK_INTERNAL', `the car's own audit page does not decode: ${page.error.message}`);
  const first = page.value.entries[0];
  const last = page.value.entries.at(-1);
  if (first === undefined || last === undefined) return undefined;
  return { json: JSON.parse(new TextDecoder().decode(bytes)) as unknown, firstSeq: first.seq, lastSeq: last.seq, carLast: page.value.last };
}
