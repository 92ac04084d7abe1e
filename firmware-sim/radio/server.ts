/**
 * The socket side of the radio broker: a UNIX-socket server that turns JSON
 * lines into `RadioAir` requests and its messages back into lines, and runs
 * the air's event queue on a timer.
 *
 * Guarantees: input is length-capped and decoded before the air sees it; a
 * bad line gets an error reply and the connection stays usable; an
 * unexpected internal error is logged and never takes the broker down; a
 * client that stops reading is disconnected once its output buffer passes
 * `MAX_BUFFERED_OUTPUT_BYTES`. A stale socket file from a dead broker is
 * replaced, but never a live broker's socket nor a non-socket file.
 */

import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { CarkeyError, toCarkeyError } from '../../src/core/errors.js';
import { LineReader } from '../../src/transport/sim-lines.js';
import { MAX_EVENT_LINE_BYTES, MAX_REQUEST_LINE_BYTES, decodeRequest, encodeMessage, type ServerMessage } from '../../src/transport/sim-protocol.js';
import { RadioAir } from './air.js';
import type { ClientId } from './link.js';
import type { RadioConfig } from './profile.js';
import { createKeyedRandom } from './random.js';

export const MAX_BUFFERED_OUTPUT_BYTES = 8 * 1024 * 1024;

export interface RadioServerOptions {
  readonly socketPath: string;
  readonly seed: number;
  readonly config: RadioConfig;
  /** Broker clock: ms since the broker started. */
  readonly clock: () => number;
  /** Prefix of link ids, unique per broker run. */
  readonly instanceTag: string;
  readonly log: (message: string) => void;
}

export interface RadioServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

export async function startRadioServer(options: RadioServerOptions): Promise<RadioServer> {
  const { socketPath, clock, log } = options;
  const sockets = new Map<ClientId, net.Socket>();
  let nextClient = 1;
  let timer: NodeJS.Timeout | undefined;

  const send = (client: ClientId, message: ServerMessage): void => {
    const socket = sockets.get(client);
    if (socket === undefined || socket.destroyed) return;
    const line = encodeMessage(message);
    if (Buffer.byteLength(line) >= MAX_EVENT_LINE_BYTES) {
      log(`dropped an oversized ${message.ev} message to client ${client}`);
      return;
    }
    socket.write(`${line}\n`);
    if (socket.writableLength > MAX_BUFFERED_OUTPUT_BYTES) {
      log(`client ${client} is not reading; disconnecting it`);
      socket.destroy();
    }
  };

  const air = new RadioAir({
    random: createKeyedRandom(options.seed),
    seed: options.seed,
    config: options.config,
    now: clock(),
    instanceTag: options.instanceTag,
    send,
  });

  const guarded = (what: string, action: () => void): void => {
    try {
      action();
    } catch (error) {
      log(`internal error while ${what}: ${toCarkeyError(error).message}`);
    }
    reschedule();
  };

  const tick = (): void => {
    timer = undefined;
    guarded('running the event queue', () => air.advance(clock()));
  };

  function reschedule(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const next = air.nextEventAt();
    if (next === undefined) return;
    timer = setTimeout(tick, Math.max(0, Math.ceil(next - clock())));
  }

  const server = net.createServer((socket) => {
    const client = nextClient;
    nextClient += 1;
    sockets.set(client, socket);
    const reader = new LineReader(MAX_REQUEST_LINE_BYTES);
    air.attach(client);
    socket.on('data', (bytes: Buffer) => {
      guarded(`handling input from client ${client}`, () => {
        for (const line of reader.push(bytes)) {
          if (!line.ok) {
            air.rejectUndecodable(client, undefined, line.error);
            continue;
          }
          const decoded = decodeRequest(line.value);
          if (decoded.ok) air.handle(client, decoded.value, clock());
          else air.rejectUndecodable(client, decoded.id, decoded.error);
        }
      });
    });
    socket.on('error', () => {
      // 'close' follows; nothing to do here.
    });
    socket.on('close', () => {
      sockets.delete(client);
      guarded(`closing client ${client}`, () => air.detach(client, clock()));
    });
  });

  await removeStaleSocket(socketPath);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => log(`server error: ${error.message}`));

  return {
    socketPath,
    close: async () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets.values()) socket.destroy();
      await closed;
      await unlink(socketPath).catch(() => undefined);
    },
  };
}

/** Remove `path` if it is a socket nobody listens on; refuse live sockets and other files. */
async function removeStaleSocket(path: string): Promise<void> {
  const stats = await lstat(path).catch(() => undefined);
  if (stats === undefined) return;
  if (!stats.isSocket()) throw new CarkeyError('CK_USAGE', `${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new CarkeyError('CK_USAGE', `another broker is already listening on ${path}`);
  await unlink(path);
}
