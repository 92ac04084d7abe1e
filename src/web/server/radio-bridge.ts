/**
 * The development radio bridge of `carkey web --radio SOCKET`: relays the
 * simulated radio's central side (src/transport/sim-central.ts) to the web
 * app over plain HTTP on the same localhost origin, for the app's
 * "Simulated radio" choice (src/web/app/sim-bluetooth.ts).
 *
 *   GET  /radio                      {available: true}
 *   POST /radio/scan                 {timeoutMs} → {devices: [{address, localName}]}
 *                                    (stops at the first carkey advertiser)
 *   POST /radio/connect              {address} → {link}; connect, MTU, discovery, subscribe
 *   GET  /radio/links/ID/events      Server-Sent Events: `ready`, then `chunk` (hex) per
 *                                    notification, `closed` (reason) once
 *   POST /radio/links/ID/write       hex chunk → 204 after the car's write response
 *   POST /radio/links/ID/write-command  hex chunk, without response → 204 once queued
 *   POST /radio/links/ID/disconnect  → 204
 *
 * Guarantees: requests from another origin are refused (403), bodies are
 * capped at 4 KiB, at most 8 links are open, a link's notifications are
 * buffered until its event stream attaches, and every failure is a JSON
 * {code, message} with a 4xx/5xx status. Development only: it is never
 * part of the static app a phone installs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fromHex, toHex } from '../../core/bytes.js';
import { CarkeyError, toCarkeyError } from '../../core/errors.js';
import { decodeServiceData } from '../../core/identity.js';
import { createSimCentral, type SimCentralLink, type SimCentralTransport } from '../../transport/sim-central.js';
import type { Discovery } from '../../transport/types.js';

const MAX_BODY = 4096;
const MAX_LINKS = 8;
const CONNECT_TIMEOUT_MS = 10_000;

interface BridgeLink {
  readonly link: SimCentralLink;
  readonly buffered: string[];
  events: ServerResponse | undefined;
  closed: string | undefined;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => {
      size += part.length;
      if (size > MAX_BODY) {
        reject(new CarkeyError('CK_USAGE', 'request body too large'));
        req.destroy();
        return;
      }
      parts.push(part);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', (error) => reject(error));
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

function failure(res: ServerResponse, error: unknown): void {
  const carkey = toCarkeyError(error);
  const status = carkey.code === 'CK_USAGE' ? 400 : carkey.code === 'CK_TRANSPORT_NOT_FOUND' ? 404 : 502;
  if (!res.headersSent) json(res, status, { code: carkey.code, message: carkey.message });
  else res.end();
}

export class RadioBridge {
  private transport: SimCentralTransport | undefined;
  private readonly seen = new Map<string, Discovery>();
  private readonly links = new Map<string, BridgeLink>();
  private nextId = 1;

  constructor(
    private readonly socketPath: string,
    private readonly name = 'web-phone',
  ) {}

  private central(): SimCentralTransport {
    this.transport ??= createSimCentral({ socketPath: this.socketPath, name: this.name });
    return this.transport;
  }

  /** Handle a /radio request; returns false when the path is not the bridge's. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (path !== '/radio' && !path.startsWith('/radio/')) return false;
    const origin = req.headers.origin;
    const host = req.headers.host;
    if (origin !== undefined && host !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) {
      json(res, 403, { code: 'CK_USAGE', message: 'the radio bridge answers its own origin only' });
      return true;
    }
    this.route(req, res, path).catch((error: unknown) => failure(res, error));
    return true;
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === '/radio' && req.method === 'GET') return json(res, 200, { available: true });
    if (path === '/radio/scan' && req.method === 'POST') return this.scan(res, await readBody(req));
    if (path === '/radio/connect' && req.method === 'POST') return this.connect(res, await readBody(req));
    const match = /^\/radio\/links\/(\d+)\/(events|write|write-command|disconnect)$/.exec(path);
    const entry = match === null ? undefined : this.links.get(match[1] ?? '');
    if (match === null || entry === undefined) return json(res, 404, { code: 'CK_TRANSPORT_DISCONNECTED', message: 'no such link' });
    const action = match[2];
    if (action === 'events' && req.method === 'GET') return this.events(res, entry);
    if ((action === 'write' || action === 'write-command') && req.method === 'POST') {
      const bytes = fromHex((await readBody(req)).trim());
      if (bytes === undefined || bytes.length === 0) return json(res, 400, { code: 'CK_USAGE', message: 'body must be hex' });
      if (entry.closed !== undefined) return json(res, 502, { code: 'CK_TRANSPORT_DISCONNECTED', message: `link closed (${entry.closed})` });
      if (action === 'write') await entry.link.write(bytes);
      else await entry.link.writeWithoutResponse(bytes);
      res.writeHead(204).end();
      return;
    }
    if (action === 'disconnect' && req.method === 'POST') {
      await entry.link.disconnect();
      res.writeHead(204).end();
      return;
    }
    json(res, 405, { code: 'CK_USAGE', message: 'method not allowed' });
  }

  private async scan(res: ServerResponse, body: string): Promise<void> {
    const parsed = JSON.parse(body === '' ? '{}' : body) as { timeoutMs?: unknown };
    const timeoutMs = typeof parsed.timeoutMs === 'number' && parsed.timeoutMs > 0 && parsed.timeoutMs <= 30_000 ? parsed.timeoutMs : 5000;
    const { match, seen } = await this.central().scan({ timeoutMs, accept: (discovery) => decodeServiceData(discovery.serviceData) !== undefined });
    for (const discovery of seen) this.seen.set(discovery.address, discovery);
    const devices = (match === undefined ? [] : [match]).map((discovery) => ({ address: discovery.address, localName: discovery.localName ?? null }));
    json(res, 200, { devices });
  }

  private async connect(res: ServerResponse, body: string): Promise<void> {
    const { address } = JSON.parse(body) as { address?: unknown };
    const discovery = typeof address === 'string' ? this.seen.get(address) : undefined;
    if (discovery === undefined) return json(res, 404, { code: 'CK_TRANSPORT_NOT_FOUND', message: 'scan first' });
    if ([...this.links.values()].filter((entry) => entry.closed === undefined).length >= MAX_LINKS) return json(res, 503, { code: 'CK_TRANSPORT_CONNECT_FAILED', message: 'too many links' });
    const link = await this.central().connect(discovery, { timeoutMs: CONNECT_TIMEOUT_MS });
    const id = String(this.nextId++);
    const entry: BridgeLink = { link, buffered: [], events: undefined, closed: undefined };
    this.links.set(id, entry);
    link.onChunk((chunk) => this.send(entry, `event: chunk\ndata: ${toHex(chunk)}\n\n`));
    link.onClose((reason) => {
      entry.closed = reason;
      this.send(entry, `event: closed\ndata: ${reason}\n\n`);
      entry.events?.end();
      setTimeout(() => this.links.delete(id), 30_000).unref();
    });
    json(res, 200, { link: id });
  }

  private events(res: ServerResponse, entry: BridgeLink): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('event: ready\ndata: \n\n');
    entry.events = res;
    for (const message of entry.buffered.splice(0)) res.write(message);
    if (entry.closed !== undefined) res.end();
    res.on('close', () => {
      if (entry.events === res) entry.events = undefined;
    });
  }

  private send(entry: BridgeLink, message: string): void {
    if (entry.events === undefined) entry.buffered.push(message);
    else entry.events.write(message);
  }

  async close(): Promise<void> {
    for (const entry of this.links.values()) {
      entry.events?.end();
      await entry.link.disconnect().catch(() => undefined);
    }
    this.links.clear();
    await this.transport?.close();
  }
}
