/**
 * A man in the middle between carkeyd and the real carkey-cloud, for the
 * real-process tests: it forwards every request unchanged (signatures cover
 * method, path, query and body, not the Host header) and can answer any
 * request itself instead: a hostile or broken cloud as the car sees it.
 * It counts answered requests per method and path.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxiedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
}

export type ProxyAnswer = { readonly status: number; readonly body?: string; readonly headers?: Record<string, string>; readonly delayMs?: number } | 'upstream';

export class CloudProxy {
  url = '';
  readonly answered: { method: string; path: string; status: number }[] = [];
  intercept: (request: ProxiedRequest) => ProxyAnswer = () => 'upstream';
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly upstream: string) {}

  async start(): Promise<void> {
    const target = new URL(this.upstream);
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => this.handle(target, request, response, Buffer.concat(chunks)));
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(method: string, pattern: RegExp, status?: number): number {
    return this.answered.filter((a) => a.method === method && pattern.test(a.path) && (status === undefined || a.status === status)).length;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server === undefined ? resolve() : this.server.close(() => resolve())));
  }

  private handle(target: URL, request: IncomingMessage, response: ServerResponse, body: Buffer): void {
    const method = request.method ?? 'GET';
    const path = new URL(request.url ?? '/', 'http://proxy').pathname;
    const answer = this.intercept({ method, path, headers: request.headers });
    if (answer !== 'upstream') {
      setTimeout(() => {
        this.answered.push({ method, path, status: answer.status });
        response.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers }).end(answer.body ?? '');
      }, answer.delayMs ?? 0).unref();
      return;
    }
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method, path: request.url, headers: { ...request.headers, host: target.host } },
      (reply) => {
        response.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(response);
        reply.on('end', () => this.answered.push({ method, path, status: reply.statusCode ?? 0 }));
      },
    );
    upstream.on('error', () => {
      if (!response.headersSent) response.writeHead(502).end();
      else response.destroy();
    });
    response.on('close', () => upstream.destroy());
    upstream.end(body);
  }
}
