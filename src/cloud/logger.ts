/**
 * carkey-cloud's log (pino): the shared redaction list plus everything the
 * cloud handles that must never reach a log file — request headers (they
 * carry signatures), documents and boxes; public keys in URLs are replaced
 * by "…" (vehicle ids, which are public, stay).
 *
 * Guarantees: request lines hold method, redacted URL, status, duration,
 * error code; never a header, a body, a key or a signature.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { REDACTED_PATHS, type LogLevel } from '../common/logger.js';

export const CLOUD_REDACTED_PATHS = [
  ...REDACTED_PATHS,
  'headers', '*.headers', 'box', '*.box', 'keyList', '*.keyList', 'statement', '*.statement', 'body', '*.body', 'caller', '*.caller',
];

/** A URL with every 64-hex-digit key replaced. */
export function redactUrl(url: string): string {
  return url.replace(/[0-9a-fA-F]{64}/g, '…');
}

export function createCloudLogger(options: { level: LogLevel; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: 'carkey-cloud',
      level: options.level,
      redact: { paths: CLOUD_REDACTED_PATHS, censor: '[redacted]' },
      base: { name: 'carkey-cloud' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: {
        req: (req: { method?: string; url?: string }) => ({ method: req.method, url: redactUrl(req.url ?? '') }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
    options.destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
