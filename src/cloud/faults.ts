/**
 * The fault switch (`--faults`; tests and the demo only): make a route group
 * misbehave the ways a real cloud can, so tests show that none of it keeps
 * anyone out of a car.
 *
 * Modes, per group ("key-list", "commands", "audit", "mailbox", "vehicles")
 * or for all of them ("*"; a group's own setting wins):
 *   500 / 503   answer that status (CK_CLOUD_SERVER_ERROR / CK_CLOUD_STORE)
 *   hang        never answer (the connection stays open until the client
 *               gives up or the server shuts down)
 *   reset       reset the TCP connection without an answer
 *   trickle     send the real answer one byte every `trickleByteMs`
 *   malformed   200 with a body that is not JSON
 *   truncated   the real answer's headers and half its body, then close
 *   tamper      the real answer with one byte of its document changed
 *               (a cloud that alters what it stores)
 *
 * Guarantees: without `--faults` none of this is installed and POST /_faults
 * does not exist; with it, POST /_faults is refused (403) unless the TCP peer
 * is a loopback address (X-Forwarded-For and the like are ignored); faults
 * never touch /health, /ready, /metrics, /docs or /_faults itself; hung
 * connections are destroyed at shutdown so it is never held up.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import { CarkeyError } from '../core/errors.js';
import type { FaultGroup } from './context.js';
import { decodeB64, encodeB64 } from './encoding.js';
import { errorBody, forbidden } from './http-errors.js';
import { FAULT_MODES, FAULT_ROUTES, faultsSchema } from './schemas.js';

export type FaultRoute = (typeof FAULT_ROUTES)[number];
export type FaultMode = (typeof FAULT_MODES)[number];

export class FaultSwitch {
  readonly #modes = new Map<FaultRoute, Exclude<FaultMode, 'off'>>();

  set(route: FaultRoute, mode: FaultMode): void {
    if (mode === 'off') {
      if (route === '*') this.#modes.clear();
      else this.#modes.delete(route);
    } else this.#modes.set(route, mode);
  }

  modeFor(group: FaultGroup | undefined): Exclude<FaultMode, 'off'> | undefined {
    if (group === undefined) return undefined;
    return this.#modes.get(group) ?? this.#modes.get('*');
  }

  snapshot(): Record<string, string> {
    return Object.fromEntries(this.#modes);
  }
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || /^127\./.test(address) || /^::ffff:127\./.test(address);
}

/** Change one byte of the first document in a JSON answer (keyList, statement, box, or an audit entry's hash). */
export function tamperPayload(text: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  const flipB64 = (value: string): string => {
    const bytes = decodeB64(value);
    if (bytes === undefined || bytes.length === 0) return value;
    const copy = Uint8Array.from(bytes);
    const index = Math.floor(copy.length / 2);
    copy[index] = (copy[index] ?? 0) ^ 0x01;
    return encodeB64(copy);
  };
  const flipHex = (value: string): string => {
    const index = Math.floor(value.length / 2);
    const digit = value[index] === '0' ? '1' : '0';
    return `${value.slice(0, index)}${digit}${value.slice(index + 1)}`;
  };
  const visit = (node: unknown): boolean => {
    if (Array.isArray(node)) return node.some(visit);
    if (typeof node !== 'object' || node === null) return false;
    const record = node as Record<string, unknown>;
    for (const name of ['keyList', 'statement', 'box']) {
      const value = record[name];
      if (typeof value === 'string' && value.length > 0) {
        record[name] = flipB64(value);
        return true;
      }
    }
    const entries = record.entries;
    if (Array.isArray(entries)) {
      const first: unknown = entries[0];
      if (typeof first === 'object' && first !== null && 'hash' in first && typeof first.hash === 'string') {
        (first as Record<string, unknown>).hash = flipHex(first.hash);
        return true;
      }
    }
    return Object.values(record).some(visit);
  };
  visit(parsed);
  return JSON.stringify(parsed);
}

function trickle(bytes: Buffer, byteMs: number): Readable {
  let offset = 0;
  let timer: NodeJS.Timeout | undefined;
  return new Readable({
    read() {
      if (timer !== undefined) return;
      timer = setTimeout(() => {
        timer = undefined;
        if (offset >= bytes.length) this.push(null);
        else this.push(bytes.subarray(offset, ++offset));
      }, byteMs);
    },
    destroy(error, callback) {
      if (timer !== undefined) clearTimeout(timer);
      callback(error);
    },
  });
}

function truncated(bytes: Buffer): Readable {
  let sent = false;
  let timer: NodeJS.Timeout | undefined;
  return new Readable({
    read() {
      if (sent) return;
      sent = true;
      this.push(bytes.subarray(0, Math.floor(bytes.length / 2)));
      // fail only once the half has gone out, so the client sees headers and a cut body
      timer = setTimeout(() => this.destroy(new CarkeyError('CK_CLOUD_SERVER_ERROR', 'fault: truncated')), 50);
    },
    destroy(error, callback) {
      if (timer !== undefined) clearTimeout(timer);
      callback(error);
    },
  });
}

export interface FaultOptions {
  readonly trickleByteMs?: number;
}

/** Install the fault hooks and POST /_faults on the root instance. */
export function installFaults(app: FastifyInstance, faults: FaultSwitch, options: FaultOptions = {}): void {
  const hung = new Set<Socket>();
  const byteMs = options.trickleByteMs ?? 200;
  const modeOf = (request: FastifyRequest): Exclude<FaultMode, 'off'> | undefined => faults.modeFor(request.routeOptions.config.group);

  app.addHook('onRequest', async (request, reply) => {
    const mode = modeOf(request);
    if (mode === '500' || mode === '503') {
      const error = new CarkeyError(mode === '500' ? 'CK_CLOUD_SERVER_ERROR' : 'CK_CLOUD_STORE', 'fault switch');
      return reply.code(Number(mode)).send(errorBody(error));
    }
    if (mode === 'hang' || mode === 'reset') {
      reply.hijack();
      const socket = request.raw.socket;
      if (mode === 'reset') {
        socket.resetAndDestroy();
        return reply;
      }
      hung.add(socket);
      socket.once('close', () => hung.delete(socket));
      return reply;
    }
    return undefined;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const mode = modeOf(request);
    if (mode === undefined || typeof payload !== 'string' || reply.statusCode >= 300 || payload.length === 0) return payload;
    if (mode === 'tamper') return tamperPayload(payload);
    if (mode === 'malformed') return '{"carkey": this is not json]';
    const bytes = Buffer.from(payload, 'utf8');
    reply.header('content-length', bytes.length);
    if (mode === 'trickle') return trickle(bytes, byteMs);
    if (mode === 'truncated') return truncated(bytes);
    return payload;
  });

  app.addHook('preClose', (done) => {
    for (const socket of hung) socket.destroy();
    hung.clear();
    done();
  });

  app.post<{ Body: { route: FaultRoute; mode: FaultMode } }>('/_faults', { schema: faultsSchema }, (request) => {
    if (!isLoopback(request.socket.remoteAddress)) throw forbidden();
    faults.set(request.body.route, request.body.mode);
    return { faults: faults.snapshot() };
  });
}
