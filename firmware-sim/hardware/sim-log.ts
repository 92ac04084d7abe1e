/**
 * The simulator's stderr logger: one line per record, plain text for people or
 * JSON (`--json-log`) for machines. stdout is reserved for the ready line.
 *
 * Guarantees: a log call never throws; `debug` records are dropped unless the
 * logger was created verbose; field values are printed with JSON.stringify.
 */

export type SimLogLevel = 'debug' | 'info' | 'warn' | 'error';
export type SimLogFields = Readonly<Record<string, unknown>>;

export interface SimLogger {
  debug(message: string, fields?: SimLogFields): void;
  info(message: string, fields?: SimLogFields): void;
  warn(message: string, fields?: SimLogFields): void;
  error(message: string, fields?: SimLogFields): void;
}

export interface SimLoggerOptions {
  readonly json: boolean;
  readonly verbose: boolean;
  /** Milliseconds since the epoch (injected so the format is testable). */
  readonly now: () => number;
  readonly write: (line: string) => void;
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return '"[unserialisable]"';
  }
}

export function createSimLogger(options: SimLoggerOptions): SimLogger {
  const emit = (level: SimLogLevel, message: string, fields: SimLogFields = {}): void => {
    if (level === 'debug' && !options.verbose) return;
    try {
      if (options.json) {
        options.write(`${safeStringify({ time: options.now(), level, msg: message, ...fields })}\n`);
      } else {
        const extra = Object.entries(fields)
          .map(([k, v]) => `${k}=${safeStringify(v)}`)
          .join(' ');
        options.write(`hw-sim ${level}: ${message}${extra.length > 0 ? ` ${extra}` : ''}\n`);
      }
    } catch {
      // logging must never take the simulator down
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
  };
}
