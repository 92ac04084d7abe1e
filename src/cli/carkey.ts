/**
 * `carkey`: the phone-side key on the command line (launched by bin/carkey.js).
 *
 * The command table: keygen, whoami, scan, pair, unlock, lock, start, trunk,
 * status, share, accept, keys, label, revoke, audit, and the optional cloud path
 * (src/phone/cloud/): cloud use|status|register, sync, inbox,
 * accept --from-cloud, share --via-cloud, remote, audit --from-cloud.
 *
 * Guarantees: every command has --help with an example; with --json exactly
 * one JSON object goes to stdout; progress goes to stderr; the exit code is
 * the error's ExitCode (0 ok, 2 bad input, 3 denied, 4 not found, 5 timeout,
 * 6 unavailable, 7 local state); errors say what to do next. The BLE stack is
 * loaded only for `--transport ble` (src/phone/transports.ts). This file is
 * the entry point: the only place that reads the wall clock, the OS RNG,
 * process.env and argv for the phone side. Only the cloud commands (and
 * --via-cloud / --from-cloud) build a cloud client; the Bluetooth commands
 * never touch the network, whatever --cloud or $CARKEY_CLOUD say.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { hostname, homedir } from 'node:os';
import { Argument, Command, Option } from 'commander';
import { createRequire } from 'node:module';
import type qrcodeTerminal from 'qrcode-terminal';
import { fromHex, toHex } from '../core/bytes.js';
import { signGrant, type Grant, type KeyList } from '../core/credentials.js';
import { createCrypto, type Clock, type RandomSource } from '../core/crypto/index.js';
import { CarkeyError, ExitCode, toCarkeyError, type ErrorCode } from '../core/errors.js';
import { keyIdOf } from '../core/identity.js';
import type { DenyCategoryName } from '../core/messages.js';
import { decodeStatus, encodePin, MAX_AUDIT_PAGE, PIN_PATTERN } from '../core/payloads.js';
import { Permission, ROLE_MASK, permissionNames, type CommandName, type PermissionName } from '../core/roles.js';
import { AuditCollector } from '../core/audit-page.js';
import type { AuditEntry } from '../core/audit.js';
import type { CloudChoice } from '../phone/cloud/config.js';
import { isCloudTransient, type PhoneCloudDeps } from '../phone/cloud/deps.js';
import type { PublishReport } from '../phone/cloud/key-lists.js';
import type { InboxEntry } from '../phone/cloud/mailbox.js';
import { DEFAULT_REMOTE_EXPIRY_MS, REMOTE_COMMAND_NAMES, sendRemoteCommand, type RemoteCommandName } from '../phone/cloud/remote.js';
import { CarkeyClient, chooseCredential, type ClientTimeouts, type DeliveryReport, type Outcome, type VehicleConnection } from '../phone/client.js';
import { auditLabelSuffix, denialHint, describeProgress, describeWait, describeStatus, describeVehicleKeys, grantView, isRevoked, quoteLabel, statusView, vehicleKeysView } from '../phone/describe.js';
import { auditLabeler, checkLabel } from '../phone/grant-label.js';
import { buildRevocation, isCoveredBy, latestKnownKeyList, parseRevocationTarget, pendingAfterDelivery } from '../phone/key-lists.js';
import { KeyStore, resolveHome, type PassphraseSource } from '../phone/keystore.js';
import { writeFileAtomic } from '../phone/private-files.js';
import { decodeShare, encodeShare, MAX_SHARE_TEXT, type ShareBundle } from '../phone/share.js';
import { DEFAULT_ADAPTER, DEFAULT_RADIO_SOCKET, isTransportKind, openCentral, TRANSPORT_KINDS, type TransportKind } from '../phone/transports.js';
import { checkName, isValidName, MAX_ISSUED_GRANTS, uniqueName, type VehicleRecord } from '../phone/vehicle-record.js';
import type { WebCommandOptions } from '../web/server/command.js';
import { carkeyVersion } from '../common/version.js';
import { lineTrace, type PhaseTrace } from '../common/phase-trace.js';
import { fileAddressHints } from '../phone/address-hints.js';
import type * as CloudPath from './carkey-cloud-path.js';
import { COMMON_HINTS, configureCommander, configureSubcommands, integerOption, isoTime, Output, parseTimeArgument, processIo, promptLine, runProgram, type CliIo, type Hints } from './common.js';

/** CARKEY_TRACE=1: phase marks on stderr, ms since the process started (docs/performance.md). */
const trace: PhaseTrace | undefined = process.env.CARKEY_TRACE === '1' ? lineTrace((line) => process.stderr.write(line), () => performance.now()) : undefined;
trace?.('main-loaded');

const PROGRAM = 'carkey';
/** Top-level commands that never use the cloud: they run without loading the cloud path (./carkey-cloud-path.ts). */
const BLUETOOTH_ONLY = new Set(['unlock', 'lock', 'start', 'trunk', 'honk', 'flash', 'status']);
let cloudPath: typeof CloudPath | undefined;

/** The cloud path's modules, loaded by the preAction hook before any command outside BLUETOOTH_ONLY. */
function cloud(): typeof CloudPath {
  if (cloudPath === undefined) throw new CarkeyError('CK_INTERNAL', 'the cloud path was used by a command that did not load it');
  return cloudPath;
}
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_SCAN_MS = 5_000;
const MAX_AUDIT_PAGES = 10_000;
const MAX_SMALL_FILE = 64 * 1024;
const DAY_MS = 86_400_000;
/** `share --from` further ahead than this gets a warning (a typo'd year or month is the usual cause). */
const SHARE_FAR_AHEAD_MS = 7 * DAY_MS;

const BLE_STILL_WORKS = 'Bluetooth commands (unlock, lock, share, revoke, …) work without the cloud';
const NO_CLOUD_HINT = 'pass --cloud URL, set CARKEY_CLOUD=URL, or store a default with `carkey cloud use URL`';

/** What to do next for phone-side errors (transport/store hints are in common.ts). */
const CARKEY_HINTS: Hints = {
  CK_PHONE_NO_IDENTITY: 'run `carkey keygen` first (add --encrypt to protect the key with a passphrase)',
  CK_PHONE_IDENTITY_EXISTS: 'use the existing key (`carkey whoami`), or pass --home DIR to create a separate key store',
  CK_PHONE_NOT_PAIRED: 'list stored vehicles with `carkey keys`; pair with `carkey pair` (owner) or add a shared key with `carkey accept`',
  CK_PHONE_AMBIGUOUS_VEHICLE: 'add --vehicle NAME (names are listed by `carkey keys`)',
  CK_PHONE_BAD_PASSPHRASE: 'check --passphrase-file / $CARKEY_PASSPHRASE; a forgotten passphrase cannot be recovered (an owner can pair a new key with the car)',
  CK_PHONE_NEED_PASSPHRASE: 'pass --passphrase-file FILE, set CARKEY_PASSPHRASE, or run the command in a terminal',
  CK_PHONE_STORE_CORRUPT: 'restore the file named above from a backup, or move it away and pair / accept the vehicle again',
  CK_PHONE_STORE_BUSY: 'wait for the other carkey command to finish, then try again',
  CK_PHONE_NO_CREDENTIAL: 'ask an owner to share a key with you (`carkey share`), then `carkey accept` it',
  CK_PHONE_NOT_OWNER: 'only an owner phone can do this; ask an owner of the car',
  CK_PHONE_VEHICLE_EXISTS: 'choose another local name with --name',
  CK_PHONE_BAD_SHARE: 'ask the owner to send the share again (copy the whole carkey1:... string, or use the file from --out)',
  CK_PHONE_SHARE_NOT_FOR_ME: 'run `carkey whoami`, send the owner your public key, and ask for a share made with --to YOURKEY',
  CK_PHONE_BAD_LABEL: 'quote the label as one argument (e.g. "Sam, weekend"): 1 to 64 characters, no line breaks or control characters',
  CK_PHONE_NO_SUCH_GRANT: 'the grants this phone issued, with their serials, key ids and labels, are listed by `carkey keys`',
  CK_PHONE_COMMAND_FAILED: 'the car could not act (hardware problem?); try again, or check the car',
  CK_PHONE_DELIVERY_FAILED: 'the change stays queued and is retried at the next connection; `carkey keys --fetch` shows the list in force on the car',
  CK_USAGE: (error) => (error.details?.missing === 'cloud' ? NO_CLOUD_HINT : (COMMON_HINTS.CK_USAGE as string)),
  CK_CLOUD_UNAVAILABLE: `check the cloud URL and the network (\`carkey cloud status\`); ${BLE_STILL_WORKS}`,
  CK_CLOUD_SERVER_ERROR: `the cloud has a problem of its own; try again later. ${BLE_STILL_WORKS}`,
  CK_CLOUD_STORE: `the cloud's database is down; try again later. ${BLE_STILL_WORKS}`,
  CK_CLOUD_TIMEOUT: (error) => {
    const expiresAt = error.details?.expiresAt;
    if (typeof expiresAt === 'string') {
      return `the car may be offline (no signal, or no cloud configured on it); the command expires at ${expiresAt} and is not carried out after that. Check with \`carkey remote status\` later, or over Bluetooth near the car`;
    }
    return `the cloud did not answer in time; try again (or raise --timeout). ${BLE_STILL_WORKS}`;
  },
  CK_CLOUD_RATE_LIMITED: 'wait a minute, then try again',
  CK_CLOUD_AUTH_STALE: "this computer's clock is more than 2 minutes off the cloud's; fix the clock (`carkey cloud status` shows the difference)",
  CK_CLOUD_AUTH_REPLAY: 'try again (a request was repeated, e.g. by a proxy)',
  CK_CLOUD_AUTH_BAD_SIGNATURE: 'something between this computer and the cloud alters requests (a proxy?), or carkey and the cloud differ in version',
  CK_CLOUD_AUTH_MISSING: 'something between this computer and the cloud strips the x-carkey-* headers (a proxy?)',
  CK_CLOUD_BAD_REQUEST: 'carkey and the cloud may differ in version; update carkey, or report this with the command you ran',
  CK_CLOUD_FORBIDDEN:
    'the cloud does not accept this key for that car: an owner registers the car first (`carkey cloud register`, near the car), and only keys in its key list (or a remote command’s own sender) may use it. The cloud gives the same answer whether or not the car exists',
  CK_CLOUD_CONFLICT: (error) => {
    switch (error.details?.reason) {
      case 'CK_KEYLIST_ROLLBACK':
        return 'the cloud holds a newer key list; run `carkey sync` again (it re-applies queued revocations on top of it)';
      case 'CK_KEYLIST_VERSION_JUMP':
        return "the cloud's copy of the key list is too old to follow: near the car, run `carkey cloud register` (it forwards the car's current list), then `carkey sync`";
      case 'CK_KEYLIST_WRONG_EPOCH':
        return 'the car was factory-reset since this list was made: pair again, then `carkey cloud register`';
      default:
        return 'the cloud holds another key list for this car: near the car, run `carkey keys --fetch` and `carkey cloud register`, then `carkey sync`';
    }
  },
  CK_CLOUD_BAD_RESPONSE: 'nothing from that answer was used; try again. If it keeps happening, the cloud is faulty or tampering: the car and your Bluetooth key are not affected',
  CK_DENIED: (error) => {
    const category = error.details?.category;
    const retryAfterSeconds = error.details?.retryAfterSeconds;
    return typeof category === 'string' && isDenyCategory(category) ? denialHint(category, typeof retryAfterSeconds === 'number' ? retryAfterSeconds : undefined) : undefined;
  },
  CK_PROTO_REFUSED: 'ask an owner whether your key was revoked; an owner with physical access to the car can always pair again',
  CK_PROTO_BAD_CAR_SIGNATURE: 'this is not the car you paired with, or something is impersonating it; do not use it',
  CK_PROTO_PAIRING_NOT_CONFIRMED: 'put the car in pairing mode again (pairing button or keycard) and rerun `carkey pair`',
  CK_PAIRING_NOT_ACTIVE: 'press its pairing button (or keycard + button on a car that already has an owner), then rerun `carkey pair` while the car shows pairing mode',
  CK_PAIRING_BUSY: 'another phone is pairing: if it is not yours, do not confirm anything on the car; wait for the pairing window to close (or power-cycle the car) and rerun `carkey pair`',
  CK_KEYLIST_VERSION_EXHAUSTED: 'factory-reset the car (hold the pairing button, then tap a registered keycard) and pair again',
  CK_KEYLIST_VERSION_JUMP: 'sign the next key list from the one in force on the car (`carkey keys --fetch`) and deliver it again',
  CK_KEYLIST_WRONG_EPOCH: 'the car was factory-reset since this list was made: pair again with `carkey pair`',
  CK_CRED_BAD_WINDOW: 'choose --from/--until within the longest window allowed for the role (guest: 30 days)',
  CK_KEYLIST_TOO_LARGE: 'revoke an owner (carkey revoke KEY) before adding another',
  CK_AUDIT_CHAIN_BROKEN: 'the car’s log was altered or damaged; keep this output as evidence and inspect the car',
};

const DENY_CATEGORIES: readonly DenyCategoryName[] = ['none', 'not-permitted', 'expired', 'proximity', 'pin', 'busy', 'locked-out'];

function isDenyCategory(value: string): value is DenyCategoryName {
  return (DENY_CATEGORIES as readonly string[]).includes(value);
}

interface GlobalOptions {
  readonly home?: string;
  readonly transport?: string;
  readonly radio?: string;
  readonly adapter?: string;
  readonly hciSocket?: string;
  readonly json?: boolean;
  readonly quiet?: boolean;
  readonly timeout?: number;
  readonly connectTimeout?: number;
  readonly commandTimeout?: number;
  readonly passphraseFile?: string;
  readonly cloud?: string;
}

/** Everything one command run needs, built from the global options. */
class Context {
  readonly crypto = createCrypto('node');
  readonly random: RandomSource = (length) => new Uint8Array(randomBytes(length));
  readonly clock: Clock = () => Date.now();
  readonly sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  readonly output: Output;
  readonly store: KeyStore;

  constructor(
    readonly io: CliIo,
    readonly options: GlobalOptions,
  ) {
    this.output = new Output(io, options.json === true, options.quiet === true);
    this.store = new KeyStore(resolveHome(options.home, io.env, homedir()), { crypto: this.crypto, random: this.random, clock: this.clock, sleep: this.sleep });
  }

  get transport(): TransportKind {
    const chosen = this.options.transport ?? this.io.env.CARKEY_TRANSPORT ?? 'ble';
    if (!isTransportKind(chosen)) throw new CarkeyError('CK_USAGE', `--transport must be one of ${TRANSPORT_KINDS.join(', ')}, got "${chosen}"`);
    return chosen;
  }

  timeouts(overrides: Partial<ClientTimeouts> = {}): Partial<ClientTimeouts> {
    // --timeout: a deadline for the whole command (like tesla-control); --connect-timeout: finding and
    // connecting to the car, per attempt; --command-timeout: each answer from the car.
    const { timeout, connectTimeout, commandTimeout } = this.options;
    const base: Partial<ClientTimeouts> = {
      ...(timeout === undefined ? {} : { deadlineMs: timeout }),
      ...(connectTimeout === undefined ? {} : { scanMs: connectTimeout, connectMs: connectTimeout }),
      ...(commandTimeout === undefined ? {} : { answerMs: commandTimeout }),
    };
    return { ...base, ...overrides };
  }

  client(overrides: Partial<ClientTimeouts> = {}): CarkeyClient {
    const transport = this.transport;
    const env = this.io.env;
    const radio = this.options.radio ?? env.CARKEY_RADIO ?? DEFAULT_RADIO_SOCKET;
    const adapter = this.options.adapter ?? env.CARKEY_ADAPTER ?? DEFAULT_ADAPTER;
    const hciSocketPath = this.options.hciSocket ?? env.CARKEY_HCI_SOCKET;
    const name = `carkey-${process.pid}`;
    return new CarkeyClient(
      {
        crypto: this.crypto,
        random: this.random,
        clock: this.clock,
        sleep: this.sleep,
        store: this.store,
        openTransport: () =>
          openCentral({ transport, radio, adapter, name, ...(hciSocketPath === undefined || hciSocketPath === '' ? {} : { hciSocketPath }), ...(trace === undefined ? {} : { trace }) }),
        ...(trace === undefined ? {} : { trace }),
        // the sim radio can connect to an address it has not scanned yet (noble cannot)
        ...(transport === 'sim' ? { addressHints: fileAddressHints(this.store.paths.home) } : {}),
        progress: (event) => {
          if (event.kind === 'delivery-failed') {
            this.output.warn(describeProgress(event) ?? event.reason);
            return;
          }
          const line = describeProgress(event);
          if (line !== undefined) this.output.progress(line);
        },
      },
      this.timeouts(overrides),
    );
  }

  /** Passphrase: --passphrase-file, then $CARKEY_PASSPHRASE, then a terminal prompt. */
  passphrase(prompt = `passphrase for ${this.store.paths.home}: `): PassphraseSource {
    return async () => {
      const file = this.options.passphraseFile;
      if (file !== undefined) return readPassphraseFile(file);
      const env = this.io.env.CARKEY_PASSPHRASE;
      if (env !== undefined && env !== '') return env;
      if (this.io.interactive) return promptLine(this.io, prompt, true);
      return undefined;
    };
  }

  unlockSeed(): Promise<Uint8Array> {
    return this.store.unlockSeed(this.passphrase());
  }

  /** The cloud to use (--cloud, $CARKEY_CLOUD, the stored default); CK_USAGE when none. Contacts nothing. */
  cloudChoice(): CloudChoice {
    return cloud().requireCloud(this.options.cloud, this.io.env, this.store.paths.home);
  }

  /** The phone's cloud operations, requests signed with `seed` (which the caller wipes). */
  cloudDeps(choice: CloudChoice, seed: Uint8Array): PhoneCloudDeps {
    const timeout = this.options.timeout;
    const client = new (cloud().CloudClient)({ baseUrl: choice.url, crypto: this.crypto, random: this.random, clock: this.clock, seed: () => seed, ...(timeout === undefined ? {} : { timeoutMs: timeout }) });
    return { crypto: this.crypto, random: this.random, clock: this.clock, sleep: this.sleep, client, store: this.store, progress: (line) => this.output.progress(line) };
  }
}

/** Resolve the cloud, unlock the seed, run `use`, wipe the seed. */
async function withCloud<T>(ctx: Context, use: (deps: PhoneCloudDeps, seed: Uint8Array, choice: CloudChoice) => Promise<T>): Promise<T> {
  const choice = ctx.cloudChoice();
  const seed = await ctx.unlockSeed();
  try {
    return await use(ctx.cloudDeps(choice, seed), seed, choice);
  } finally {
    seed.fill(0);
  }
}

function readSmallFile(path: string, maxBytes: number, what: string): string {
  try {
    const stats = statSync(path);
    if (!stats.isFile()) throw new CarkeyError('CK_USAGE', `${what} ${path} is not a regular file`);
    if (stats.size > maxBytes) throw new CarkeyError('CK_USAGE', `${what} ${path} is larger than ${maxBytes} bytes`);
    return readFileSync(path, 'utf8');
  } catch (error) {
    if (error instanceof CarkeyError) throw error;
    throw new CarkeyError('CK_USAGE', `cannot read ${what} ${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function readPassphraseFile(path: string): string {
  const text = readSmallFile(path, 4096, 'passphrase file');
  const firstLine = text.split(/\r?\n/)[0] ?? '';
  if (firstLine === '') throw new CarkeyError('CK_USAGE', `passphrase file ${path} is empty`);
  return firstLine;
}

function expectOk<T>(outcome: Outcome<T>, command: string): T {
  if (outcome.status === 'ok') return outcome.value;
  if (outcome.status === 'denied') {
    if (outcome.category === 'locked-out') {
      const wait = outcome.retryAfterSeconds === undefined ? '' : ` for ${describeWait(outcome.retryAfterSeconds)}`;
      throw new CarkeyError('CK_DENIED', `${command}: locked out after too many wrong PINs${wait}`, { command, category: outcome.category, ...(outcome.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: outcome.retryAfterSeconds }) });
    }
    throw new CarkeyError('CK_DENIED', `${command}: ${outcome.category}`, { command, category: outcome.category });
  }
  throw new CarkeyError('CK_PHONE_COMMAND_FAILED', `${command}: ${outcome.reason}`, { command });
}

function deliveryView(delivery: DeliveryReport): Record<string, unknown> {
  return { delivered: delivery.delivered ?? null, queued: delivery.stillQueued, failure: delivery.failure ?? null };
}

function requireOwner(record: VehicleRecord, what: string): void {
  if (!record.owner) throw new CarkeyError('CK_PHONE_NOT_OWNER', `${what} (${record.name})`);
}

/** Connect to the chosen vehicle, run `use`, disconnect. */
async function withVehicle<T>(
  ctx: Context,
  vehicleName: string | undefined,
  use: (connection: VehicleConnection, delivery: DeliveryReport, record: VehicleRecord) => Promise<T>,
  check?: (record: VehicleRecord) => void,
): Promise<T> {
  const record = ctx.store.selectVehicle(vehicleName);
  check?.(record);
  const seed = await ctx.unlockSeed();
  try {
    return await ctx.client().withConnection(record, seed, (connection, delivery) => use(connection, delivery, connection.vehicle));
  } finally {
    seed.fill(0);
  }
}

function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

function example(text: string): string {
  return `\nExample:\n  ${text}\n`;
}

// --- commands ------------------------------------------------------------------

async function keygenCommand(ctx: Context, options: { encrypt?: boolean }): Promise<void> {
  if (ctx.store.hasIdentity()) throw new CarkeyError('CK_PHONE_IDENTITY_EXISTS', ctx.store.paths.identity);
  let passphrase: string | undefined;
  if (options.encrypt === true) {
    const fromSources = ctx.options.passphraseFile !== undefined ? readPassphraseFile(ctx.options.passphraseFile) : ctx.io.env.CARKEY_PASSPHRASE;
    if (fromSources !== undefined && fromSources !== '') passphrase = fromSources;
    else if (ctx.io.interactive) {
      passphrase = await promptLine(ctx.io, 'new passphrase: ', true);
      if (passphrase === '') throw new CarkeyError('CK_USAGE', 'the passphrase must not be empty');
      if ((await promptLine(ctx.io, 'repeat passphrase: ', true)) !== passphrase) throw new CarkeyError('CK_USAGE', 'the passphrases differ');
    } else throw new CarkeyError('CK_PHONE_NEED_PASSPHRASE', '--encrypt needs a passphrase');
  }
  const identity = await ctx.store.createIdentity(passphrase);
  ctx.output.result(
    { publicKey: toHex(identity.publicKey), keyId: identity.keyId, encrypted: identity.encrypted, home: ctx.store.paths.home },
    [`created a new key in ${ctx.store.paths.home}${identity.encrypted ? ' (encrypted)' : ''}`, `public key: ${toHex(identity.publicKey)}`, `key id:     ${identity.keyId}`],
  );
}

function whoamiCommand(ctx: Context): void {
  const identity = ctx.store.identity();
  const vehicles = ctx.store.listVehicles();
  ctx.output.result(
    {
      publicKey: toHex(identity.publicKey),
      keyId: identity.keyId,
      encrypted: identity.encrypted,
      home: ctx.store.paths.home,
      vehicles: vehicles.map((record) => ({ name: record.name, owner: record.owner })),
    },
    [
      `public key: ${toHex(identity.publicKey)}`,
      `key id:     ${identity.keyId}`,
      `encrypted:  ${identity.encrypted ? 'yes' : 'no'}`,
      `key store:  ${ctx.store.paths.home}`,
      `vehicles:   ${vehicles.length === 0 ? 'none' : vehicles.map((record) => `${record.name}${record.owner ? ' (owner)' : ''}`).join(', ')}`,
    ],
  );
}

async function scanCommand(ctx: Context): Promise<void> {
  const entries = await ctx.client().scan(ctx.options.timeout ?? DEFAULT_SCAN_MS);
  const views = entries.map((entry) => ({
    address: entry.discovery.address,
    localName: entry.discovery.localName ?? null,
    rssi: entry.discovery.rssi ?? null,
    pairing: entry.pairing,
    vehicle: entry.vehicle ?? null,
  }));
  const lines =
    views.length === 0
      ? ['no carkey car seen']
      : views.map((view) => `${view.address}  ${view.rssi === null ? '   ?' : String(view.rssi).padStart(4)} dBm  ${view.vehicle ?? '(not one of yours)'}${view.pairing ? '  [pairing mode]' : ''}`);
  ctx.output.result({ cars: views }, lines);
}

interface PairOptions {
  readonly name?: string;
  readonly phoneName?: string;
  readonly yes?: boolean;
  readonly code?: string;
  readonly wait?: number;
}

function defaultPhoneName(): string {
  const host = hostname().replace(/[^\x20-\x7e]/g, '').slice(0, 32);
  return isValidName(host) ? host : 'carkey phone';
}

async function pairCommand(ctx: Context, options: PairOptions): Promise<void> {
  if (options.code !== undefined && !/^\d{6}$/.test(options.code)) throw new CarkeyError('CK_USAGE', '--code must be the 6 digits shown on the car');
  if (options.yes !== true && options.code === undefined && !ctx.io.interactive) {
    throw new CarkeyError('CK_USAGE', 'pairing needs you to compare a code: run it in a terminal, or pass --code NNNNNN (from the car display) or --yes');
  }
  const localName = options.name === undefined ? undefined : checkName(options.name, '--name');
  const phoneName = checkName(options.phoneName ?? defaultPhoneName(), '--phone-name');
  const seed = await ctx.unlockSeed();
  let shownCode = '';
  try {
    const client = ctx.client(options.wait === undefined ? {} : { pairConfirmMs: options.wait });
    const record = await client.pair({
      seed,
      phoneName,
      ...(localName === undefined ? {} : { localName }),
      confirmCode: async (code) => {
        shownCode = code;
        if (options.code !== undefined) {
          ctx.output.progress(`pairing code: ${code} (${options.code === code ? 'matches' : 'does NOT match'} --code ${options.code})`);
          return options.code === code;
        }
        if (options.yes === true) {
          ctx.output.progress(`pairing code: ${code} (accepted with --yes)`);
          return true;
        }
        const answer = await promptLine(ctx.io, `pairing code: ${code}\ndoes the car's display show the same code? [y/N] `, false);
        return /^y(es)?$/i.test(answer.trim());
      },
    });
    ctx.output.result(
      { vehicle: record.name, vehicleName: record.vehicleName, vehicleId: toHex(record.vehicleId), carKeyId: keyIdOf(ctx.crypto, record.carIdentityKey), code: shownCode, keyListVersion: record.keyList?.version ?? null },
      [`paired with ${record.vehicleName}; stored as "${record.name}" (you are an owner, key list version ${record.keyList?.version ?? '?'})`],
    );
  } finally {
    seed.fill(0);
  }
}

/** Fail before using the radio when this phone holds no key allowing `command`. */
function holdsKeyFor(ctx: Context, command: CommandName): (record: VehicleRecord) => void {
  return (record) => {
    chooseCredential(record, command, ctx.clock());
  };
}

async function simpleCommand(ctx: Context, command: 'unlock' | 'passiveUnlock' | 'lock' | 'trunk' | 'honk' | 'flash', vehicle: string | undefined): Promise<void> {
  const done = { unlock: 'unlocked', passiveUnlock: 'unlocked (walk-up)', lock: 'locked', trunk: 'opened the trunk of', honk: 'honked the horn of', flash: 'flashed the lights of' } as const;
  await withVehicle(
    ctx,
    vehicle,
    async (connection, delivery, record) => {
      expectOk(await connection.command(command), command);
      ctx.output.result({ vehicle: record.name, command, delivery: deliveryView(delivery) }, `${done[command]} ${record.name}`);
    },
    holdsKeyFor(ctx, command),
  );
}

async function startCommand(ctx: Context, options: { vehicle?: string; pin?: string }): Promise<void> {
  if (options.pin !== undefined && !PIN_PATTERN.test(options.pin)) throw new CarkeyError('CK_USAGE', '--pin must be 4 to 8 digits');
  await withVehicle(
    ctx,
    options.vehicle,
    async (connection, delivery, record) => {
      let outcome = await connection.start(options.pin);
      if (outcome.status === 'denied' && outcome.category === 'pin' && options.pin === undefined && ctx.io.interactive) {
        const pin = await promptLine(ctx.io, 'the car asks for its PIN: ', true);
        if (!PIN_PATTERN.test(pin)) throw new CarkeyError('CK_USAGE', 'the PIN must be 4 to 8 digits');
        outcome = await connection.start(pin);
      }
      expectOk(outcome, 'start');
      ctx.output.result({ vehicle: record.name, command: 'start', delivery: deliveryView(delivery) }, `started ${record.name}`);
    },
    holdsKeyFor(ctx, 'start'),
  );
}

async function statusCommand(ctx: Context, options: { vehicle?: string }): Promise<void> {
  await withVehicle(
    ctx,
    options.vehicle,
    async (connection, delivery, record) => {
      const status = expectOk(await connection.status(), 'status');
      ctx.output.result({ vehicle: record.name, status: statusView(status), delivery: deliveryView(delivery) }, [`${record.name}:`, ...describeStatus(status).map((line) => `  ${line}`)]);
    },
    holdsKeyFor(ctx, 'status'),
  );
}

interface ShareOptions {
  readonly vehicle?: string;
  readonly role: 'driver' | 'guest' | 'monitor';
  readonly from?: string;
  readonly until: string;
  readonly to: string;
  readonly permissions?: string;
  readonly out?: string;
  readonly viaCloud?: boolean;
  readonly label?: string;
  readonly sendLabel?: boolean;
}

/** A grant label from the command line (trimmed, normalised), or CK_PHONE_BAD_LABEL saying why not. */
function labelArgument(text: string): string {
  const checked = checkLabel(text);
  if (!checked.ok) throw checked.error;
  return checked.value;
}

/** The label of a new share, and whether it goes with the share to the friend. */
interface ShareLabel {
  readonly label: string | undefined;
  readonly sent: boolean;
}

function parseSubjectKey(ctx: Context, value: string): Uint8Array {
  const direct = value.trim();
  let text = direct;
  if (!/^[0-9a-fA-F]{64}$/.test(direct)) {
    text = readSmallFile(value, MAX_SMALL_FILE, 'public key file');
    refusePrivateKeyFile(value, text);
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null && 'publicKey' in parsed && typeof parsed.publicKey === 'string') text = parsed.publicKey;
    } catch {
      // not JSON: look for the key as hex text
    }
    if ((text.match(/(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])/g) ?? []).length > 1) {
      throw new CarkeyError('CK_USAGE', `--to: ${value} holds more than one 64-hex-digit value, so which one is the public key is unclear; give the key itself (\`carkey whoami\` on the friend's phone prints it)`);
    }
    const match = /(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])/.exec(text);
    if (match === null) throw new CarkeyError('CK_USAGE', `--to: ${value} holds no public key (64 hex digits, as printed by \`carkey whoami\`)`);
    text = match[0];
  }
  const key = fromHex(text.toLowerCase());
  if (key === undefined || !ctx.crypto.checkPublicKey(key).ok) throw new CarkeyError('CK_USAGE', '--to is not a valid public key');
  return key;
}

/**
 * `share --to FILE` takes public material only. A file with a private seed (a phone's identity.json,
 * plain or encrypted) is refused: it must never leave the friend's phone, and whoever holds it can use
 * every key issued to that phone.
 */
export function refusePrivateKeyFile(file: string, text: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const privateField = typeof parsed === 'object' && parsed !== null ? ['seed', 'secretKey', 'privateKey', 'secret'].find((name) => name in parsed) : undefined;
  const privateText = privateField === undefined && /PRIVATE KEY|"seed"\s*:/.test(text);
  if (privateField === undefined && !privateText) return;
  throw new CarkeyError(
    'CK_USAGE',
    `--to: ${file} holds a private key${privateField === undefined ? '' : ` (its "${privateField}" field)`}, such as a phone's identity.json: it must never leave that phone, because whoever holds it can use every key issued to it. Give only the public key: \`carkey whoami --json > friend.json\` on the friend's phone (and if this file was sent to you, the friend should make a new key with a new --home)`,
  );
}

function parsePermissions(list: string | undefined, role: ShareOptions['role']): number {
  if (list === undefined) return ROLE_MASK[role];
  const names = Object.keys(Permission) as PermissionName[];
  let mask = 0;
  for (const item of list.split(',').map((part) => part.trim()).filter((part) => part !== '')) {
    const name = names.find((candidate) => candidate === item);
    if (name === undefined) throw new CarkeyError('CK_USAGE', `unknown permission "${item}"; choose from ${names.join(', ')}`);
    mask |= Permission[name];
  }
  if (mask === 0) throw new CarkeyError('CK_USAGE', '--permissions is empty');
  if ((mask & ~ROLE_MASK[role]) !== 0) {
    throw new CarkeyError('CK_USAGE', `a ${role} may have at most: ${permissionNames(ROLE_MASK[role]).join(', ')}`);
  }
  return mask;
}

/** Loaded on first use: only `share` draws a QR code (`carkey unlock` loads what it needs, docs/performance.md). */
const requireCjs = createRequire(import.meta.url);

function renderQr(text: string): string {
  const qrcode = requireCjs('qrcode-terminal') as typeof qrcodeTerminal;
  let rendered = '';
  qrcode.generate(text, { small: true }, (code) => {
    rendered = code;
  });
  return rendered;
}

async function shareCommand(ctx: Context, options: ShareOptions): Promise<void> {
  const record = ctx.store.selectVehicle(options.vehicle);
  requireOwner(record, 'only an owner can share keys');
  const now = ctx.clock();
  const notBefore = parseTimeArgument(options.from ?? 'now', now, '--from');
  const notAfter = parseTimeArgument(options.until, now, '--until');
  if (notAfter <= now) {
    throw new CarkeyError('CK_USAGE', `--until ${isoTime(notAfter)} is not in the future: that key would never open the car; choose a later time (e.g. --until +2d)`);
  }
  if (notBefore - now > SHARE_FAR_AHEAD_MS) {
    ctx.output.warn(`the key becomes valid only at ${isoTime(notBefore)}, more than ${SHARE_FAR_AHEAD_MS / DAY_MS} days from now (--from); it does not open the car before then`);
  }
  const subject = parseSubjectKey(ctx, options.to);
  const permissions = parsePermissions(options.permissions, options.role);
  const label = options.label === undefined ? undefined : labelArgument(options.label);
  if (options.sendLabel === true && label === undefined) throw new CarkeyError('CK_USAGE', '--send-label sends the --label with the share: give --label TEXT too');
  const labels: ShareLabel = { label, sent: options.sendLabel === true };
  const self = ctx.store.identity().publicKey;
  if (toHex(subject) === toHex(self)) throw new CarkeyError('CK_USAGE', '--to is your own key; owners need no grant');
  // --via-cloud: know where to post before anything is signed.
  const cloud = options.viaCloud === true ? ctx.cloudChoice() : undefined;
  const seed = await ctx.unlockSeed();
  try {
    // The grant names the epoch of the car's key list this owner knows (a factory reset voids older grants).
    const epoch = latestKnownKeyList(record)?.epoch ?? 0;
    const grant = signGrant(ctx.crypto, seed, { vehicleId: record.vehicleId, epoch, serial: ctx.random(8), subject, role: options.role, permissions, notBefore, notAfter });
    await ctx.store.updateVehicle(record.vehicleId, (current) => {
      const base = current ?? record;
      return { ...base, issued: [...base.issued, { grant, issuedAt: now, ...(label === undefined ? {} : { label }) }].slice(-MAX_ISSUED_GRANTS) };
    });
    // The label stays on this phone unless --send-label: then it rides along unsigned (share format 2).
    const share = encodeShare({ grant, carIdentityKey: record.carIdentityKey, advSecret: record.advSecret, vehicleName: record.vehicleName, ...(labels.sent ? { sharerLabel: label } : {}) });
    if (options.out !== undefined) writeFileAtomic(options.out, new TextEncoder().encode(`${share}\n`));
    if (cloud !== undefined) {
      await postShareToCloud(ctx, ctx.cloudDeps(cloud, seed), { record, grant, subject, share, out: options.out, labels });
      return;
    }
    reportShare(ctx, record, grant, subject, share, options.out, labels);
  } finally {
    seed.fill(0);
  }
}

interface ShareSummary extends Record<string, unknown> {
  readonly vehicle: string;
  readonly serial: string;
  readonly role: string;
  readonly permissions: string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly subjectKeyId: string;
  readonly share: string;
  readonly out: string | null;
  readonly label: string | null;
  readonly labelSent: boolean;
}

function shareSummary(ctx: Context, record: VehicleRecord, grant: Grant, subject: Uint8Array, share: string, out: string | undefined, labels: ShareLabel): ShareSummary {
  return {
    vehicle: record.name,
    serial: toHex(grant.serial),
    role: grant.role,
    permissions: permissionNames(grant.permissions),
    notBefore: isoTime(grant.notBefore),
    notAfter: isoTime(grant.notAfter),
    subjectKeyId: keyIdOf(ctx.crypto, subject),
    share,
    out: out ?? null,
    label: labels.label ?? null,
    labelSent: labels.sent,
  };
}

/** The first line of a share report: the grant, with its label when it has one. */
function shareLines(summary: ShareSummary, grant: Grant): string[] {
  const label = summary.label === null ? '' : ` ${quoteLabel(summary.label)}`;
  return [
    `grant ${summary.serial}: ${grant.role} (${summary.permissions.join(', ')}) for key ${summary.subjectKeyId}${label}, ${summary.notBefore} → ${summary.notAfter}`,
    ...(summary.label === null ? [] : [summary.labelSent ? 'the label goes with the share (not signed; they see it as the label from the sharer)' : 'the label stays on this phone (add --send-label to send it with the share)']),
  ];
}

/** share --via-cloud: seal the share to the friend's key and post it to the mailbox. */
async function postShareToCloud(ctx: Context, deps: PhoneCloudDeps, input: { record: VehicleRecord; grant: Grant; subject: Uint8Array; share: string; out: string | undefined; labels: ShareLabel }): Promise<void> {
  const { record, grant, subject, share, out, labels } = input;
  const summary = shareSummary(ctx, record, grant, subject, share, out, labels);
  let posted: { id: string; expiresAt: number };
  try {
    posted = await cloud().postShare(deps, { recipient: subject, vehicleId: record.vehicleId, share, notAfter: grant.notAfter });
  } catch (thrown) {
    const error = toCarkeyError(thrown);
    throw new CarkeyError(error.code, `${error.message} — grant ${summary.serial} is recorded on this phone (\`carkey keys\`) but was not posted; share again, or revoke it`, { ...error.details, serial: summary.serial });
  }
  ctx.output.result({ ...summary, mailbox: { id: posted.id, expiresAt: isoTime(posted.expiresAt) } }, [
    ...shareLines(summary, grant),
    ...(out === undefined ? [] : [`written to ${out}`]),
    `posted to the cloud mailbox, sealed to key ${summary.subjectKeyId}: item ${posted.id} (kept until ${isoTime(posted.expiresAt)})`,
    'they run `carkey inbox`, then `carkey accept --from-cloud`',
  ]);
}

function reportShare(ctx: Context, record: VehicleRecord, grant: Grant, subject: Uint8Array, share: string, out: string | undefined, labels: ShareLabel): void {
  const summary = shareSummary(ctx, record, grant, subject, share, out, labels);
  ctx.output.result(summary, [
    ...shareLines(summary, grant),
    ...(out === undefined ? [] : [`written to ${out}`]),
    'send this privately (it also lets the holder recognise your car on the air); they run `carkey accept STRING`:',
    share,
  ]);
  ctx.output.text(renderQr(share));
}

interface AcceptOptions {
  readonly name?: string;
  readonly fromCloud?: boolean;
  readonly all?: boolean;
  readonly replace?: boolean;
}

/**
 * A share for a car this phone already holds never renames it silently: without --name the key joins
 * the stored car under its name (and says so); a different --name needs --replace, or a yes on a terminal.
 */
async function confirmAcceptName(ctx: Context, vehicleId: Uint8Array, localName: string | undefined, replace: boolean): Promise<void> {
  const existing = ctx.store.listVehicles().find((record) => toHex(record.vehicleId) === toHex(vehicleId));
  if (existing === undefined) return;
  if (localName === undefined || localName === existing.name) {
    ctx.output.progress(`this car is already stored as "${existing.name}"; the key is added to it`);
    return;
  }
  if (replace) return;
  if (ctx.io.interactive) {
    const answer = await promptLine(ctx.io, `this car is already stored as "${existing.name}"; rename it to "${localName}"? [y/N] `, false);
    if (/^y(es)?$/i.test(answer.trim())) return;
    throw new CarkeyError('CK_USAGE', `kept the name "${existing.name}"; nothing was stored (leave out --name to add the key under "${existing.name}")`);
  }
  throw new CarkeyError('CK_USAGE', `this car is already stored as "${existing.name}": add --replace to rename it to "${localName}", or leave out --name to add the key under "${existing.name}"`);
}

async function acceptCommand(ctx: Context, source: string | undefined, options: AcceptOptions): Promise<void> {
  if (options.fromCloud === true) return acceptFromCloud(ctx, source, options);
  if (options.all === true) throw new CarkeyError('CK_USAGE', '--all goes with --from-cloud');
  if (source === undefined) throw new CarkeyError('CK_USAGE', 'give the carkey1:... string or a share file (or --from-cloud for the cloud mailbox)');
  const text = source.trim().startsWith('carkey1:') ? source : readSmallFile(source, MAX_SHARE_TEXT + 1024, 'share file');
  const decoded = decodeShare(ctx.crypto, text);
  if (!decoded.ok) throw decoded.error;
  const bundle = decoded.value;
  const self = ctx.store.identity();
  if (toHex(bundle.grant.subject) !== toHex(self.publicKey)) {
    throw new CarkeyError('CK_PHONE_SHARE_NOT_FOR_ME', `it names key ${keyIdOf(ctx.crypto, bundle.grant.subject)}, yours is ${self.keyId}`);
  }
  const localName = options.name === undefined ? undefined : checkName(options.name, '--name');
  await confirmAcceptName(ctx, bundle.grant.vehicleId, localName, options.replace === true);
  const stored = await storeShare(ctx, bundle, localName);
  ctx.output.result(stored.view, stored.line);
}

/** Store a checked share addressed to this phone (accept, accept --from-cloud); warn when it is not valid now. */
async function storeShare(ctx: Context, bundle: ShareBundle, localName: string | undefined): Promise<{ view: Record<string, unknown>; line: string }> {
  const now = ctx.clock();
  const taken = new Set(ctx.store.listVehicles().filter((record) => toHex(record.vehicleId) !== toHex(bundle.grant.vehicleId)).map((record) => record.name));
  const serialHex = toHex(bundle.grant.serial);
  const record = await ctx.store.updateVehicle(bundle.grant.vehicleId, (current) => {
    const grants = (current?.grants ?? []).filter((grant) => toHex(grant.serial) !== serialHex);
    // The sharer's label (display only) replaces any earlier one for this serial; a share without one clears it.
    const sharerLabels = Object.fromEntries(Object.entries(current?.sharerLabels ?? {}).filter(([serial]) => serial !== serialHex));
    if (bundle.sharerLabel !== undefined) sharerLabels[serialHex] = bundle.sharerLabel;
    return {
      name: localName ?? current?.name ?? uniqueName(bundle.vehicleName, taken),
      vehicleName: current?.vehicleName ?? bundle.vehicleName,
      carIdentityKey: bundle.carIdentityKey,
      vehicleId: bundle.grant.vehicleId,
      advSecret: current?.owner === true ? current.advSecret : bundle.advSecret,
      owner: current?.owner ?? false,
      grants: [...grants, bundle.grant],
      issued: current?.issued ?? [],
      keyList: current?.keyList,
      pending: current?.pending ?? [],
      addedAt: current?.addedAt ?? now,
      sharerLabels,
    };
  });
  const { grant } = bundle;
  if (now >= grant.notAfter) ctx.output.warn(`this key expired at ${isoTime(grant.notAfter)}`);
  else if (now < grant.notBefore) ctx.output.warn(`this key becomes valid at ${isoTime(grant.notBefore)}`);
  return {
    view: {
      vehicle: record.name,
      vehicleName: bundle.vehicleName,
      serial: toHex(grant.serial),
      role: grant.role,
      permissions: permissionNames(grant.permissions),
      notBefore: isoTime(grant.notBefore),
      notAfter: isoTime(grant.notAfter),
      issuerKeyId: keyIdOf(ctx.crypto, grant.issuer),
      sharerLabel: bundle.sharerLabel ?? null,
    },
    line:
      `stored a ${grant.role} key for "${record.name}" (${permissionNames(grant.permissions).join(', ')}), valid ${isoTime(grant.notBefore)} → ${isoTime(grant.notAfter)}` +
      (bundle.sharerLabel === undefined ? '' : `; label from the sharer: ${quoteLabel(bundle.sharerLabel)}`),
  };
}

async function keysCommand(ctx: Context, options: { vehicle?: string; fetch?: boolean }): Promise<void> {
  const self = ctx.store.identity().publicKey;
  if (options.fetch === true) {
    await withVehicle(
      ctx,
      options.vehicle,
      async (connection, delivery, record) => {
        const carList = expectOk(await connection.keyListGet(ctx.crypto), 'keyListGet');
        let updated = record;
        if (carList !== undefined && (record.keyList === undefined || carList.version > record.keyList.version)) {
          const inForce: KeyList = carList;
          updated = await ctx.store.updateVehicle(record.vehicleId, (current) => {
            const base = current ?? record;
            return { ...base, keyList: inForce, pending: pendingAfterDelivery(base.pending, inForce) };
          });
        }
        const now = ctx.clock();
        ctx.output.result({ vehicles: [vehicleKeysView(ctx.crypto, updated, self, now)], fetched: true, delivery: deliveryView(delivery) }, describeVehicleKeys(ctx.crypto, updated, self, now));
      },
      (record) => requireOwner(record, "reading the car's key list needs an owner key"),
    );
    return;
  }
  const records = options.vehicle === undefined ? ctx.store.listVehicles() : [ctx.store.selectVehicle(options.vehicle)];
  const now = ctx.clock();
  ctx.output.result(
    { vehicles: records.map((record) => vehicleKeysView(ctx.crypto, record, self, now)), fetched: false },
    records.length === 0 ? ['no vehicles stored; pair with `carkey pair` or accept a share with `carkey accept`'] : records.flatMap((record) => describeVehicleKeys(ctx.crypto, record, self, now)),
  );
}

/** Failures that mean "the car is not reachable now", after which a revocation simply stays queued. */
const UNREACHABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'CK_TRANSPORT_NOT_FOUND',
  'CK_TRANSPORT_TIMEOUT',
  'CK_TRANSPORT_CONNECT_FAILED',
  'CK_TRANSPORT_DISCONNECTED',
  'CK_TRANSPORT_RADIO_UNAVAILABLE',
  'CK_TRANSPORT_NO_ADAPTER',
  'CK_FRAME_TIMEOUT',
  'CK_PROTO_NO_ANSWER',
]);

/**
 * `revoke --label TEXT`: the one grant issued from this phone with exactly that label that is still
 * in force as far as this phone knows (not revoked, not expired). None or several: refused, listing them.
 */
function serialByLabel(ctx: Context, record: VehicleRecord, text: string): string {
  const label = labelArgument(text);
  const newest = latestKnownKeyList(record);
  const now = ctx.clock();
  const named = record.issued.filter((issued) => issued.label === label);
  const live = named.filter((issued) => !isRevoked(newest, issued.grant) && now < issued.grant.notAfter);
  const [only, ...more] = live;
  if (only !== undefined && more.length === 0) return toHex(only.grant.serial);
  const list = (issued: typeof named): string => issued.map((entry) => `${toHex(entry.grant.serial)} (${entry.grant.role} to ${keyIdOf(ctx.crypto, entry.grant.subject)})`).join(', ');
  if (only !== undefined) throw new CarkeyError('CK_USAGE', `--label ${quoteLabel(label)} names ${live.length} grants in force: ${list(live)}; revoke one by its serial`);
  if (named.length > 0) throw new CarkeyError('CK_PHONE_NO_SUCH_GRANT', `the grants labelled ${quoteLabel(label)} are already revoked or expired: ${list(named)}`);
  throw new CarkeyError('CK_PHONE_NO_SUCH_GRANT', `none on ${record.name} is labelled ${quoteLabel(label)} (labels match exactly)`);
}

async function revokeCommand(ctx: Context, givenTarget: string | undefined, options: { vehicle?: string; offline?: boolean; label?: string }): Promise<void> {
  if ((givenTarget === undefined) === (options.label === undefined)) throw new CarkeyError('CK_USAGE', 'give a grant serial or public key, or --label TEXT (one of them)');
  const targetText = options.label === undefined ? (givenTarget ?? '') : serialByLabel(ctx, ctx.store.selectVehicle(options.vehicle), options.label);
  const parsed = parseRevocationTarget(targetText);
  if (!parsed.ok) throw parsed.error;
  const target = parsed.value;
  const record = ctx.store.selectVehicle(options.vehicle);
  requireOwner(record, 'only an owner can revoke keys');
  if (target.kind === 'serial' && !record.issued.some((issued) => toHex(issued.grant.serial) === toHex(target.serial))) {
    ctx.output.warn(`grant ${toHex(target.serial)} was not issued from this phone; revoking it anyway`);
  }
  const seed = await ctx.unlockSeed();
  try {
    const created: { list?: KeyList } = {};
    const updated = await ctx.store.updateVehicle(record.vehicleId, (current) => {
      const base = current ?? record;
      const latest = latestKnownKeyList(base);
      if (latest === undefined) throw new CarkeyError('CK_PHONE_NOT_OWNER', `no key list known for ${base.name}; pair again`);
      const list = buildRevocation(ctx.crypto, seed, latest, target, ctx.clock());
      created.list = list;
      return { ...base, pending: [...base.pending.filter((pending) => !isCoveredBy(pending, list)), list] };
    });
    const list = created.list;
    if (list === undefined) throw new CarkeyError('CK_INTERNAL', 'no key list was built');
    const what = target.kind === 'serial' ? `grant ${toHex(target.serial)}` : `key ${keyIdOf(ctx.crypto, target.key)}`;
    const summary = { vehicle: updated.name, revoked: target.kind === 'serial' ? { serial: toHex(target.serial) } : { publicKey: toHex(target.key) }, version: list.version };
    if (options.offline === true) {
      ctx.output.result({ ...summary, delivered: false, queued: true }, `revoked ${what} in key list version ${list.version}; queued: it goes to the car at the next connection (any command)`);
      return;
    }
    let delivery: DeliveryReport;
    try {
      delivery = await ctx.client().withConnection(updated, seed, (_connection, report) => Promise.resolve(report));
    } catch (error) {
      if (error instanceof CarkeyError && UNREACHABLE.has(error.code)) {
        ctx.output.warn(`${error.message}: the revocation ${error.code === 'CK_PROTO_NO_ANSWER' ? 'may' : 'is'} NOT in force yet`);
        ctx.output.result(
          { ...summary, delivered: false, queued: true, reason: error.code },
          `revoked ${what} in key list version ${list.version}; the car is not reachable, so it is queued and goes out at the next connection (any command, e.g. \`carkey status\`)`,
        );
        return;
      }
      throw error;
    }
    if (delivery.failure !== undefined) throw new CarkeyError('CK_PHONE_DELIVERY_FAILED', delivery.failure);
    const inForce = delivery.delivered ?? 0;
    if (inForce < list.version) throw new CarkeyError('CK_PHONE_DELIVERY_FAILED', `the car reports key list version ${inForce}`);
    ctx.output.result({ ...summary, delivered: true, queued: false, inForce }, `revoked ${what}: key list version ${inForce} is in force on ${updated.name}`);
  } finally {
    seed.fill(0);
  }
}

interface LabelOptions {
  readonly vehicle?: string;
  readonly clear?: boolean;
  readonly all?: boolean;
}

/**
 * `label SERIAL|KEYID|PUBKEY TEXT` / `--clear`: set, change or remove the label of grants this phone
 * issued. A serial names one grant; a key id or public key names every grant issued to that key, and
 * when that is more than one, --all is needed. Labels never leave this phone (share --send-label aside).
 */
async function labelCommand(ctx: Context, target: string, text: string | undefined, options: LabelOptions): Promise<void> {
  if ((text === undefined) === (options.clear !== true)) throw new CarkeyError('CK_USAGE', 'give the label TEXT, or --clear to remove it (one of them)');
  const label = text === undefined ? undefined : labelArgument(text);
  const wanted = target.trim().toLowerCase();
  if (!/^([0-9a-f]{16}|[0-9a-f]{64})$/.test(wanted)) throw new CarkeyError('CK_USAGE', `"${target}" is not a grant serial or key id (16 hex digits) or a public key (64 hex digits); see \`carkey keys\``);
  const records = options.vehicle === undefined ? ctx.store.listVehicles() : [ctx.store.selectVehicle(options.vehicle)];
  const matching = records
    .map((record) => ({
      record,
      issued: record.issued.filter((issued) => toHex(issued.grant.serial) === wanted || toHex(issued.grant.subject) === wanted || keyIdOf(ctx.crypto, issued.grant.subject) === wanted),
    }))
    .filter((match) => match.issued.length > 0);
  const [found, ...elsewhere] = matching;
  if (found === undefined) {
    const held = records.some((record) => record.grants.some((grant) => toHex(grant.serial) === wanted));
    throw new CarkeyError('CK_PHONE_NO_SUCH_GRANT', held ? `grant ${wanted} was shared with this phone; labels are notes of the phone that issued a grant` : `nothing issued from this phone has serial, key id or public key ${wanted}`);
  }
  if (elsewhere.length > 0) throw new CarkeyError('CK_USAGE', `${wanted} matches grants on ${matching.map((match) => `"${match.record.name}"`).join(' and ')}: add --vehicle NAME`);
  const bySerial = found.issued.some((issued) => toHex(issued.grant.serial) === wanted);
  const chosen = bySerial ? found.issued.filter((issued) => toHex(issued.grant.serial) === wanted) : found.issued;
  if (chosen.length > 1 && options.all !== true) {
    throw new CarkeyError('CK_USAGE', `key ${wanted} holds ${chosen.length} grants from this phone (${chosen.map((issued) => toHex(issued.grant.serial)).join(', ')}): give one serial, or add --all to label every one`);
  }
  const serials = new Set(chosen.map((issued) => toHex(issued.grant.serial)));
  const updated = await ctx.store.updateVehicle(found.record.vehicleId, (current) => {
    const base = current ?? found.record;
    return { ...base, issued: base.issued.map((issued) => (serials.has(toHex(issued.grant.serial)) ? { grant: issued.grant, issuedAt: issued.issuedAt, ...(label === undefined ? {} : { label }) } : issued)) };
  });
  const grants = updated.issued.filter((issued) => serials.has(toHex(issued.grant.serial))).map((issued) => ({ serial: toHex(issued.grant.serial), role: issued.grant.role, subjectKeyId: keyIdOf(ctx.crypto, issued.grant.subject), label: issued.label ?? null }));
  ctx.output.result(
    { vehicle: updated.name, label: label ?? null, grants },
    grants.map((grant) => (label === undefined ? `grant ${grant.serial} (${grant.role} to ${grant.subjectKeyId}) on ${updated.name}: label removed` : `grant ${grant.serial} (${grant.role} to ${grant.subjectKeyId}) on ${updated.name}: label ${quoteLabel(label)}`)),
  );
}

interface AuditOptions {
  readonly vehicle?: string;
  readonly verify?: boolean;
  readonly from?: number;
  readonly limit?: number;
  readonly tail?: number;
  readonly fromCloud?: boolean;
}

/**
 * Which of the entries read are shown: --tail N the newest N, newest first; --limit N the first N
 * (with --verify too: the whole chain is read and verified, N entries are printed).
 */
function auditSelection(options: AuditOptions): (entries: readonly AuditEntry[]) => readonly AuditEntry[] {
  const { tail, limit } = options;
  if (tail !== undefined) return (entries) => entries.slice(-tail).reverse();
  return (entries) => (limit === undefined ? entries : entries.slice(0, limit));
}

async function auditCommand(ctx: Context, options: AuditOptions): Promise<void> {
  if (options.verify === true && options.from !== undefined && options.from !== 1) {
    throw new CarkeyError('CK_USAGE', '--verify checks the chain from its first entry; leave out --from');
  }
  if (options.tail !== undefined && (options.from !== undefined || options.limit !== undefined)) {
    throw new CarkeyError('CK_USAGE', '--tail N shows the newest N entries; it does not go with --from or --limit');
  }
  // What is read: everything for --verify (and --tail from the cloud); the newest N for --tail over BLE; else --limit.
  const limit = options.verify === true || options.tail !== undefined ? Number.MAX_SAFE_INTEGER : (options.limit ?? Number.MAX_SAFE_INTEGER);
  const show = auditSelection(options);
  const order = options.tail === undefined ? {} : { order: 'newest-first' };
  if (options.fromCloud === true) {
    const record = ctx.store.selectVehicle(options.vehicle);
    requireOwner(record, 'reading the audit log needs an owner key');
    await withCloud(ctx, async (deps, _seed, choice) => {
      const collector = await cloud().readCloudAudit(deps, record, options.from ?? 1, limit);
      reportAudit(ctx, record, collector, show, options.verify === true, { source: 'cloud', cloud: choice.url, ...order });
    });
    return;
  }
  await withVehicle(
    ctx,
    options.vehicle,
    async (connection, delivery, record) => {
      let from = options.from ?? 1;
      let wanted = limit;
      if (options.tail !== undefined && options.verify !== true) {
        // Ask for one entry to learn the car's last seq, then read only the newest N.
        const probe = expectOk(await connection.auditRead(1, 1), 'auditRead');
        from = Math.max(1, probe.last - options.tail + 1);
        wanted = options.tail;
      }
      const collector = new AuditCollector(from);
      for (let page = 0; page < MAX_AUDIT_PAGES && collector.all.length < wanted; page++) {
        ctx.output.progress(`reading audit entries from ${collector.nextSeq}…`);
        const read = expectOk(await connection.auditRead(collector.nextSeq, Math.min(MAX_AUDIT_PAGE, wanted - collector.all.length)), 'auditRead');
        if (!collector.add(read)) break;
      }
      reportAudit(ctx, record, collector, show, options.verify === true, { delivery: deliveryView(delivery), ...order });
    },
    (record) => requireOwner(record, 'reading the audit log needs an owner key'),
  );
}

/** Print (and with `verify`, check against the pinned car key) what was read, over BLE or from the cloud. */
function reportAudit(ctx: Context, record: VehicleRecord, collector: AuditCollector, show: (entries: readonly AuditEntry[]) => readonly AuditEntry[], verify: boolean, extra: Record<string, unknown>): void {
  const entries = show(collector.all);
  // Labels are this phone's own notes, resolved here from the grant serial / key id the car recorded; the car never saw them.
  const labelOf = auditLabeler(ctx.crypto, record);
  const labelled = entries.map((entry) => ({ entry, label: labelOf(entry.fields)?.label }));
  const lines = labelled.map(
    ({ entry, label }) => `#${entry.seq} ${isoTime(entry.time)} ${entry.kind} ${Object.entries(entry.fields).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(' ')}${auditLabelSuffix(label)}`,
  );
  const view = {
    vehicle: record.name,
    last: collector.last,
    entries: labelled.map(({ entry, label }) => ({ seq: entry.seq, time: isoTime(entry.time), kind: entry.kind, fields: entry.fields, label: label ?? null })),
    ...extra,
  };
  if (!verify) {
    ctx.output.result({ ...view, verified: null }, lines.length === 0 ? ['no audit entries'] : lines);
    return;
  }
  const verdict = collector.verify(ctx.crypto, record.carIdentityKey);
  if (!verdict.ok) {
    ctx.output.text(lines.join('\n'));
    throw verdict.error;
  }
  const v = verdict.value;
  ctx.output.result(
    { ...view, verified: { entries: v.entries, checkpoints: v.checkpoints, lastCheckpointSeq: v.lastCheckpointSeq, uncovered: v.uncovered, firstSeq: v.firstSeq, anchorSeq: v.anchorSeq } },
    [
      ...lines,
      `audit chain verified against the car key: ${v.entries} entries, ${v.checkpoints} signed checkpoints` +
        (v.anchorSeq > 0 ? `; entries 1..${v.anchorSeq} were pruned by the car, the rest verified from its signed checkpoint at seq ${v.anchorSeq}` : '') +
        (v.uncovered > 0 ? `; the newest ${v.uncovered} entries are not covered by a checkpoint yet (their deletion would not be detectable)` : ''),
    ],
  );
}

// --- the cloud path (optional; src/phone/cloud/) -------------------------------

function cloudUseCommand(ctx: Context, url: string | undefined, options: { clear?: boolean }): void {
  const home = ctx.store.paths.home;
  if (options.clear === true) {
    if (url !== undefined) throw new CarkeyError('CK_USAGE', 'give a URL or --clear, not both');
    cloud().clearStoredCloud(home);
    ctx.output.result({ cloud: null, path: cloud().cloudConfigPath(home) }, `no default cloud stored in ${home} any more`);
    return;
  }
  if (url === undefined) throw new CarkeyError('CK_USAGE', 'give the cloud URL (e.g. https://cloud.example.net), or --clear');
  const stored = cloud().storeCloud(home, url);
  ctx.output.result({ cloud: stored, path: cloud().cloudConfigPath(home) }, `default cloud: ${stored} (stored in ${cloud().cloudConfigPath(home)})`);
}

async function cloudStatusCommand(ctx: Context): Promise<void> {
  const choice = cloud().findCloud(ctx.options.cloud, ctx.io.env, ctx.store.paths.home);
  if (choice === undefined) {
    ctx.output.result({ cloud: null, source: null }, [`no cloud configured (${NO_CLOUD_HINT}); Bluetooth commands need none`]);
    return;
  }
  // /v1/time needs no key, but the client signs every request: use a throwaway key, no passphrase needed.
  const seed = ctx.random(32);
  try {
    const client = ctx.cloudDeps(choice, seed).client;
    const before = ctx.clock();
    const cloudTime = await client.time();
    const after = ctx.clock();
    const skewMs = cloudTime - Math.round((before + after) / 2);
    const lines = [`cloud: ${choice.url} (from ${choice.source === 'flag' ? '--cloud' : choice.source === 'env' ? 'CARKEY_CLOUD' : cloud().cloudConfigPath(ctx.store.paths.home)})`, `reachable: yes (${after - before} ms)`, `clock difference: ${skewMs} ms (this computer is ${skewMs > 0 ? 'behind' : 'ahead of'} the cloud)`];
    if (Math.abs(skewMs) > 60_000) ctx.output.warn('this clock is more than a minute off the cloud’s; requests are refused beyond 2 minutes: fix the clock');
    ctx.output.result({ cloud: choice.url, source: choice.source, reachable: true, roundTripMs: after - before, skewMs }, lines);
  } finally {
    seed.fill(0);
  }
}

async function cloudRegisterCommand(ctx: Context, options: { vehicle?: string }): Promise<void> {
  const choice = ctx.cloudChoice();
  const record = ctx.store.selectVehicle(options.vehicle);
  requireOwner(record, 'registering a car with the cloud needs an owner key');
  const seed = await ctx.unlockSeed();
  try {
    // Over BLE: deliver anything queued, then ask the car for a signed statement of the list in force.
    const { statement, delivery, current } = await ctx.client().withConnection(record, seed, async (connection, report) => {
      const bytes = expectOk(await connection.command('vehicleStatement'), 'vehicleStatement');
      const checked = cloud().checkStatement(ctx.crypto, bytes, connection.vehicle);
      if (!checked.ok) throw checked.error;
      return { statement: checked.value, delivery: report, current: connection.vehicle };
    });
    const deps = ctx.cloudDeps(choice, seed);
    ctx.output.progress(`registering ${current.name} with ${choice.url}…`);
    const registered = await cloud().registerVehicle(deps, current, statement);
    const published = await cloud().publishPending(deps, registered.record, seed);
    ctx.output.result(
      { vehicle: current.name, cloud: choice.url, epoch: registered.epoch, version: registered.version, published: published.published ?? null, queued: published.queued, delivery: deliveryView(delivery) },
      [
        `registered ${current.name} with ${choice.url}: the cloud follows key list version ${registered.version} (signed by the car)`,
        ...(published.published === undefined ? [] : [`published the queued key list version ${published.published}`]),
      ],
    );
  } finally {
    seed.fill(0);
  }
}

function publishView(report: PublishReport): Record<string, unknown> {
  return { vehicle: report.vehicle, published: report.published ?? null, rebasedOn: report.rebasedOn ?? null, upToDate: report.upToDate, queued: report.queued };
}

function publishLine(report: PublishReport): string {
  if (report.published !== undefined) {
    return `${report.vehicle}: key list version ${report.published} is on the cloud${report.rebasedOn === undefined ? '' : ` (re-applied on the cloud's version ${report.rebasedOn})`}; the car applies it when it syncs (or at the next Bluetooth connection)`;
  }
  return `${report.vehicle}: nothing to publish${report.rebasedOn === undefined ? '' : ` (the cloud's version ${report.rebasedOn} already holds it)`}`;
}

interface InboxView {
  readonly id: string;
  readonly vehicleId: string;
  readonly sender: string;
  readonly senderKeyId: string;
  readonly postedAt: string;
  readonly expiresAt: string;
  readonly usable: boolean;
  readonly error: { code: ErrorCode; message: string } | null;
  readonly share: Record<string, unknown> | null;
}

function inboxView(ctx: Context, entry: InboxEntry): InboxView {
  const { item, bundle, error } = entry;
  const base = {
    id: item.id,
    vehicleId: toHex(item.vehicleId),
    sender: toHex(item.sender),
    senderKeyId: keyIdOf(ctx.crypto, item.sender),
    postedAt: isoTime(item.postedAt),
    expiresAt: isoTime(item.expiresAt),
  };
  if (bundle === undefined) return { ...base, usable: false, error: { code: error?.code ?? 'CK_PHONE_BAD_SHARE', message: error?.message ?? 'unusable' }, share: null };
  const held = ctx.store.vehicleById(bundle.grant.vehicleId);
  const stored = held?.grants.some((grant) => toHex(grant.serial) === toHex(bundle.grant.serial)) ?? false;
  return {
    ...base,
    usable: true,
    error: null,
    share: {
      vehicleName: bundle.vehicleName,
      localName: held?.name ?? null,
      stored,
      ...grantView(ctx.crypto, bundle.grant, held?.keyList, ctx.clock()),
      sharerLabel: bundle.sharerLabel ?? null,
    },
  };
}

function inboxLine(view: InboxView): string {
  if (view.share === null) return `${view.id}  from ${view.senderKeyId}  unusable: ${view.error?.message ?? ''}`;
  const share = view.share;
  const permissions = Array.isArray(share.permissions) ? share.permissions.join(', ') : '';
  const label = typeof share.sharerLabel === 'string' ? ` (label from the sharer: ${quoteLabel(share.sharerLabel)})` : '';
  return `${view.id}  from ${view.senderKeyId}  ${String(share.vehicleName)}: ${String(share.role)} (${permissions}) ${String(share.notBefore)} → ${String(share.notAfter)} [${String(share.state)}${share.stored === true ? ', already stored' : ''}]${label}`;
}

async function inboxCommand(ctx: Context): Promise<void> {
  await withCloud(ctx, async (deps, seed, choice) => {
    const views = (await cloud().readInbox(deps, seed)).map((entry) => inboxView(ctx, entry));
    ctx.output.result(
      { cloud: choice.url, items: views },
      views.length === 0 ? ['the cloud mailbox is empty'] : [...views.map(inboxLine), 'store one with `carkey accept --from-cloud ID` (or --all)'],
    );
  });
}

async function acceptFromCloud(ctx: Context, id: string | undefined, options: AcceptOptions): Promise<void> {
  if (id !== undefined && options.all === true) throw new CarkeyError('CK_USAGE', 'give a mailbox item ID or --all, not both');
  if (id !== undefined && !/^[0-9a-f]{32}$/.test(id)) throw new CarkeyError('CK_USAGE', `"${id}" is not a mailbox item id (32 hex digits, from \`carkey inbox\`)`);
  const localName = options.name === undefined ? undefined : checkName(options.name, '--name');
  await withCloud(ctx, async (deps, seed) => {
    const entries = await cloud().readInbox(deps, seed);
    let chosen: InboxEntry[];
    if (id !== undefined) {
      const found = entries.find((entry) => entry.item.id === id);
      if (found === undefined) throw new CarkeyError('CK_PHONE_BAD_SHARE', `no mailbox item ${id} for this phone (expired or already accepted?); list them with \`carkey inbox\``);
      if (found.error !== undefined) throw found.error;
      chosen = [found];
    } else {
      const usable = entries.filter((entry) => entry.bundle !== undefined);
      if (options.all === true) chosen = usable;
      else if (usable.length <= 1) chosen = usable;
      else throw new CarkeyError('CK_USAGE', `${usable.length} keys are waiting in the mailbox: give an ID (see \`carkey inbox\`) or --all`);
      for (const entry of entries) if (entry.error !== undefined) ctx.output.warn(`skipping mailbox item ${entry.item.id}: ${entry.error.message}`);
    }
    if (chosen.length === 0) throw new CarkeyError('CK_PHONE_BAD_SHARE', entries.length === 0 ? 'the cloud mailbox is empty' : 'no usable key in the cloud mailbox (see `carkey inbox`)');
    if (localName !== undefined && chosen.length > 1) throw new CarkeyError('CK_USAGE', '--name goes with one item; give its ID');
    const accepted: Record<string, unknown>[] = [];
    const lines: string[] = [];
    for (const entry of chosen) {
      if (entry.bundle === undefined) continue;
      const stored = await storeShare(ctx, entry.bundle, localName);
      let acknowledged = true;
      try {
        await cloud().acknowledge(deps, entry.item.id);
      } catch (thrown) {
        acknowledged = false;
        ctx.output.warn(`stored, but mailbox item ${entry.item.id} was not acknowledged (${toCarkeyError(thrown).message}); it expires on its own`);
      }
      accepted.push({ ...stored.view, mailboxId: entry.item.id, acknowledged });
      lines.push(stored.line);
    }
    ctx.output.result({ accepted }, lines);
  });
}

async function syncCommand(ctx: Context, options: { vehicle?: string }): Promise<void> {
  const choice = ctx.cloudChoice();
  const records = options.vehicle === undefined ? ctx.store.listVehicles() : [ctx.store.selectVehicle(options.vehicle)];
  const toPublish = records.filter((record) => record.owner && record.pending.length > 0);
  await withCloud(ctx, async (deps, seed) => {
    const reports: PublishReport[] = [];
    const failures: { vehicle: string; error: CarkeyError }[] = [];
    for (const record of toPublish) {
      try {
        reports.push(await cloud().publishPending(deps, record, seed));
      } catch (thrown) {
        const error = toCarkeyError(thrown);
        if (isCloudTransient(error)) throw error;
        ctx.output.warn(`${record.name}: ${error.message}`);
        failures.push({ vehicle: record.name, error });
      }
    }
    const inbox = (await cloud().readInbox(deps, seed)).map((entry) => inboxView(ctx, entry));
    const first = failures[0];
    if (first !== undefined) {
      throw new CarkeyError(first.error.code, `${first.vehicle}: ${first.error.message} (the key list stays queued)`, { ...first.error.details, vehicle: first.vehicle });
    }
    const waiting = inbox.filter((view) => view.usable && view.share?.stored !== true).length;
    ctx.output.result({ cloud: choice.url, vehicles: reports.map(publishView), inbox }, [
      ...(reports.length === 0 ? ['no queued key lists to publish'] : reports.map(publishLine)),
      inbox.length === 0 ? 'the cloud mailbox is empty' : `${inbox.length} item(s) in the cloud mailbox, ${waiting} not stored yet${waiting > 0 ? ' (`carkey inbox`, then `carkey accept --from-cloud`)' : ''}`,
    ]);
  });
}

interface RemoteOptions {
  readonly vehicle?: string;
  readonly pin?: string;
  readonly wait?: number;
  readonly expires?: number;
}

async function remoteCommand(ctx: Context, command: RemoteCommandName, options: RemoteOptions): Promise<void> {
  if (options.pin !== undefined && command !== 'start') throw new CarkeyError('CK_USAGE', '--pin goes with `remote start`');
  if (options.pin !== undefined && !PIN_PATTERN.test(options.pin)) throw new CarkeyError('CK_USAGE', '--pin must be 4 to 8 digits');
  const choice = ctx.cloudChoice();
  const record = ctx.store.selectVehicle(options.vehicle);
  holdsKeyFor(ctx, command)(record);
  const expiresInMs = (options.expires ?? DEFAULT_REMOTE_EXPIRY_MS / 1000) * 1000;
  const waitMs = (options.wait ?? expiresInMs / 1000) * 1000;
  const seed = await ctx.unlockSeed();
  try {
    const answer = await sendRemoteCommand(ctx.cloudDeps(choice, seed), seed, {
      record,
      command,
      args: command === 'start' && options.pin !== undefined ? encodePin(options.pin) : new Uint8Array(0),
      expiresInMs,
      waitMs,
    });
    const payload = expectOk(answer.outcome, command);
    const base = { vehicle: record.name, command, via: 'cloud', commandId: answer.commandId, carTime: isoTime(answer.carTime) };
    if (command === 'status') {
      const decoded = decodeStatus(payload);
      if (!decoded.ok) throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', `the car's status does not decode: ${decoded.error.message}`);
      ctx.output.result({ ...base, status: statusView(decoded.value) }, [`${record.name} (through the cloud, as of ${base.carTime}):`, ...describeStatus(decoded.value).map((line) => `  ${line}`)]);
      return;
    }
    const done = { unlock: 'unlocked', lock: 'locked', start: 'started', trunk: 'opened the trunk of' } as const;
    ctx.output.result(base, `${done[command]} ${record.name} through the cloud (the car answered at ${base.carTime})`);
  } finally {
    seed.fill(0);
  }
}

// --- the command table -----------------------------------------------------------

export function buildProgram(io: CliIo, setOutput: (output: Output) => void): Command {
  const program = configureCommander(new Command(PROGRAM), io)
    .description('carkey: your phone (or this computer) as a car key, over Bluetooth LE; the car decides locally, no cloud needed')
    .version(carkeyVersion(), '-V, --version')
    .option('--home <dir>', 'key store directory (env CARKEY_HOME, default ~/.config/carkey)')
    .addOption(new Option('--transport <kind>', 'radio: ble (a Bluetooth adapter) or sim (the simulated radio) (env CARKEY_TRANSPORT, default ble)').choices(TRANSPORT_KINDS))
    .option('--radio <path>', `simulated radio socket (env CARKEY_RADIO, default ${DEFAULT_RADIO_SOCKET})`)
    .option('--adapter <hciN>', `Bluetooth adapter (env CARKEY_ADAPTER, default ${DEFAULT_ADAPTER})`)
    .option('--hci-socket <path>', 'use an emulated controller (btvirt socket) instead of the kernel adapter (env CARKEY_HCI_SOCKET)')
    .option('--timeout <ms>', `deadline for the whole command: scanning, connecting, retries and answers (default: none; the scan command: scan time, ${DEFAULT_SCAN_MS})`, integerOption('--timeout', 100, 600_000))
    .option('--connect-timeout <ms>', `finding and connecting to the car, per attempt (default ${DEFAULT_TIMEOUT_MS})`, integerOption('--connect-timeout', 100, 600_000))
    .option('--command-timeout <ms>', 'each answer from the car (default 5000)', integerOption('--command-timeout', 100, 600_000))
    .option('--passphrase-file <file>', 'read the key passphrase from the first line of FILE (else env CARKEY_PASSPHRASE, else a prompt)')
    .option('--cloud <url>', 'carkey-cloud for the cloud commands (env CARKEY_CLOUD, else `carkey cloud use URL`); Bluetooth commands never use it')
    .option('--json', 'print one JSON object on stdout (for scripts)')
    .option('--quiet', 'no progress messages on stderr')
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 2 bad input, 3 denied, 4 not found / out of range, 5 timeout, 6 unavailable, 7 local state problem.\nExample:\n  $ carkey keygen && carkey --transport sim pair --yes && carkey --transport sim unlock\n',
    );

  const context = (command: Command): Context => {
    const ctx = new Context(io, globalOptions(command));
    setOutput(ctx.output);
    return ctx;
  };
  const vehicleOption = ['--vehicle <name>', 'which vehicle (needed when several are stored)'] as const;

  program
    .command('keygen')
    .description("create this phone's key (Ed25519); never overwrites an existing one")
    .option('--encrypt', 'protect the key with a passphrase (scrypt + secretbox)')
    .addHelpText('after', example('$ carkey keygen --encrypt --passphrase-file ~/.carkey-pass'))
    .action(async (options: { encrypt?: boolean }, command: Command) => keygenCommand(context(command), options));

  program
    .command('whoami')
    .description("show this phone's public key and key id (send the public key to an owner to get a key)")
    .addHelpText('after', example('$ carkey whoami --json > my-key.json'))
    .action((_options: unknown, command: Command) => whoamiCommand(context(command)));

  program
    .command('scan')
    .description('list carkey cars in range (yours are named)')
    .addHelpText('after', example('$ carkey scan --timeout 3000'))
    .action(async (_options: unknown, command: Command) => scanCommand(context(command)));

  program
    .command('pair')
    .description('pair as an owner with a car in pairing mode (press its pairing button or tap the keycard first)')
    .option('--name <name>', 'local name for the vehicle (default: the name the car reports)')
    .option('--phone-name <name>', 'the name the car shows for this phone (default: host name)')
    .option('--yes', 'accept the 6-digit code without asking (scripts, tests)')
    .option('--code <digits>', 'the 6-digit code shown on the car; pairing stops if it differs')
    .option('--wait <ms>', 'how long to wait for the confirmation on the car (default 120000)', integerOption('--wait', 1000, 600_000))
    .addHelpText('after', example('$ carkey pair --name "blue van"'))
    .action(async (options: PairOptions, command: Command) => pairCommand(context(command), options));

  for (const [name, summary, sample] of [
    ['unlock', 'unlock the car', '$ carkey unlock --vehicle "blue van"'],
    ['lock', 'lock the car', '$ carkey lock'],
    ['trunk', 'open the trunk', '$ carkey trunk --json'],
    ['honk', 'sound the horn once (find the car; needs the honk permission)', '$ carkey honk'],
    ['flash', 'flash the lights once (find the car; needs the flash permission)', '$ carkey flash'],
  ] as const) {
    const sub = program.command(name).description(summary).option(...vehicleOption);
    if (name === 'unlock') {
      sub.option('--walk-up', 'walk-up (passive) unlock: the car opens only while this phone is close (RSSI above its threshold); needs the passive permission');
    }
    sub
      .addHelpText('after', example(sample))
      .action(async (options: { vehicle?: string; walkUp?: boolean }, command: Command) =>
        simpleCommand(context(command), name === 'unlock' && options.walkUp === true ? 'passiveUnlock' : name, options.vehicle),
      );
  }

  program
    .command('start')
    .description('start the car (ready to drive); the car may ask for its PIN')
    .option(...vehicleOption)
    .option('--pin <pin>', 'the car PIN (4 to 8 digits); asked in a terminal if the car wants it')
    .addHelpText('after', example('$ carkey start --pin 4711'))
    .action(async (options: { vehicle?: string; pin?: string }, command: Command) => startCommand(context(command), options));

  program
    .command('status')
    .description('doors, drive, trunk and the key list version in force on the car')
    .option(...vehicleOption)
    .addHelpText('after', example('$ carkey status --json'))
    .action(async (options: { vehicle?: string }, command: Command) => statusCommand(context(command), options));

  program
    .command('share')
    .description('owner: issue a key (grant) to a friend, offline; prints a share string and a QR code')
    .option(...vehicleOption)
    .addOption(new Option('--role <role>', 'driver, guest (at most 30 days) or monitor (status only)').choices(['driver', 'guest', 'monitor']).makeOptionMandatory())
    .option('--from <time>', 'valid from: ISO time, date, "now" or +N[m|h|d|w] (default now)')
    .requiredOption('--until <time>', 'valid until: ISO time, date, or +N[m|h|d|w]')
    .requiredOption('--to <key|file>', "the friend's public key (64 hex digits) or a file holding it (`carkey whoami --json` output)")
    .option('--permissions <list>', 'comma-separated subset of the role: unlock,lock,start,trunk,status,passive,honk,flash')
    .option('--out <file>', 'also write the share string to FILE')
    .option('--via-cloud', "also post it to the friend's cloud mailbox, sealed to their key (they run `carkey accept --from-cloud`)")
    .option('--label <text>', 'your note on this grant ("Sam, weekend"; 1-64 characters): kept on this phone, shown by `keys` and `audit`')
    .option('--send-label', 'also send the label with the share (not signed; the friend sees it as the label from the sharer)')
    .addHelpText('after', example('$ carkey share --role guest --until +2d --to 3b6a27bc…e1 --label "Sam, weekend" --out sam.carkey'))
    .action(async (options: ShareOptions, command: Command) => shareCommand(context(command), options));

  program
    .command('accept')
    .description('store a key an owner shared with you (a carkey1:... string or a share file, or from the cloud mailbox)')
    .argument('[share]', 'the carkey1:... string or a file holding it; with --from-cloud: the mailbox item id (from `carkey inbox`)')
    .option('--name <name>', 'local name for the vehicle (default: the name in the share)')
    .option('--from-cloud', 'take it from the cloud mailbox (the only usable item, the ID given, or --all), then acknowledge it there')
    .option('--all', 'with --from-cloud: every usable item')
    .option('--replace', 'with --name, rename a car this phone already holds (without it a different --name is refused, or asked on a terminal)')
    .addHelpText('after', `${example('$ carkey accept anna.carkey --name "Bob\'s car"')}  $ carkey accept --from-cloud 5d41402abc4b2a76b9719d911017c592\n`)
    .action(async (share: string | undefined, options: AcceptOptions, command: Command) => acceptCommand(context(command), share, options));

  program
    .command('keys')
    .description('owners, grants issued and held, revocations and queued key lists, as this phone knows them')
    .option(...vehicleOption)
    .option('--fetch', "owner: connect and read the car's current key list first")
    .addHelpText('after', example('$ carkey keys --fetch --vehicle "blue van"'))
    .action(async (options: { vehicle?: string; fetch?: boolean }, command: Command) => keysCommand(context(command), options));

  program
    .command('revoke')
    .description('owner: revoke a grant (serial) or a key (public key) with a new signed key list; delivered now if the car is in range, else queued')
    .argument('[serial|pubkey]', 'grant serial (16 hex digits, see `carkey keys`) or public key (64 hex digits); or use --label')
    .option(...vehicleOption)
    .option('--offline', 'only queue it; it goes out at the next connection')
    .option('--label <text>', 'the one grant in force with exactly this label (refused when none or several match)')
    .addHelpText('after', `${example('$ carkey revoke 5f0c2a9e81d3b7c4')}  $ carkey revoke --label "Sam, weekend"\n`)
    .action(async (target: string | undefined, options: { vehicle?: string; offline?: boolean; label?: string }, command: Command) => revokeCommand(context(command), target, options));

  program
    .command('label')
    .description('set, change or remove your label on grants this phone issued (kept on this phone; shown by `keys` and `audit`)')
    .argument('<serial|keyid|pubkey>', 'a grant serial or the key id (16 hex digits, see `carkey keys`) or public key (64 hex digits) it was issued to')
    .argument('[text]', 'the label: 1 to 64 characters, quoted as one argument')
    .option(...vehicleOption)
    .option('--clear', 'remove the label')
    .option('--all', 'a key id or public key with several grants: label every one of them')
    .addHelpText('after', `${example('$ carkey label 5f0c2a9e81d3b7c4 "Sam, weekend"')}  $ carkey label 9f1c2e7a55d0b3e4 --clear --all\n`)
    .action(async (target: string, text: string | undefined, options: LabelOptions, command: Command) => labelCommand(context(command), target, text, options));

  program
    .command('audit')
    .description("owner: read the car's audit log; --verify checks its hash chain and signed checkpoints against the pinned car key")
    .option(...vehicleOption)
    .option('--verify', 'verify the whole chain (reads from the first entry)')
    .option('--from <seq>', 'first entry to read (default 1)', integerOption('--from', 1, Number.MAX_SAFE_INTEGER))
    .option('--limit <n>', 'show at most N entries (the first N; with --verify the whole chain is still read and verified)', integerOption('--limit', 1, Number.MAX_SAFE_INTEGER))
    .option('--tail <n>', 'show the newest N entries, newest first', integerOption('--tail', 1, Number.MAX_SAFE_INTEGER))
    .option('--from-cloud', "read the copy the car uploaded to the cloud instead of the car itself (same verification, against the pinned car key)")
    .addHelpText('after', `${example('$ carkey audit --verify')}  $ carkey audit --from-cloud --verify\n`)
    .action(async (options: AuditOptions, command: Command) => auditCommand(context(command), options));

  program
    .command('web')
    .description('serve the carkey web app (the phone key in a browser) on localhost; with --radio SOCKET also a bridge to the simulated radio')
    .option('--port <n>', 'port (default 8080; 0 picks a free one)', integerOption('--port', 0, 65535))
    .option('--host <address>', 'address to listen on (default 127.0.0.1: browsers treat localhost as a secure context)')
    .addHelpText('after', example('$ carkey web --port 8080'))
    .action(async (options: WebCommandOptions, command: Command) => (await import('../web/server/command.js')).webCommand(context(command).output, options, globalOptions(command).radio));

  const cloud = program.command('cloud').description('the optional cloud relay: choose it, check it, register a car with it');
  cloud
    .command('use')
    .description('store the default cloud for this key store (HOME/cloud.json); --cloud and CARKEY_CLOUD override it')
    .argument('[url]', 'the carkey-cloud base URL, http:// or https://')
    .option('--clear', 'forget the stored default')
    .addHelpText('after', example('$ carkey cloud use https://cloud.example.net'))
    .action((url: string | undefined, options: { clear?: boolean }, command: Command) => cloudUseCommand(context(command), url, options));
  cloud
    .command('status')
    .description('which cloud is configured (and from where), whether it answers, and how far this clock is from its clock')
    .addHelpText('after', example('$ carkey cloud status --json'))
    .action(async (_options: unknown, command: Command) => cloudStatusCommand(context(command)));
  cloud
    .command('register')
    .description("owner, near the car: fetch the car-signed vehicle statement over Bluetooth, check it against the pinned car key, and register the car with the cloud; then publish queued key lists")
    .option(...vehicleOption)
    .addHelpText('after', example('$ carkey --cloud https://cloud.example.net cloud register --vehicle van'))
    .action(async (options: { vehicle?: string }, command: Command) => cloudRegisterCommand(context(command), options));

  program
    .command('sync')
    .description('through the cloud: publish queued key lists (revocations; rebased when the cloud holds a newer list) and read the mailbox')
    .option(...vehicleOption)
    .addHelpText('after', example('$ carkey sync --json'))
    .action(async (options: { vehicle?: string }, command: Command) => syncCommand(context(command), options));

  program
    .command('inbox')
    .description('keys shared with you through the cloud mailbox, opened and checked (accept them with `carkey accept --from-cloud`)')
    .addHelpText('after', example('$ carkey inbox --json'))
    .action(async (_options: unknown, command: Command) => inboxCommand(context(command)));

  program
    .command('remote')
    .description('send a command to the car through the cloud, signed by this phone and sealed to the car; waits for the car-signed answer')
    .addArgument(new Argument('<command>', 'what the car should do').choices(REMOTE_COMMAND_NAMES))
    .option(...vehicleOption)
    .option('--pin <pin>', 'the car PIN, for `remote start` when the car asks for one')
    .option('--wait <s>', 'how long to wait for the answer, in seconds (default: until the command expires)', integerOption('--wait', 1, 600))
    .option('--expires <s>', `how long the car may still act on the command, in seconds (default ${DEFAULT_REMOTE_EXPIRY_MS / 1000})`, integerOption('--expires', 10, 600))
    .addHelpText('after', `${example('$ carkey remote lock --vehicle van')}  $ carkey remote status --json\nThe car decides with its own policy (remote unlock, start and trunk are off unless its owner enabled them).\n`)
    .action(async (name: RemoteCommandName, options: RemoteOptions, command: Command) => remoteCommand(context(command), name, options));

  program.hook('preAction', async (_program, action) => {
    const bluetoothOnly = action.parent === program && BLUETOOTH_ONLY.has(action.name()); // not `cloud status`
    if (!bluetoothOnly) cloudPath ??= await import('./carkey-cloud-path.js');
  });
  configureSubcommands(program, io);
  return program;
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let output = new Output(io, argv.includes('--json'), argv.includes('--quiet'));
  const program = buildProgram(io, (chosen) => {
    output = chosen;
  });
  return runProgram({ name: PROGRAM, io, argv, program, hints: CARKEY_HINTS, output: () => output });
}

function flush(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

// A reader that went away (`carkey keys | head`) is not a failure of ours: stop quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(ExitCode.ok);
  });
}

const exitCode = await main(process.argv.slice(2), processIo());
await flush(process.stdout);
trace?.('exit');
await flush(process.stderr);
// noble keeps timers alive after a BLE session; exit explicitly.
process.exit(exitCode);
