/**
 * `node dist/firmware-sim/hardware/main.js --socket PATH [--ctl PATH] [--pty PATH] [--doors 2|4] [--json-log] [--verbose]`
 *
 * Entry point of the simulated body controller. Guarantees:
 * - Prints exactly one line on stdout, `{"ready":true,...}`, once every socket
 *   (and the pty, if asked) accepts connections; everything else goes to stderr.
 * - SIGTERM/SIGINT close all connections, stop socat and remove the sockets and
 *   the pty link, then exit 0.
 * - Bad flags exit 2 with a message; a start-up failure exits with the error
 *   catalog's exit code.
 */

import { parseArgs } from 'node:util';
import { versionLine, wantsVersion } from '../../src/common/version.js';
import { CarkeyError, ExitCode, toCarkeyError } from '../../src/core/errors.js';
import { startHardwareSim } from './server.js';
import { createSimLogger } from './sim-log.js';

const HELP = `Simulated car body controller (locks, drive, trunk, pairing button, keycard, display).

usage: node dist/firmware-sim/hardware/main.js --socket PATH [options]

  --socket PATH   host link: UNIX socket carkeyd's driver connects to (one host at a time)
  --ctl PATH      control socket for people and tests (default: <socket>.ctl)
  --pty PATH      also expose the host link as a pseudo-terminal symlinked at PATH (needs socat)
  --doors N       2 or 4 doors (default 4)
  --json-log      log JSON lines on stderr instead of text
  --verbose       also log every line on the host link
  -V, --version   print the version
  -h, --help      show this help

Act on the car with: node dist/firmware-sim/hardware/ctl.js --socket PATH --help
Protocol: docs/firmware-sim.md`;

function usage(detail: string): CarkeyError {
  return new CarkeyError('CK_USAGE', `${detail} (see --help)`);
}

async function main(): Promise<number> {
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('sim-hardware'));
    return ExitCode.ok;
  }
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        socket: { type: 'string' },
        ctl: { type: 'string' },
        pty: { type: 'string' },
        doors: { type: 'string', default: '4' },
        'json-log': { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err));
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return ExitCode.ok;
  }
  const socketPath = values.socket;
  if (socketPath === undefined || socketPath.length === 0) throw usage('--socket PATH is required');
  if (values.doors !== '2' && values.doors !== '4') throw usage('--doors must be 2 or 4');
  const doorCount = values.doors === '2' ? 2 : 4;
  const logger = createSimLogger({
    json: values['json-log'],
    verbose: values.verbose,
    now: () => Date.now(),
    write: (line) => process.stderr.write(line),
  });

  const sim = await startHardwareSim({
    socketPath,
    controlPath: values.ctl ?? `${socketPath}.ctl`,
    doorCount,
    logger,
    ...(values.pty === undefined ? {} : { ptyPath: values.pty }),
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    sim.close().then(
      () => process.exit(ExitCode.ok),
      (err: unknown) => {
        logger.error('shutdown failed', { error: toCarkeyError(err).message });
        process.exit(ExitCode.internal);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  process.stdout.write(
    `${JSON.stringify({ ready: true, socket: sim.socketPath, control: sim.controlPath, pty: sim.ptyPath ?? null, doors: doorCount, pid: process.pid })}\n`,
  );
  logger.info('listening', { socket: sim.socketPath, control: sim.controlPath, pty: sim.ptyPath ?? null, doors: doorCount });
  return -1; // keep running until a signal arrives
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    const error = toCarkeyError(err);
    process.stderr.write(`hw-sim: ${error.message}\n`);
    process.exit(error.exitCode);
  },
);
