/**
 * `carkeyd`: the vehicle daemon's command line.
 *
 *   carkeyd init --state DIR [--config FILE] [--json]
 *   carkeyd [run] [--config FILE] [--transport ble|sim] [--adapter hci0] ...
 *   carkeyd audit verify --state DIR [--json]
 *   carkeyd identity --state DIR [--json]
 *   carkeyd config check [--config FILE] [flags]
 *
 * Guarantees: configuration is validated once before anything starts (exit 2
 * with the field named); every failure exits with the catalog's exit code and
 * a message saying what to do next; `run` prints one JSON line
 * `{"ready":true,...}` on stdout when serving (logs go to stderr) and stops
 * cleanly on SIGTERM/SIGINT.
 *
 * Shutdown is bounded: the first SIGTERM/SIGINT starts a clean stop (exit 0);
 * if it has not finished within SHUTDOWN_BOUND_MS (a step that hangs, e.g. a
 * radio broker or controller that stopped answering), carkeyd logs that and
 * exits with 1; a second SIGTERM/SIGINT while stopping exits at once with 1.
 * Exiting early is safe: every state change is already committed (crash-safe
 * store, docs/operations.md).
 */
import { randomBytes } from 'node:crypto';
import { Command, Option } from 'commander';
import { createLogger } from '../common/logger.js';
import { carkeyVersion } from '../common/version.js';
import { toHex } from '../core/bytes.js';
import { createCrypto } from '../core/crypto/index.js';
import { CarkeyError, ExitCode, toCarkeyError } from '../core/errors.js';
import { keyIdOf, vehicleIdOf } from '../core/identity.js';
import { loadConfigFile, resolveConfig, type DaemonConfig } from '../vehicle/config.js';
import { startDaemon } from '../vehicle/daemon.js';
import { createSdNotifier } from '../vehicle/sd-notify.js';
import { readIdentityFile } from '../vehicle/identity-file.js';
import { stateDirLayout } from '../vehicle/state-dir.js';
import { assertInitialized, verifyAuditDatabase, VehicleStore } from '../vehicle/store.js';

/** Longest a clean stop may take before carkeyd exits anyway. */
const SHUTDOWN_BOUND_MS = 5000;

interface RunFlags {
  config?: string;
  transport?: string;
  adapter?: string;
  radio?: string;
  hciSocket?: string;
  hardware?: string;
  state?: string;
  name?: string;
  statusPort?: string;
  statusHost?: string;
  logLevel?: string;
  json?: boolean;
}

function fail(error: unknown, json: boolean): never {
  const carkeyError = toCarkeyError(error);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: carkeyError.toJSON() })}\n`);
  else process.stderr.write(`carkeyd: ${carkeyError.message} [${carkeyError.code}]\n`);
  process.exit(carkeyError.exitCode);
}

function configFrom(flags: RunFlags): DaemonConfig {
  const file = flags.config === undefined ? {} : loadConfigFile(flags.config);
  return resolveConfig(file, {
    transport: flags.transport,
    adapter: flags.adapter,
    radio: flags.radio,
    hciSocket: flags.hciSocket,
    hardware: flags.hardware,
    stateDir: flags.state,
    name: flags.name,
    statusPort: flags.statusPort,
    statusHost: flags.statusHost,
    logLevel: flags.logLevel,
  });
}

function addRunOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'JSON config file (see docs/operations.md)')
    .addOption(new Option('--transport <kind>', 'radio: real BLE adapter or the simulated radio').choices(['ble', 'sim']))
    .option('--adapter <hciN>', 'BLE adapter (default hci0)')
    .option('--radio <path>', 'simulated radio broker socket (with --transport sim)')
    .option('--hci-socket <path>', 'H4 socket of an emulated controller (btvirt) instead of kernel Bluetooth')
    .option('--hardware <path>', 'body controller: UNIX socket or serial device (firmware-sim or the real UART)')
    .option('--state <dir>', 'state directory (identity key, key list, audit log)')
    .option('--name <name>', 'vehicle name shown to a pairing phone')
    .option('--status-port <port>', 'status HTTP port (0 = any free port, -1 = off)')
    .option('--status-host <ip>', 'address the status server binds (default 127.0.0.1; 0.0.0.0 for off-box Prometheus scraping)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']));
}

async function run(flags: RunFlags): Promise<void> {
  let config: DaemonConfig;
  try {
    config = configFrom(flags);
  } catch (error) {
    fail(error, false);
  }
  const logger = createLogger({ name: 'carkeyd', level: config.logLevel });
  let daemon;
  try {
    daemon = await startDaemon(config, { logger });
  } catch (error) {
    const carkeyError = toCarkeyError(error);
    logger.fatal({ errorCode: carkeyError.code, err: carkeyError.message }, 'carkeyd could not start');
    fail(carkeyError, false);
  }
  const crypto = createCrypto(config.cryptoBackend);
  const notifier = createSdNotifier({ env: process.env, pid: process.pid, logger });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal while stopping: exiting now');
      process.exit(ExitCode.internal);
    }
    stopping = true;
    notifier.stopping();
    logger.info({ signal, boundMs: SHUTDOWN_BOUND_MS }, 'stopping');
    setTimeout(() => {
      logger.error({ boundMs: SHUTDOWN_BOUND_MS }, 'shutdown did not finish in time; exiting anyway (committed state is safe)');
      process.exit(ExitCode.internal);
    }, SHUTDOWN_BOUND_MS);
    daemon
      .stop()
      .then(() => process.exit(ExitCode.ok))
      .catch((error: unknown) => {
        logger.error({ err: (error as Error).message }, 'stop failed');
        process.exit(ExitCode.internal);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Only now: a supervisor that signals as soon as it reads this line must find the handlers installed.
  process.stdout.write(
    `${JSON.stringify({ ready: true, pid: process.pid, vehicleKey: toHex(daemon.vehicleKey), vehicleKeyId: keyIdOf(crypto, daemon.vehicleKey), status: daemon.statusUrl ?? null, transport: config.transport })}\n`,
  );
  // startDaemon resolved: the car is advertising. Tell systemd (Type=notify), and ping its watchdog from now on.
  notifier.ready(`advertising as ${keyIdOf(crypto, daemon.vehicleKey)}`);
}

const program = new Command('carkeyd')
  .description('carkey vehicle daemon: verifies phone keys locally over Bluetooth LE and drives the car')
  .version(carkeyVersion(), '-V, --version')
  .configureHelp({ showGlobalOptions: true })
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride((error) => {
    process.exit(error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput);
  });

const runCommand = addRunOptions(program.command('run', { isDefault: true }).description('run the daemon (default command; create the car first with `carkeyd init`)'))
  .addHelpText('after', '\nExamples:\n  carkeyd init --state ./state\n  carkeyd --config /etc/carkey/carkeyd.json\n  carkeyd --transport sim --radio /tmp/carkey-radio.sock --hardware /tmp/carkey-hw.sock --state ./state')
  .action((flags: RunFlags) => run(flags));
// `carkeyd --help` shows what `carkeyd` alone does: the run flags, not only the command list.
program.addHelpText('after', () => {
  const help = runCommand.createHelp();
  const width = Math.max(...runCommand.options.map((option) => help.optionTerm(option).length));
  const lines = runCommand.options.map((option) => `  ${help.optionTerm(option).padEnd(width)}  ${help.optionDescription(option)}`);
  return `\nOptions of run (the default command: \`carkeyd [options]\` is \`carkeyd run [options]\`):\n${lines.join('\n')}\n\nExit codes: 0 ok, 1 internal, 2 bad configuration or flags, 6 adapter/hardware/status port unavailable, 7 state (no identity: carkeyd init; corrupt; locked).\n`;
});

const audit = program.command('audit').description('audit log tools');
audit
  .command('verify')
  .description("verify the audit log's hash chain and signed checkpoints (read-only; safe while carkeyd runs)")
  .requiredOption('--state <dir>', 'state directory')
  .option('--json', 'machine-readable output')
  .action((flags: { state: string; json?: boolean }) => {
    const json = flags.json === true;
    const result = verifyAuditDatabase(flags.state, createCrypto('node'));
    if (!result.ok) fail(result.error, json);
    const v = result.value;
    if (json) process.stdout.write(`${JSON.stringify({ ok: true, entries: v.entries, checkpoints: v.checkpoints, lastSeq: v.lastSeq, lastCheckpointSeq: v.lastCheckpointSeq, uncovered: v.uncovered, headHash: toHex(v.headHash), firstSeq: v.firstSeq, anchorSeq: v.anchorSeq })}\n`);
    else {
      process.stdout.write(`audit chain OK: ${v.entries} entries, ${v.checkpoints} signed checkpoints, last seq ${v.lastSeq}\n`);
      if (v.anchorSeq > 0) process.stdout.write(`note: entries 1..${v.anchorSeq} were pruned (auditMaxEntries); verified from the signed checkpoint at seq ${v.anchorSeq}\n`);
      const unsigned = v.lastSeq - v.lastCheckpointSeq;
      if (unsigned > 0) process.stdout.write(`note: the last ${unsigned} entries are after the last checkpoint (not yet signed)\n`);
    }
  });

program
  .command('init')
  .description('create the car identity in an empty state directory (once per car; logged); an existing one is never replaced')
  .option('--state <dir>', 'state directory (default: stateDir from --config, else /var/lib/carkey)')
  .option('-c, --config <file>', 'JSON config file (for stateDir and logLevel)')
  .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
  .option('--json', 'machine-readable output')
  .action((flags: { state?: string; config?: string; logLevel?: string; json?: boolean }) => {
    const json = flags.json === true;
    try {
      const config = configFrom({ state: flags.state, config: flags.config, logLevel: flags.logLevel });
      const logger = createLogger({ name: 'carkeyd', level: config.logLevel });
      const layout = stateDirLayout(config.stateDir);
      let existed = true;
      try {
        assertInitialized(layout.dir);
      } catch {
        existed = false;
      }
      const crypto = createCrypto(config.cryptoBackend);
      const store = VehicleStore.open(layout.dir, { crypto, now: () => Date.now(), random: (n) => new Uint8Array(randomBytes(n)), create: true });
      const publicKey = store.identity.publicKey;
      store.close();
      const out = { ok: true, created: !existed, stateDir: layout.dir, vehicleKey: toHex(publicKey), vehicleKeyId: keyIdOf(crypto, publicKey), vehicleId: toHex(vehicleIdOf(crypto, publicKey)) };
      if (existed) logger.info({ stateDir: layout.dir, vehicleKeyId: out.vehicleKeyId }, 'carkeyd init: the state directory already holds a car identity; nothing changed');
      else logger.info({ stateDir: layout.dir, vehicleKeyId: out.vehicleKeyId }, 'carkeyd init: created a new car identity');
      const headline = existed ? `${layout.dir} already holds a car identity; nothing changed` : `created a new car identity in ${layout.dir} (back up ${layout.identityPath}: without it paired phones cannot reach this car)`;
      process.stdout.write(json ? `${JSON.stringify(out)}\n` : `${headline}\nvehicle key id ${out.vehicleKeyId}\nvehicle key    ${out.vehicleKey}\n`);
    } catch (error) {
      fail(error, json);
    }
  });

program
  .command('identity')
  .description("print the vehicle's public identity (key, key id, vehicle id)")
  .requiredOption('--state <dir>', 'state directory')
  .option('--json', 'machine-readable output')
  .action((flags: { state: string; json?: boolean }) => {
    const json = flags.json === true;
    try {
      const seed = readIdentityFile(stateDirLayout(flags.state).identityPath);
      if (seed === undefined) throw new CarkeyError('CK_STORE_NOT_INITIALIZED', `no identity in ${flags.state}; create one with: carkeyd init --state ${flags.state}`);
      const crypto = createCrypto('node');
      const publicKey = crypto.publicKeyFromSeed(seed);
      const out = { publicKey: toHex(publicKey), keyId: keyIdOf(crypto, publicKey), vehicleId: toHex(vehicleIdOf(crypto, publicKey)) };
      process.stdout.write(json ? `${JSON.stringify(out)}\n` : `vehicle key ${out.publicKey}\nkey id      ${out.keyId}\nvehicle id  ${out.vehicleId}\n`);
    } catch (error) {
      fail(error, json);
    }
  });

addRunOptions(program.command('config').description('configuration tools').command('check').description('validate a configuration and print it resolved (no secrets)'))
  .option('--json', 'machine-readable output')
  .action((flags: RunFlags) => {
    try {
      const config = configFrom(flags);
      const shown = { ...config, startPin: config.startPin === undefined ? null : '[set]' };
      process.stdout.write(`${JSON.stringify(shown, null, flags.json === true ? undefined : 2)}\n`);
    } catch (error) {
      fail(error, flags.json === true);
    }
  });

program.parseAsync(process.argv).catch((error: unknown) => fail(error, false));
