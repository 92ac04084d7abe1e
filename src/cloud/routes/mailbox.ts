/**
 * The mailbox: keys shared at a distance. POST /v1/mailbox/{recipientKey}
 * (an owner of the vehicle), GET /v1/mailbox (the caller's own items),
 * DELETE /v1/mailbox/{itemId} (its recipient acknowledges).
 *
 * Guarantees: only a current, unrevoked owner of `vehicleId` can post; an
 * item is readable and deletable only by its recipient, and expired items
 * are never served (and are purged); the box is opaque to the cloud (sealed
 * to the recipient) and is stored and served byte for byte. Deleting an
 * item that is not yours and one that does not exist give the same 403.
 */
import type { FastifyInstance } from 'fastify';
import { toHex } from '../../core/bytes.js';
import { SEALED_BOX_OVERHEAD } from '../../core/sealed-box.js';
import { requireRole } from '../access.js';
import { callerOf, type CloudContext } from '../context.js';
import { decodeB64, encodeB64 } from '../encoding.js';
import { badRequest, forbidden } from '../http-errors.js';
import { deleteMailboxSchema, getMailboxSchema, MAX_MAILBOX_ITEMS, postMailboxSchema } from '../schemas.js';

export const MAILBOX_MAX_LIFETIME_MS = 30 * 86_400_000;

export function registerMailboxRoutes(scope: FastifyInstance, ctx: CloudContext): void {
  const { store } = ctx;

  scope.post<{ Params: { recipientKey: string }; Body: { vehicleId: string; box: string; expiresAt: number } }>(
    '/v1/mailbox/:recipientKey',
    { schema: postMailboxSchema, config: { group: 'mailbox' } },
    async (request, reply) => {
      const caller = callerOf(request);
      const { vehicleId, expiresAt } = request.body;
      await requireRole(store, vehicleId, caller.key, ['owner']);
      const now = ctx.now();
      if (expiresAt <= now || expiresAt > now + MAILBOX_MAX_LIFETIME_MS) throw badRequest('expiresAt must be in the future and at most 30 days ahead', { reason: 'expiresAt' });
      const box = decodeB64(request.body.box);
      if (box === undefined || box.length < SEALED_BOX_OVERHEAD) throw badRequest(`box must be canonical base64url of a sealed box (at least ${SEALED_BOX_OVERHEAD} bytes)`, { reason: 'box' });
      const id = toHex(ctx.random(16));
      await store.putMailboxItem({ id, recipient: request.params.recipientKey, sender: caller.keyHex, vehicleId, box, postedAt: now, expiresAt });
      ctx.metrics.documents.inc({ kind: 'mailbox' });
      return reply.code(201).send({ id });
    },
  );

  scope.get('/v1/mailbox', { schema: getMailboxSchema, config: { group: 'mailbox' } }, async (request) => {
    const caller = callerOf(request);
    const items = await store.listMailbox(caller.keyHex, ctx.now(), MAX_MAILBOX_ITEMS);
    return {
      items: items.map((item) => ({ id: item.id, vehicleId: item.vehicleId, box: encodeB64(item.box), postedAt: item.postedAt, expiresAt: item.expiresAt, sender: item.sender })),
    };
  });

  scope.delete<{ Params: { itemId: string } }>('/v1/mailbox/:itemId', { schema: deleteMailboxSchema, config: { group: 'mailbox' } }, async (request, reply) => {
    const caller = callerOf(request);
    if (!(await store.deleteMailboxItem(caller.keyHex, request.params.itemId))) throw forbidden();
    return reply.code(204).send();
  });
}
