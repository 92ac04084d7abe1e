/**
 * Entry point of the simulated radio broker:
 *
 *     node dist/firmware-sim/radio/main.js --socket PATH [--config FILE] [--seed N]
 *
 * Guarantees: prints exactly one JSON ready line on stdout once the socket
 * accepts connections; bad flags or a bad config file exit with code 2 and a
 * message on stderr before anything listens; SIGTERM and SIGINT close every
 * client, remove the socket file and exit 0. This file is the only place that
 * reads the wall clock and the OS random source for the broker.
 */

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { versionLine, wantsVersion } from '../../src/common/version.js';
import { CarkeyError, toCarkeyError } from '../../src/core/errors.js';
import { SIM_PROTOCOL_VERSION } from '../../src/transport/sim-protocol.js';
import { EMPTY_RADIO_CONFIG, parseRadioConfig, type RadioConfig } from './profile.js';
import { MAX_SEED } from './random.js';
import { startRadioServer } from './server.js';

const DEFAULT_SEED = 1;
const USAGE = 'usage: main.js --socket PATH [--config FILE] [--seed N] | --version';

interface Options {
  readonly socketPath: string;
  readonly configPath: string | undefined;
  readonly seed: number;
}

function readFlags(argv: readonly string[]): { socket?: string | undefined; config?: string | undefined; seed?: string | undefined } {
  try {
    return parseArgs({
      args: [...argv],
      options: { socket: { type: 'string' }, config: { type: 'string' }, seed: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new CarkeyError('CK_USAGE', `${error instanceof Error ? error.message : String(error)}; ${USAGE}`);
  }
}

function parseOptions(argv: readonly string[]): Options {
  const values = readFlags(argv);
  if (values.socket === undefined || values.socket === '') throw new CarkeyError('CK_USAGE', `--socket is required; ${USAGE}`);
  let seed = DEFAULT_SEED;
  if (values.seed !== undefined) {
    seed = /^\d{1,10}$/.test(values.seed) ? Number(values.seed) : Number.NaN;
    if (!(seed >= 0 && seed <= MAX_SEED)) throw new CarkeyError('CK_USAGE', `--seed must be an integer from 0 to ${MAX_SEED}`);
  }
  return { socketPath: values.socket, configPath: values.config, seed };
}

async function loadConfig(path: string | undefined): Promise<RadioConfig> {
  if (path === undefined) return EMPTY_RADIO_CONFIG;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CarkeyError('CK_CONFIG_INVALID', `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CarkeyError('CK_CONFIG_INVALID', `${path} is not valid JSON`);
  }
  const parsed = parseRadioConfig(json);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

async function main(): Promise<void> {
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('sim-radio'));
    return;
  }
  const options = parseOptions(process.argv.slice(2));
  const config = await loadConfig(options.configPath);
  const startedAt = performance.now();
  const log = (message: string): void => {
    process.stderr.write(`sim-radio: ${message}\n`);
  };
  const server = await startRadioServer({
    socketPath: options.socketPath,
    seed: options.seed,
    config,
    clock: () => performance.now() - startedAt,
    instanceTag: randomBytes(3).toString('hex'),
    log,
  });
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log(`error while stopping: ${toCarkeyError(error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(
    `${JSON.stringify({ ready: true, service: 'sim-radio', socket: options.socketPath, pid: process.pid, seed: options.seed, protocol: SIM_PROTOCOL_VERSION })}\n`,
  );
}

main().catch((error: unknown) => {
  const failure = toCarkeyError(error);
  process.stderr.write(`sim-radio: ${failure.code}: ${failure.message}\n`);
  process.exit(failure.exitCode);
});
