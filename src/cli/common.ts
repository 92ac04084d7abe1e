/**
 * Shared plumbing for carkey's command-line programs (`carkey`, `carkeyd`, …).
 *
 * Guarantees:
 * - One result per command: human text, or with `--json` exactly one JSON
 *   object on stdout (`{"ok":true,...}` / `{"ok":false,"error":{...}}`).
 *   Progress and warnings go to stderr only, never into JSON stdout.
 * - The exit code of a failure is `CarkeyError.exitCode` (errors.ts ExitCode);
 *   command-line mistakes (commander) exit with 2 (CK_USAGE), `--help` with 0.
 * - Error output says what failed and what to do next (a hint per code; each
 *   program can add its own hints).
 * - Nothing here reads process globals on its own: streams, environment and
 *   argv are passed in (`CliIo`).
 */
import { isatty } from 'node:tty';
import { CommanderError, type Command } from 'commander';
import { CarkeyError, ExitCode, toCarkeyError, type ErrorCode } from '../core/errors.js';

export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  readonly env: Readonly<Record<string, string | undefined>>;
  /** stdin and stderr are terminals: prompts are possible */
  readonly interactive: boolean;
}

/**
 * A reader that closes the pipe early (`carkey --help | head`) is not an
 * error: stop writing and exit quietly instead of crashing on EPIPE.
 */
function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
}

export function processIo(): CliIo {
  exitQuietlyOnClosedPipe(process.stdout);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    interactive: isatty(0) && isatty(2),
  };
}

/** What to do next, per error code: fixed text, or computed from the error (its details). */
export type Hints = Partial<Record<ErrorCode, string | ((error: CarkeyError) => string | undefined)>>;

/** Hints shared by every carkey program. */
export const COMMON_HINTS: Hints = {
  CK_USAGE: 'see --help for the options of this command',
  CK_CONFIG_INVALID: 'fix the option or configuration value named above',
  CK_TRANSPORT_NO_ADAPTER: 'check the Bluetooth adapter (`hciconfig`, `bluetoothctl show`), or use --transport sim with the simulated radio',
  CK_TRANSPORT_RADIO_UNAVAILABLE: 'start the simulated radio (node dist/firmware-sim/radio/main.js --socket PATH) or point --radio at its socket',
  CK_TRANSPORT_NOT_FOUND: 'move closer to the car and make sure it is powered and advertising, then try again (or raise --timeout)',
  CK_TRANSPORT_CONNECT_FAILED: 'try again; if it keeps failing, restart Bluetooth on this device',
  CK_TRANSPORT_TIMEOUT: 'the car did not answer in time; try again closer to the car (or raise --timeout)',
  CK_TRANSPORT_DISCONNECTED: 'the link dropped; try again closer to the car',
  CK_PROTO_NO_ANSWER: 'check the car (`carkey status`, or look at it) before repeating the command; the car’s audit log (`carkey audit`) records what it did',
  CK_FRAME_TIMEOUT: 'the link is unreliable; try again closer to the car',
  CK_STORE_IO: 'check that the directory named above exists and is writable by you',
  CK_STORE_INSECURE_PERMISSIONS: 'run the chmod shown above, then try again',
  CK_INTERNAL: 'this is a bug; please report it with the command you ran',
};

export function hintFor(error: CarkeyError, hints: Hints): string | undefined {
  const hint = hints[error.code] ?? COMMON_HINTS[error.code];
  return typeof hint === 'function' ? hint(error) : hint;
}

export interface ErrorReport {
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint?: string;
  readonly exitCode: number;
  readonly details?: Readonly<Record<string, unknown>>;
}

export function errorReport(error: CarkeyError, hints: Hints): ErrorReport {
  const hint = hintFor(error, hints);
  return {
    code: error.code,
    message: error.message,
    exitCode: error.exitCode,
    ...(hint === undefined ? {} : { hint }),
    ...(error.details === undefined ? {} : { details: error.details }),
  };
}

/** Human form: "PROGRAM: MESSAGE [CODE]\n  next: HINT". */
export function formatErrorText(program: string, report: ErrorReport): string {
  const lines = [`${program}: ${report.message} [${report.code}]`];
  if (report.hint !== undefined) lines.push(`  next: ${report.hint}`);
  return `${lines.join('\n')}\n`;
}

/** Where a command writes: result on stdout, progress and warnings on stderr. */
export class Output {
  constructor(
    private readonly io: CliIo,
    readonly json: boolean,
    private readonly quiet: boolean,
  ) {}

  /** A progress line on stderr ("scanning…"); suppressed by --quiet. */
  progress(message: string): void {
    if (!this.quiet) this.io.stderr.write(`${message}\n`);
  }

  /** A warning on stderr, always shown. */
  warn(message: string): void {
    this.io.stderr.write(`warning: ${message}\n`);
  }

  /** The command's result: `fields` as JSON with --json, else `human` lines. */
  result(fields: Readonly<Record<string, unknown>>, human: string | readonly string[]): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify({ ok: true, ...fields })}\n`);
    else {
      const text = typeof human === 'string' ? human : human.join('\n');
      if (text !== '') this.io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
  }

  /** Raw human text on stdout (not in JSON mode), e.g. a QR code. */
  text(text: string): void {
    if (!this.json) this.io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  error(program: string, report: ErrorReport): void {
    this.io.stderr.write(formatErrorText(program, report));
    if (this.json) this.io.stdout.write(`${JSON.stringify({ ok: false, error: report })}\n`);
  }
}

/**
 * Make commander throw instead of exiting, and route its own messages to our
 * streams. Call on the root program before adding subcommands' actions.
 */
export function configureCommander(program: Command, io: CliIo): Command {
  return program
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    // `carkey unlock --help` lists --home, --transport, --json … too (they are given before or after the subcommand)
    .configureHelp({ showGlobalOptions: true })
    .showSuggestionAfterError(true);
}

/** Apply `configureCommander`'s error behaviour to every subcommand. */
export function configureSubcommands(program: Command, io: CliIo): void {
  for (const command of program.commands) {
    configureCommander(command, io);
    configureSubcommands(command, io);
  }
}

/**
 * Run a parsed program and turn any failure into an exit code: CarkeyErrors
 * keep theirs, commander usage errors are 2, help/version are 0.
 */
export async function runProgram(options: {
  readonly name: string;
  readonly io: CliIo;
  readonly argv: readonly string[];
  readonly program: Command;
  readonly hints: Hints;
  /** the Output the actions used (to print errors in the same mode) */
  readonly output: () => Output;
}): Promise<number> {
  try {
    await options.program.parseAsync([...options.argv], { from: 'user' });
    return ExitCode.ok;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      if (thrown.code === 'commander.helpDisplayed' || thrown.code === 'commander.version' || thrown.exitCode === 0) return ExitCode.ok;
      // commander already printed its message on stderr; add the JSON form when asked
      const output = options.output();
      if (output.json) {
        const report = errorReport(new CarkeyError('CK_USAGE', thrown.message.replace(/^error: /, '')), options.hints);
        options.io.stdout.write(`${JSON.stringify({ ok: false, error: report })}\n`);
      }
      return ExitCode.badInput;
    }
    const error = toCarkeyError(thrown);
    const report = errorReport(error, options.hints);
    options.output().error(options.name, report);
    return error.exitCode;
  }
}

/** Ask a question on stderr and read one line from stdin (echo off when `hidden`). */
export function promptLine(io: CliIo, question: string, hidden: boolean): Promise<string> {
  if (!io.interactive) return Promise.reject(new CarkeyError('CK_USAGE', 'a prompt needs a terminal'));
  return new Promise((resolve, reject) => {
    const stdin = io.stdin;
    const wasRaw = hidden && typeof stdin.setRawMode === 'function';
    let answer = '';
    io.stderr.write(question);
    if (wasRaw) stdin.setRawMode?.(true);
    stdin.setEncoding('utf8');
    const finish = (error?: CarkeyError): void => {
      stdin.removeListener('data', onData);
      if (wasRaw) stdin.setRawMode?.(false);
      stdin.pause();
      if (hidden) io.stderr.write('\n');
      if (error === undefined) resolve(answer);
      else reject(error);
    };
    const onData = (chunk: string | Buffer): void => {
      for (const char of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
        if (char === '\n' || char === '\r') return finish();
        if (char === '\u0003') return finish(new CarkeyError('CK_USAGE', 'cancelled'));
        if (char === '\u007f' || char === '\b') answer = answer.slice(0, -1);
        else answer += char;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

/** Parse an integer option within [min, max] (commander argParser). */
export function integerOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value)) throw new CarkeyError('CK_USAGE', `${name} must be a whole number, got "${value}"`);
    const parsed = Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) throw new CarkeyError('CK_USAGE', `${name} must be between ${min} and ${max}`);
    return parsed;
  };
}

const RELATIVE_TIME = /^\+(\d+)(m|h|d|w)$/;
const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * A point in time from the command line: an ISO 8601 date/time with a zone
 * or a date alone (UTC midnight), `now`, or relative `+N` m/h/d/w.
 */
export function parseTimeArgument(text: string, now: number, what: string): number {
  if (text === 'now') return now;
  const relative = RELATIVE_TIME.exec(text);
  if (relative !== null) return now + Number(relative[1]) * (UNIT_MS[relative[2] ?? 'm'] ?? 0);
  const isoDate = /^\d{4}-\d{2}-\d{2}$/;
  const isoDateTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;
  if (!isoDate.test(text) && !isoDateTime.test(text)) {
    throw new CarkeyError('CK_USAGE', `${what} must be an ISO date/time with a zone (2025-06-01T18:00Z), a date (2025-06-01), "now" or +N[m|h|d|w]; got "${text}"`);
  }
  const parsed = Date.parse(text);
  if (!Number.isFinite(parsed) || parsed < 0) throw new CarkeyError('CK_USAGE', `${what}: "${text}" is not a valid date`);
  return parsed;
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
