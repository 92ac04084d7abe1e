/**
 * MQTT change notices for fleets (`--mqtt URL`): after each change of a
 * vehicle's key list or commands, publish `{"changed":"key-list"}` or
 * `{"changed":"commands"}` to `carkey/v1/vehicles/{vehicleId}`, QoS 1, not
 * retained.
 *
 * Guarantees: a notice carries no secret and no document (a car that gets
 * one fetches over HTTP and verifies as always); publishing never blocks or
 * fails an HTTP answer: while the broker is unreachable notices are dropped
 * and counted (the car's long-poll or poll interval still finds the change);
 * `close` waits for in-flight QoS 1 acknowledgements, bounded by a timeout.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { Logger } from 'pino';
import { CarkeyError } from '../core/errors.js';
import type { CloudMetrics } from './metrics.js';

export type NoticeKind = 'key-list' | 'commands';

export interface NoticePublisher {
  publish(vehicleId: string, changed: NoticeKind): void;
  close(): Promise<void>;
}

export const NOTICE_TOPIC_PREFIX = 'carkey/v1/vehicles/';

export function noticeTopic(vehicleId: string): string {
  return `${NOTICE_TOPIC_PREFIX}${vehicleId}`;
}

/** The publisher when no broker is configured. */
export const noNotices: NoticePublisher = {
  publish: () => undefined,
  close: () => Promise.resolve(),
};

export interface MqttNoticeOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly metrics?: CloudMetrics;
  /** how long `connectMqttNotices` waits for the first connection (default 3000 ms; the publisher keeps trying afterwards) */
  readonly connectWaitMs?: number;
}

/** Connect to the broker. Resolves once connected or after `connectWaitMs` (then it keeps reconnecting). */
export async function connectMqttNotices(options: MqttNoticeOptions): Promise<NoticePublisher> {
  let client: mqtt.MqttClient;
  try {
    client = mqtt.connect(options.url, {
      clientId: `carkey-cloud-${randomBytes(6).toString('hex')}`,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      queueQoSZero: false,
      clean: true,
    });
  } catch (error) {
    throw new CarkeyError('CK_CONFIG_INVALID', `--mqtt ${options.url}: ${error instanceof Error ? error.message : String(error)}`);
  }
  let lastError = '';
  client.on('error', (error) => {
    if (error.message !== lastError) options.logger.warn({ err: error.message }, 'mqtt broker error');
    lastError = error.message;
  });
  client.on('connect', () => {
    lastError = '';
    options.logger.info('mqtt broker connected');
  });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.connectWaitMs ?? 3000);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (!client.connected) options.logger.warn('mqtt broker not reachable yet; notices are dropped until it is');
  return {
    publish(vehicleId, changed) {
      if (!client.connected) {
        options.metrics?.notices.inc({ outcome: 'dropped' });
        return;
      }
      client.publish(noticeTopic(vehicleId), JSON.stringify({ changed }), { qos: 1, retain: false }, (error) => {
        options.metrics?.notices.inc({ outcome: error === undefined || error === null ? 'published' : 'failed' });
      });
    },
    async close() {
      await Promise.race([client.endAsync(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]).catch(() => undefined);
      client.end(true);
    },
  };
}
