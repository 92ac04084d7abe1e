/**
 * Structured logging for every carkey process (pino).
 *
 * Guarantees: JSON lines on the chosen stream; any field whose name says it
 * holds secret material (seed, secret, key material, signatures, PINs,
 * pairing codes, passphrases) is redacted at the top level and one level
 * down, so a log file never leaks keys. Public keys are logged only as key
 * ids. Error codes are logged as `errorCode` (a bare `code` field is taken to
 * be a pairing code and redacted).
 *
 * Levels are names (`"level":"error"`), not pino's numbers. Under systemd
 * (stderr is the journal: $JOURNAL_STREAM names it) every line starts with
 * the sd-daemon priority prefix (`<3>` for error, docs/operations.md), which
 * journald strips and records as PRIORITY, so `journalctl -p err` works.
 */
import { fstatSync } from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';

export const REDACTED_PATHS = [
  'seed', '*.seed', 'secret', '*.secret', 'secretKey', '*.secretKey', 'privateKey', '*.privateKey',
  'signature', '*.signature', 'sig', '*.sig', 'pin', '*.pin', 'startPin', '*.startPin', 'code', '*.code', 'pairingCode', '*.pairingCode',
  'passphrase', '*.passphrase', 'advSecret', '*.advSecret', 'key', '*.key', 'sessionKey', '*.sessionKey',
  'config.startPin',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** syslog priorities (RFC 5424) of the pino levels, as journald records them. */
export const JOURNALD_PRIORITY: Readonly<Record<string, number>> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/** Is stderr the journal? systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected. */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env, stat: () => { dev: number; ino: number } = () => fstatSync(2)): boolean {
  const match = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (match === null) return false;
  try {
    const { dev, ino } = stat();
    return String(dev) === match[1] && String(ino) === match[2];
  } catch {
    return false;
  }
}

/** Prefix each line with `<N>` from its level (the level is the first field of every line). */
export function journaldLine(line: string): string {
  const level = /^\{"level":"([a-z]+)"/.exec(line)?.[1];
  const priority = level === undefined ? undefined : JOURNALD_PRIORITY[level];
  return priority === undefined ? line : `<${priority}>${line}`;
}

export function createLogger(options: { name: string; level: LogLevel; destination?: DestinationStream; journald?: boolean }): Logger {
  const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
  const journald = options.journald ?? (options.destination === undefined && stderrIsJournal());
  return pino(
    {
      name: options.name,
      level: options.level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { name: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    journald ? { write: (line: string) => destination.write(journaldLine(line)) } : destination,
  );
}

export type { Logger };
