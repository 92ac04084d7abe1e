/**
 * Structured logging for every carkey process (pino).
 *
 * Guarantees: JSON lines on the chosen stream; any field whose name says it
 * holds secret material (seed, secret, key material, signatures, PINs,
 * pairing codes, passphrases) is redacted at the top level and one level
 * down, so a log file never leaks keys. Public keys are logged only as key
 * ids. Error codes are logged as `errorCode` (a bare `code` field is taken to
 * be a pairing code and redacted).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export const REDACTED_PATHS = [
  'seed', '*.seed', 'secret', '*.secret', 'secretKey', '*.secretKey', 'privateKey', '*.privateKey',
  'signature', '*.signature', 'sig', '*.sig', 'pin', '*.pin', 'startPin', '*.startPin', 'code', '*.code', 'pairingCode', '*.pairingCode',
  'passphrase', '*.passphrase', 'advSecret', '*.advSecret', 'key', '*.key', 'sessionKey', '*.sessionKey',
  'config.startPin',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(options: { name: string; level: LogLevel; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { name: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ dest: 2, sync: true }),
  );
}

export type { Logger };
