/**
 * Fleet push (cloud.mode = "mqtt"): subscribe to the cloud's change notices
 * for this car on topic carkey/v1/vehicles/<vehicleIdHex> and wake the
 * worker, which then fetches over HTTP and verifies as always.
 *
 * Guarantees: a notice is only a hint (it carries no document and nothing
 * in it is trusted): payloads over 1 KiB or not of the documented shape are
 * ignored; every client callback is wrapped so none can throw past it; the
 * mqtt package is loaded lazily, only in this mode; the client reconnects by
 * itself and each (re)connect asks the worker to fetch everything (notices
 * sent while disconnected are not retained). Outbound only.
 */
import type { Logger } from 'pino';
import { toCarkeyError } from '../../core/errors.js';
import { guarded } from '../boundary.js';

export type NoticeKind = 'key-list' | 'commands';

export interface NoticeHandlers {
  readonly onNotice: (kind: NoticeKind) => void;
  /** connected (again): fetch everything, a notice may have been missed */
  readonly onConnect: () => void;
}

export interface NoticeSubscription {
  readonly connected: () => boolean;
  close(): Promise<void>;
}

export type NoticeConnector = (url: string, topic: string, handlers: NoticeHandlers) => Promise<NoticeSubscription>;

const MAX_NOTICE_BYTES = 1024;

export function noticeTopic(vehicleIdHex: string): string {
  return `carkey/v1/vehicles/${vehicleIdHex}`;
}

/** Parse a notice payload; undefined for anything but {"changed":"key-list"|"commands"}. */
export function parseNotice(payload: Uint8Array): NoticeKind | undefined {
  if (payload.length > MAX_NOTICE_BYTES) return undefined;
  try {
    const json: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
    const changed = (json as Record<string, unknown>).changed;
    return changed === 'key-list' || changed === 'commands' ? changed : undefined;
  } catch {
    return undefined;
  }
}

/** The real connector (mqtt package). */
export function mqttConnector(options: { readonly logger: Logger; readonly connectTimeoutMs: number; readonly clientId: string }): NoticeConnector {
  return async (url, topic, handlers) => {
    const { connect } = await import('mqtt');
    const log = options.logger;
    const client = connect(url, { clientId: options.clientId, clean: true, reconnectPeriod: 5000, connectTimeout: options.connectTimeoutMs, keepalive: 60, resubscribe: true });
    client.on(
      'connect',
      guarded(log, 'mqtt connect', () => {
        client.subscribe(topic, { qos: 1 }, (error) => {
          if (error !== null && error !== undefined) log.warn({ errorCode: 'CK_CLOUD_UNAVAILABLE', err: error.message }, 'mqtt subscribe failed');
        });
        log.info('mqtt notices connected');
        handlers.onConnect();
      }),
    );
    client.on(
      'message',
      guarded(log, 'mqtt message', (received: string, payload: Buffer) => {
        if (received !== topic) return;
        const kind = parseNotice(new Uint8Array(payload));
        if (kind === undefined) {
          log.debug('ignored a malformed mqtt notice');
          return;
        }
        handlers.onNotice(kind);
      }),
    );
    client.on(
      'error',
      guarded(log, 'mqtt error', (error: Error) => log.warn({ errorCode: 'CK_CLOUD_UNAVAILABLE', err: error.message }, 'mqtt error; reconnecting')),
    );
    client.on('offline', guarded(log, 'mqtt offline', () => log.info('mqtt notices offline')));
    return {
      connected: () => client.connected,
      close: async () => {
        try {
          await client.endAsync(true);
        } catch (error) {
          log.debug({ errorCode: toCarkeyError(error).code }, 'mqtt close failed');
        }
      },
    };
  };
}
