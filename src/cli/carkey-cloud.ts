/**
 * `carkey-cloud`: the optional relay's command line.
 *
 *   carkey-cloud serve --port 8443 --host 127.0.0.1 --data DIR [--mqtt URL] [--faults] [--app DIR | --no-app]
 *   DATABASE_URL=postgres://… carkey-cloud serve --port 8443
 *   carkey-cloud migrate [--data DIR]
 *
 * Guarantees: `DATABASE_URL` selects PostgreSQL, otherwise `--data` (one
 * SQLite file) is required; migrations run before serving; `serve` prints
 * exactly one JSON line `{"ready":true,"url":…}` on stdout once it listens
 * (logs go to stderr) and on SIGTERM/SIGINT finishes in-flight requests,
 * releases long-polls, closes the database and exits 0. Exit codes are the
 * catalog's: 2 bad flags or configuration (port in use included), 6 the
 * database or broker cannot be reached, 1 a bug.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import type { Logger } from 'pino';
import { CarkeyError, ExitCode, toCarkeyError } from '../core/errors.js';
import { buildCloudApp, DEFAULT_LIMITS } from '../cloud/app.js';
import { createCloudLogger } from '../cloud/logger.js';
import { connectMqttNotices, noNotices, type NoticePublisher } from '../cloud/notices.js';
import { PgCloudStore } from '../cloud/pg-store.js';
import { SqliteCloudStore } from '../cloud/sqlite-store.js';
import type { CloudStore } from '../cloud/store.js';
import { packageVersion } from '../cloud/version.js';
import type { LogLevel } from '../common/logger.js';
import { configureCommander, configureSubcommands, integerOption, Output, processIo, runProgram, type CliIo, type Hints } from './common.js';

const PROGRAM = 'carkey-cloud';
/** dist/web, built by `npm run build` next to this program (dist/src/cli/carkey-cloud.js). */
const BUILT_WEB_APP = fileURLToPath(new URL('../../web', import.meta.url));

const HINTS: Hints = {
  CK_CLOUD_STORE: 'check that the database is reachable (DATABASE_URL) or that --data is a writable directory',
  CK_CONFIG_INVALID: 'fix the option named above (another process may already use the port)',
};

interface StoreFlags {
  readonly data?: string;
}

interface ServeFlags extends StoreFlags {
  readonly port: number;
  readonly host: string;
  readonly mqtt?: string;
  readonly faults?: boolean;
  readonly logLevel: LogLevel;
  readonly rateKey: number;
  readonly rateIp: number;
  /** the built web app to serve at /app/ (false: --no-app; undefined: dist/web when it was built) */
  readonly app?: string | false;
}

async function openStore(flags: StoreFlags, io: CliIo, logger: Logger | undefined): Promise<CloudStore> {
  const url = io.env.DATABASE_URL;
  if (url !== undefined && url !== '') {
    if (flags.data !== undefined) throw new CarkeyError('CK_USAGE', 'give either DATABASE_URL (PostgreSQL) or --data (SQLite), not both');
    return PgCloudStore.open({ connectionString: url, onError: (error) => logger?.warn({ errorCode: error.code, err: error.message }, 'database connection problem') });
  }
  if (flags.data === undefined) throw new CarkeyError('CK_USAGE', 'give --data DIR (one SQLite file) or set DATABASE_URL (PostgreSQL)');
  return SqliteCloudStore.open({ dir: flags.data });
}

function listenError(error: unknown, host: string, port: number): CarkeyError {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  if (code === 'EADDRINUSE') return new CarkeyError('CK_CONFIG_INVALID', `port ${port} on ${host} is already in use`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EACCES') return new CarkeyError('CK_CONFIG_INVALID', `cannot listen on ${host}:${port} (${code})`);
  return toCarkeyError(error);
}

async function serve(flags: ServeFlags, io: CliIo): Promise<void> {
  const logger = createCloudLogger({ level: flags.logLevel });
  const store = await openStore(flags, io, logger);
  let notices: NoticePublisher = noNotices;
  try {
    const version = await store.migrate(Date.now());
    logger.info({ store: store.dialect, schemaVersion: version }, 'database ready');
    if (flags.mqtt !== undefined) notices = await connectMqttNotices({ url: flags.mqtt, logger });
    if (typeof flags.app === 'string' && !existsSync(join(flags.app, 'index.html'))) throw new CarkeyError('CK_CONFIG_INVALID', `--app ${flags.app}: no index.html there (build it with \`npm run build\`)`);
    const webRoot = flags.app === false ? undefined : (flags.app ?? (existsSync(join(BUILT_WEB_APP, 'index.html')) ? BUILT_WEB_APP : undefined));
    if (webRoot === undefined && flags.app !== false) logger.info('the web app is not built (npm run build); /app is not served');
    const app = await buildCloudApp({
      store,
      logger,
      notices,
      ...(webRoot === undefined ? {} : { webRoot }),
      faults: flags.faults === true,
      limits: { perKeyPerMinute: flags.rateKey, perIpPerMinute: flags.rateIp },
    });
    let url: string;
    try {
      url = await app.listen({ host: flags.host, port: flags.port });
    } catch (error) {
      await app.close().catch(() => undefined);
      throw listenError(error, flags.host, flags.port);
    }
    io.stdout.write(`${JSON.stringify({ ready: true, url, pid: process.pid, store: store.dialect, mqtt: flags.mqtt !== undefined, faults: flags.faults === true, version: packageVersion() })}\n`);
    logger.info({ url, store: store.dialect }, 'carkey-cloud listening');
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping');
        const force = setTimeout(() => {
          logger.error('shutdown took longer than 15 s; exiting');
          logger.flush();
          process.exit(ExitCode.internal);
        }, 15_000);
        force.unref();
        app.close().then(resolve, (error: unknown) => {
          logger.error({ err: error instanceof Error ? error.message : String(error) }, 'close failed');
          resolve();
        });
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
  } finally {
    await notices.close();
    await store.close();
    logger.info('stopped');
    logger.flush();
  }
}

async function migrate(flags: StoreFlags & { json?: boolean }, io: CliIo, output: Output): Promise<void> {
  const store = await openStore(flags, io, undefined);
  try {
    const version = await store.migrate(Date.now());
    output.result({ store: store.dialect, schemaVersion: version }, `${store.dialect} schema is at version ${version}`);
  } finally {
    await store.close();
  }
}

export function buildProgram(io: CliIo, setOutput: (output: Output) => void): Command {
  const version = packageVersion();
  const program = configureCommander(new Command(PROGRAM), io)
    .description('carkey-cloud: the optional relay of car- and phone-signed documents (it can delay, never forge; cars never need it to open)')
    .version(version, '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', '\nEnvironment: DATABASE_URL=postgres://… selects PostgreSQL (else --data DIR, one SQLite file).\nExit codes: 0 ok, 2 bad flags or configuration, 6 database or broker unreachable, 1 internal error.\n');

  program
    .command('serve')
    .description('run the HTTP service (prints one {"ready":true,"url":…} line on stdout when listening)')
    .version(version, '-V, --version')
    .addOption(new Option('--port <port>', 'TCP port (0 = any free port)').default(8443).argParser(integerOption('--port', 0, 65535)))
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--data <dir>', 'data directory for the SQLite file (not with DATABASE_URL)')
    .option('--mqtt <url>', 'also publish change notices to this MQTT broker (mqtt://host:1883)')
    .option('--faults', 'enable the loopback-only fault switch POST /_faults (tests and the demo)')
    .option('--app <dir>', 'serve the built web app from this directory at /app/ (default: dist/web when built)')
    .option('--no-app', 'do not serve the web app')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .addOption(new Option('--rate-key <n>', 'signed requests per key per minute (0 = no limit)').default(DEFAULT_LIMITS.perKeyPerMinute).argParser(integerOption('--rate-key', 0, 10_000_000)))
    .addOption(new Option('--rate-ip <n>', 'requests per client IP per minute (0 = no limit)').default(DEFAULT_LIMITS.perIpPerMinute).argParser(integerOption('--rate-ip', 0, 100_000_000)))
    .addHelpText('after', '\nExamples:\n  $ carkey-cloud serve --port 8443 --data /var/lib/carkey-cloud\n  $ DATABASE_URL=postgres://carkey@db/carkey carkey-cloud serve --host 0.0.0.0 --mqtt mqtt://broker:1883\n')
    .action(async (flags: ServeFlags) => {
      setOutput(new Output(io, false, false));
      await serve(flags, io);
    });

  program
    .command('migrate')
    .description('apply the schema migrations and exit')
    .version(version, '-V, --version')
    .option('--data <dir>', 'data directory for the SQLite file (not with DATABASE_URL)')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: StoreFlags & { json?: boolean }) => {
      const output = new Output(io, flags.json === true, false);
      setOutput(output);
      await migrate(flags, io, output);
    });

  configureSubcommands(program, io);
  return program;
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let output = new Output(io, argv.includes('--json'), false);
  const program = buildProgram(io, (chosen) => {
    output = chosen;
  });
  return runProgram({ name: PROGRAM, io, argv, program, hints: HINTS, output: () => output });
}

const exitCode = await main(process.argv.slice(2), processIo());
process.exit(exitCode);
