/**
 * Remote commands: POST /v1/vehicles/{id}/commands (any signed key),
 * GET …/commands?wait (the car), PUT …/commands/{cid}/result (the car),
 * GET …/commands/{cid}/result?wait (only the key that posted the command).
 *
 * Guarantees: the cloud sees only routing metadata (id, expiry, who posted);
 * the box is sealed to the car (command) or to the caller (result) and
 * relayed byte for byte. A command id is single-use per vehicle (409 the
 * second time); a command is offered to the car only while unexpired and
 * unanswered, at most MAX_PENDING_COMMANDS at a time (429 beyond, so one
 * caller cannot bury the owner's command); the first result stored wins and
 * repeating it is harmless (204). Posting to an unregistered vehicle is
 * accepted like any other (it simply expires), so posting reveals nothing;
 * every read outside its role is the one 403.
 */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_REPLAY_WINDOW_MS } from '../../core/cloud-auth.js';
import { MAX_REMOTE_COMMAND_LIFETIME_MS } from '../../core/cloud-docs.js';
import { CarkeyError } from '../../core/errors.js';
import { SEALED_BOX_OVERHEAD } from '../../core/sealed-box.js';
import { requireRole } from '../access.js';
import { callerOf, disconnectSignal, type CloudContext } from '../context.js';
import { decodeB64, encodeB64 } from '../encoding.js';
import { badRequest, conflict, forbidden } from '../http-errors.js';
import { getCommandsSchema, getResultSchema, MAX_PENDING_COMMANDS, postCommandSchema, putResultSchema } from '../schemas.js';
import { topics, type CommandRecord } from '../store.js';

/** Answered and expired commands are kept this long after expiry, so a late caller still reads its result. */
export const COMMAND_RETENTION_MS = 86_400_000;

function boxOf(text: string): Uint8Array {
  const box = decodeB64(text);
  if (box === undefined || box.length < SEALED_BOX_OVERHEAD) throw badRequest(`box must be canonical base64url of a sealed box (at least ${SEALED_BOX_OVERHEAD} bytes)`, { reason: 'box' });
  return box;
}

interface CommandParams {
  readonly vehicleId: string;
  readonly commandId: string;
}

export function registerCommandRoutes(scope: FastifyInstance, ctx: CloudContext): void {
  const { store } = ctx;

  scope.post<{ Params: { vehicleId: string }; Body: { commandId: string; expiresAt: number; box: string } }>(
    '/v1/vehicles/:vehicleId/commands',
    { schema: postCommandSchema, config: { group: 'commands' } },
    async (request, reply) => {
      const { vehicleId } = request.params;
      const caller = callerOf(request);
      const { commandId, expiresAt } = request.body;
      const now = ctx.now();
      if (expiresAt <= now || expiresAt > now + MAX_REMOTE_COMMAND_LIFETIME_MS + DEFAULT_REPLAY_WINDOW_MS) {
        throw badRequest(`expiresAt must be in the future and at most ${MAX_REMOTE_COMMAND_LIFETIME_MS / 60_000} minutes ahead`, { reason: 'expiresAt' });
      }
      const box = boxOf(request.body.box);
      const pending = await store.pendingCommands(vehicleId, now, MAX_PENDING_COMMANDS);
      if (pending.length >= MAX_PENDING_COMMANDS) throw new CarkeyError('CK_CLOUD_RATE_LIMITED', `${MAX_PENDING_COMMANDS} commands are already waiting for this car`, { retryAfterMs: 30_000 });
      const record: CommandRecord = { vehicleId, commandId, caller: caller.keyHex, box, postedAt: now, expiresAt, result: undefined, resultAt: undefined };
      if (!(await store.putCommand(record))) throw conflict('CK_PROTO_REPLAY', 'this command id was already used for this vehicle');
      ctx.metrics.documents.inc({ kind: 'command' });
      ctx.notices.publish(vehicleId, 'commands');
      return reply.code(202).send({ commandId });
    },
  );

  scope.get<{ Params: { vehicleId: string }; Querystring: { wait?: number } }>(
    '/v1/vehicles/:vehicleId/commands',
    { schema: getCommandsSchema, config: { group: 'commands' } },
    async (request, reply) => {
      const { vehicleId } = request.params;
      await requireRole(store, vehicleId, callerOf(request).key, ['car']);
      const load = async (): Promise<readonly CommandRecord[] | undefined> => {
        const pending = await store.pendingCommands(vehicleId, ctx.now(), MAX_PENDING_COMMANDS);
        return pending.length > 0 ? pending : undefined;
      };
      const wait = request.query.wait;
      const commands = (wait === undefined ? await load() : await ctx.poller.wait(topics.commands(vehicleId), wait * 1000, load, disconnectSignal(reply))) ?? [];
      return { commands: commands.map((c) => ({ commandId: c.commandId, box: encodeB64(c.box), caller: c.caller, expiresAt: c.expiresAt })) };
    },
  );

  scope.put<{ Params: CommandParams; Body: { box: string } }>(
    '/v1/vehicles/:vehicleId/commands/:commandId/result',
    { schema: putResultSchema, config: { group: 'commands' } },
    async (request, reply) => {
      const { vehicleId, commandId } = request.params;
      await requireRole(store, vehicleId, callerOf(request).key, ['car']);
      const box = boxOf(request.body.box);
      if (!(await store.putResult(vehicleId, commandId, box, ctx.now()))) {
        const command = await store.getCommand(vehicleId, commandId);
        if (command === undefined) throw forbidden();
      } else {
        ctx.metrics.documents.inc({ kind: 'result' });
      }
      return reply.code(204).send();
    },
  );

  scope.get<{ Params: CommandParams; Querystring: { wait?: number } }>(
    '/v1/vehicles/:vehicleId/commands/:commandId/result',
    { schema: getResultSchema, config: { group: 'commands' } },
    async (request, reply) => {
      const { vehicleId, commandId } = request.params;
      const caller = callerOf(request);
      const command = await store.getCommand(vehicleId, commandId);
      if (command === undefined || command.caller !== caller.keyHex) throw forbidden();
      const load = async (): Promise<Uint8Array | undefined> => (await store.getCommand(vehicleId, commandId))?.result;
      const wait = request.query.wait;
      const result = command.result ?? (wait === undefined ? undefined : await ctx.poller.wait(topics.result(vehicleId, commandId), wait * 1000, load, disconnectSignal(reply)));
      if (result === undefined) return reply.code(204).send();
      return { box: encodeB64(result) };
    },
  );
}
