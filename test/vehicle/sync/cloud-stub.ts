/**
 * An in-process stand-in for carkey-cloud, following docs/cloud.md, for the
 * sync worker's unit tests: real HTTP on 127.0.0.1, request signatures
 * checked with core's verifier, key-list ETags and long-polls, the command
 * queue and results, audit pages stored by seq.
 *
 * Unlike the real service it can be made hostile on purpose: `serveKeyList`
 * stores any bytes (a compromised cloud), and `override` answers any request
 * itself (500, a hang, a reset, garbage) before the normal handling.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fromBase64Url, toBase64Url, toHex } from '../../../src/core/bytes.js';
import { verifyRequestSignature } from '../../../src/core/cloud-auth.js';
import { verifyVehicleStatement } from '../../../src/core/vehicle-statement.js';
import { decodeKeyList } from '../../../src/core/credentials.js';
import { createCrypto } from '../../../src/core/crypto/index.js';

const crypto = createCrypto('node');

export interface StubRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
  readonly caller: string | undefined;
}

export type Override = 'hang' | 'reset' | { readonly status: number; readonly body?: string; readonly headers?: Record<string, string> } | undefined;

interface StoredCommand {
  readonly vehicle: string;
  readonly box: string;
  readonly caller: string;
  readonly expiresAt: number;
  result: string | undefined;
}

export class CloudStub {
  url = '';
  readonly log: { method: string; path: string; status: number }[] = [];
  override: ((request: StubRequest) => Override) | undefined;
  /** vehicle id hex → car key hex */
  readonly cars = new Map<string, string>();
  /** vehicle id hex → the key list served (exact bytes) */
  readonly keyLists = new Map<string, { bytes: Uint8Array; etag: string }>();
  readonly commands = new Map<string, StoredCommand>();
  readonly audit = new Map<string, Map<number, { hash: string; entry: unknown }>>();
  readonly resultPuts = new Map<string, number>();
  /** the seqs of every audit page posted, in order */
  readonly auditPosts: number[][] = [];
  readonly statements: { vehicle: string; epoch: number; version: number }[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private waiters = new Set<() => void>();

  async start(): Promise<void> {
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.handle(request, response, Buffer.concat(chunks)).catch(() => {
          if (!response.headersSent) response.writeHead(500).end();
        });
      });
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.notify();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }

  /** A compromised cloud: serve these bytes as the vehicle's key list, verified by nobody. */
  serveKeyList(vehicleHex: string, bytes: Uint8Array, etag?: string): void {
    const decoded = decodeKeyList(bytes);
    this.keyLists.set(vehicleHex, { bytes, etag: etag ?? (decoded.ok ? `"${decoded.value.epoch}.${decoded.value.version}"` : '"9.9"') });
    this.notify();
  }

  /** A phone posts a remote command (no auth needed here: the car decides). */
  postCommand(vehicleHex: string, commandId: Uint8Array, box: Uint8Array, caller: Uint8Array, expiresAt: number): void {
    this.commands.set(toHex(commandId), { vehicle: vehicleHex, box: toBase64Url(box), caller: toHex(caller), expiresAt, result: undefined });
    this.notify();
  }

  result(commandId: Uint8Array): Uint8Array | undefined {
    const stored = this.commands.get(toHex(commandId))?.result;
    return stored === undefined ? undefined : fromBase64Url(stored);
  }

  count(method: string, pattern: RegExp): number {
    return this.log.filter((entry) => entry.method === method && pattern.test(entry.path)).length;
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const waiter of waiters) waiter();
  }

  private wait(seconds: number, done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(finish, seconds * 1000);
      const check = (): void => {
        if (done()) finish();
        else this.waiters.add(check);
      };
      function finish(): void {
        clearTimeout(timer);
        resolve();
      }
      check();
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse, raw: Buffer): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://stub');
    const method = request.method ?? 'GET';
    const verified = verifyRequestSignature(crypto, request.headers, { method, path: url.pathname, query: url.search.slice(1), body: new Uint8Array(raw) }, Date.now());
    let body: unknown;
    try {
      body = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
    } catch {
      body = undefined;
    }
    const stubRequest: StubRequest = { method, path: url.pathname, query: url.searchParams, body, caller: verified.ok ? toHex(verified.value.publicKey) : undefined };
    const send = (status: number, answer?: unknown, headers: Record<string, string> = {}): void => {
      this.log.push({ method, path: url.pathname, status });
      response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(answer === undefined ? undefined : JSON.stringify(answer));
    };
    const refuse = (status: number, code: string): void => send(status, { error: { code, message: code, details: {} } });
    const override = this.override?.(stubRequest);
    if (override === 'hang') {
      this.log.push({ method, path: url.pathname, status: 0 });
      return;
    }
    if (override === 'reset') {
      this.log.push({ method, path: url.pathname, status: -1 });
      request.socket.destroy();
      return;
    }
    if (override !== undefined) {
      this.log.push({ method, path: url.pathname, status: override.status });
      response.writeHead(override.status, { 'content-type': 'application/json', ...override.headers }).end(override.body ?? '');
      return;
    }
    if (method === 'GET' && url.pathname === '/v1/time') return send(200, { time: Date.now() });
    if (!verified.ok) return refuse(401, verified.error.code);
    const caller = toHex(verified.value.publicKey);
    const parts = url.pathname.split('/').filter((p) => p !== '');
    const vehicle = parts[2] ?? '';
    const isCar = this.cars.get(vehicle) === caller;
    const wait = Math.min(60, Number(url.searchParams.get('wait') ?? '0'));

    if (method === 'PUT' && parts.length === 3) {
      const text = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).statement : undefined;
      const bytes = typeof text === 'string' ? fromBase64Url(text) : undefined;
      const statement = bytes === undefined ? undefined : verifyVehicleStatement(crypto, bytes);
      if (statement === undefined || !statement.ok || statement.value.keyList === undefined) return refuse(400, 'CK_CLOUD_BAD_REQUEST');
      if (toHex(statement.value.vehicleId) !== vehicle) return refuse(403, 'CK_CLOUD_FORBIDDEN');
      const list = statement.value.keyList;
      this.cars.set(vehicle, toHex(statement.value.vehicleKey));
      this.statements.push({ vehicle, epoch: list.epoch, version: list.version });
      const current = this.keyLists.get(vehicle);
      const currentList = current === undefined ? undefined : decodeKeyList(current.bytes);
      const stored = currentList?.ok === true ? currentList.value : undefined;
      if (stored !== undefined && (list.epoch < stored.epoch || (list.epoch === stored.epoch && list.version < stored.version))) return refuse(409, 'CK_CLOUD_CONFLICT');
      if (stored === undefined || list.epoch > stored.epoch || list.version > stored.version) this.serveKeyList(vehicle, list.bytes);
      return send(200, { vehicleId: vehicle, epoch: list.epoch, version: list.version });
    }
    if (!isCar) return refuse(403, 'CK_CLOUD_FORBIDDEN');

    if (method === 'GET' && parts[3] === 'key-list') {
      const etag = request.headers['if-none-match'];
      const current = (): { bytes: Uint8Array; etag: string } | undefined => this.keyLists.get(vehicle);
      if (etag !== undefined && wait > 0) await this.wait(wait, () => current()?.etag !== etag);
      const list = current();
      if (list === undefined) return refuse(403, 'CK_CLOUD_FORBIDDEN');
      if (etag === list.etag) return send(304, undefined, { etag: list.etag });
      const decoded = decodeKeyList(list.bytes);
      return send(200, { keyList: toBase64Url(list.bytes), epoch: decoded.ok ? decoded.value.epoch : 9, version: decoded.ok ? decoded.value.version : 9 }, { etag: list.etag });
    }
    if (method === 'GET' && parts[3] === 'commands' && parts.length === 4) {
      const pending = (): StoredCommand[] => [...this.commands.values()].filter((c) => c.vehicle === vehicle && c.result === undefined && c.expiresAt > Date.now());
      if (wait > 0) await this.wait(wait, () => pending().length > 0);
      return send(200, {
        commands: [...this.commands.entries()].filter(([, c]) => c.vehicle === vehicle && c.result === undefined && c.expiresAt > Date.now()).map(([id, c]) => ({ commandId: id, box: c.box, caller: c.caller, expiresAt: c.expiresAt })),
      });
    }
    if (method === 'PUT' && parts[3] === 'commands' && parts[5] === 'result') {
      const id = parts[4] ?? '';
      const stored = this.commands.get(id);
      const box = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).box : undefined;
      if (stored === undefined || typeof box !== 'string') return refuse(403, 'CK_CLOUD_FORBIDDEN');
      stored.result = box;
      this.resultPuts.set(id, (this.resultPuts.get(id) ?? 0) + 1);
      this.notify();
      return send(204);
    }
    if (method === 'POST' && parts[3] === 'audit') {
      const entries = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).entries : undefined;
      if (!Array.isArray(entries)) return refuse(400, 'CK_CLOUD_BAD_REQUEST');
      const log = this.audit.get(vehicle) ?? new Map<number, { hash: string; entry: unknown }>();
      this.audit.set(vehicle, log);
      let stored = 0;
      this.auditPosts.push((entries as { seq: number }[]).map((e) => e.seq));
      const head = Math.max(0, ...log.keys());
      const firstSeq = (entries[0] as { seq?: number } | undefined)?.seq ?? 0;
      if (firstSeq > head + 1) return send(409, { error: { code: 'CK_CLOUD_CONFLICT', message: 'gap', details: { reason: 'CK_AUDIT_CHAIN_BROKEN', expectedSeq: head + 1, foundSeq: firstSeq } } });
      for (const entry of entries as { seq: number; hash: string }[]) {
        const have = log.get(entry.seq);
        if (have !== undefined && have.hash !== entry.hash) return refuse(409, 'CK_CLOUD_CONFLICT');
        if (have === undefined) {
          log.set(entry.seq, { hash: entry.hash, entry });
          stored++;
        }
      }
      return send(200, { stored, lastSeq: Math.max(0, ...log.keys()) });
    }
    return refuse(400, 'CK_CLOUD_BAD_REQUEST');
  }
}
