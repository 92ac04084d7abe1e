/**
 * The web app's optional cloud (carkey-cloud, docs/cloud.md), on the same
 * phone-side code as the CLI (src/phone/cloud/*) and the one signed HTTP
 * client (src/cloud-client/client.ts):
 * - the cloud URL, chosen in the app's settings (localStorage
 *   `carkey.cloud.url`; not secret: requests are authenticated by signatures);
 * - inbox: keys shared at a distance, opened and checked (`readInbox`), then
 *   stored through the very same `accept` as a pasted link, then acknowledged;
 * - remote commands (`sendRemoteCommand`): phone-signed, sealed to the
 *   pinned car, answered by a car-signed result;
 * - the audit log from the cloud (`readCloudAudit`), verified like the one
 *   read over Bluetooth;
 * - registering a car: its signed statement fetched over Bluetooth, then sent.
 *
 * Guarantees:
 * - Nothing here is on a Bluetooth action's path: BLE actions never call
 *   this module, so a cloud that is down, hangs or lies changes nothing for
 *   them. Every cloud call has the client's deadline (CK_CLOUD_TIMEOUT).
 * - The cloud is untrusted, as in the CLI: every share, result and audit page
 *   is verified by src/core against keys this phone pinned.
 * - Opening what is sealed to this phone (inbox items, remote results) needs
 *   its Ed25519 seed (the X25519 secret is derived from it). A device-bound
 *   WebCrypto key can sign but never reveal that, so inbox and remote
 *   commands need a passphrase key (CK_USAGE says so); the audit and
 *   registration only sign, and work with either.
 */
import { CloudClient } from '../../cloud-client/client.js';
import { equalBytes } from '../../core/bytes.js';
import type { AuditVerification, AuditEntry } from '../../core/audit.js';
import type { Grant } from '../../core/credentials.js';
import type { Clock, RandomSource } from '../../core/crypto/backend.js';
import type { Crypto } from '../../core/crypto/policy.js';
import { CarkeyError, toCarkeyError, type Result } from '../../core/errors.js';
import { encodePin } from '../../core/payloads.js';
import { readCloudAudit } from '../../phone/cloud/audit.js';
import type { PhoneCloudDeps } from '../../phone/cloud/deps.js';
import { checkStatement, registerVehicle } from '../../phone/cloud/key-lists.js';
import { acknowledge, readInbox, type InboxEntry } from '../../phone/cloud/mailbox.js';
import { DEFAULT_REMOTE_EXPIRY_MS, sendRemoteCommand, type RemoteAnswer, type RemoteCommandName } from '../../phone/cloud/remote.js';
import type { VehicleStore } from '../../phone/client.js';
import type { VehicleRecord } from '../../phone/vehicle-record.js';
import type { Signer } from '../../core/signer.js';

/** What this module needs of the app (narrow, so it also type-checks and unit-tests outside a page). */
export interface CloudKey {
  readonly signer: Signer;
  /** the seed of a passphrase key; undefined for a device-bound key */
  readonly seed: Uint8Array | undefined;
}

export interface ShareAcceptor {
  /** the web app's accept (WebPhone.accept): the same checks as a pasted link */
  accept(text: string): Promise<{ record: VehicleRecord; grant: Grant }>;
}

/** The part of the Web Storage API used for the URL. */
export interface SettingsStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export const CLOUD_URL_KEY = 'carkey.cloud.url';
/** How long the page waits for the car's answer to a remote command. */
export const REMOTE_WAIT_MS = 60_000;
const MAX_URL_LENGTH = 1024;

export const SEALED_NEEDS_SEED =
  'this needs a passphrase key: keys and results sent through the cloud are sealed to this phone, and a device-bound browser key can sign but cannot open them';

export interface WebCloudDeps {
  readonly crypto: Crypto;
  readonly random: RandomSource;
  readonly clock: Clock;
  readonly store: VehicleStore;
  readonly phone: ShareAcceptor;
  /** the unlocked key (throws when the app is locked) */
  readonly key: () => CloudKey;
  /** one line of progress for the person */
  readonly progress: (line: string) => void;
  /** where the URL is kept (default: the page's localStorage) */
  readonly settings?: SettingsStore;
  /** per-request deadline (default: the client's, 10 s) */
  readonly timeoutMs?: number;
}

export interface CloudAudit {
  readonly entries: readonly AuditEntry[];
  readonly verification: Result<AuditVerification>;
}

/** Normalise a cloud URL the way the CLI does (http/https, no credentials, query or fragment). */
export function normaliseCloudUrl(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.length > MAX_URL_LENGTH) throw new CarkeyError('CK_USAGE', 'the cloud URL must be an http:// or https:// URL');
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new CarkeyError('CK_USAGE', `${JSON.stringify(trimmed)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CarkeyError('CK_USAGE', `the cloud URL must be http:// or https://, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw new CarkeyError('CK_USAGE', 'the cloud URL must not contain a user name or password (carkey-cloud authenticates by signatures)');
  if (url.search !== '' || url.hash !== '') throw new CarkeyError('CK_USAGE', 'the cloud URL must not have a query or fragment');
  return url.origin + url.pathname.replace(/\/+$/, '');
}

export class WebCloud {
  private readonly settings: SettingsStore;

  constructor(private readonly deps: WebCloudDeps) {
    const page = (globalThis as { localStorage?: SettingsStore }).localStorage;
    const settings = deps.settings ?? page;
    if (settings === undefined) throw new CarkeyError('CK_INTERNAL', 'no settings store (localStorage) here');
    this.settings = settings;
  }

  url(): string | undefined {
    const stored = this.settings.getItem(CLOUD_URL_KEY);
    if (stored === null) return undefined;
    try {
      return normaliseCloudUrl(stored);
    } catch {
      return undefined;
    }
  }

  use(text: string): string {
    const url = normaliseCloudUrl(text);
    this.settings.setItem(CLOUD_URL_KEY, url);
    return url;
  }

  forget(): void {
    this.settings.removeItem(CLOUD_URL_KEY);
  }

  private cloudDeps(key: CloudKey): PhoneCloudDeps {
    const baseUrl = this.url();
    if (baseUrl === undefined) throw new CarkeyError('CK_USAGE', 'no cloud is set: enter its URL under Cloud first (Bluetooth needs none)', { missing: 'cloud' });
    const { crypto, random, clock } = this.deps;
    const seed = key.seed;
    const identity = seed === undefined ? { signer: key.signer } : { seed: () => seed };
    const client = new CloudClient({ baseUrl, crypto, random, clock, ...identity, ...(this.deps.timeoutMs === undefined ? {} : { timeoutMs: this.deps.timeoutMs }) });
    return { crypto, random, clock, client, store: this.deps.store, sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)), progress: this.deps.progress };
  }

  private seed(key: CloudKey): Uint8Array {
    if (key.seed === undefined) throw new CarkeyError('CK_USAGE', SEALED_NEEDS_SEED);
    return key.seed;
  }

  /** The cloud's time and this phone's clock difference (a signed request: shows the cloud answers this key). */
  async check(): Promise<{ url: string; roundTripMs: number; skewMs: number }> {
    const deps = this.cloudDeps(this.deps.key());
    const before = this.deps.clock();
    const time = await deps.client.time();
    const after = this.deps.clock();
    return { url: deps.client.baseUrl, roundTripMs: after - before, skewMs: time - Math.round((before + after) / 2) };
  }

  /** Every unexpired mailbox item for this phone, opened and checked (bad ones listed with their error). */
  async inbox(): Promise<InboxEntry[]> {
    const key = this.deps.key();
    const seed = this.seed(key);
    const deps = this.cloudDeps(key);
    this.deps.progress('reading the cloud mailbox…');
    return readInbox(deps, seed);
  }

  /** Store an inbox item through the same checks as a pasted link, then acknowledge it (best effort). */
  async accept(entry: InboxEntry): Promise<{ record: VehicleRecord; grant: Grant; acknowledged: string | undefined }> {
    if (entry.share === undefined) throw entry.error ?? new CarkeyError('CK_PHONE_BAD_SHARE', 'this mailbox item cannot be used');
    const deps = this.cloudDeps(this.deps.key());
    const { record, grant } = await this.deps.phone.accept(entry.share);
    try {
      await acknowledge(deps, entry.item.id);
      return { record, grant, acknowledged: undefined };
    } catch (error) {
      return { record, grant, acknowledged: toCarkeyError(error).message };
    }
  }

  /** Send one remote command and wait (bounded) for the car's signed answer. */
  remote(record: VehicleRecord, command: RemoteCommandName, pin: string | undefined): Promise<RemoteAnswer> {
    const key = this.deps.key();
    const seed = this.seed(key);
    return sendRemoteCommand(this.cloudDeps(key), seed, {
      record,
      command,
      args: command === 'start' && pin !== undefined ? encodePin(pin) : new Uint8Array(0),
      expiresInMs: DEFAULT_REMOTE_EXPIRY_MS,
      waitMs: REMOTE_WAIT_MS,
    });
  }

  /** The cloud's copy of the audit log, verified against the pinned car key. */
  async audit(record: VehicleRecord): Promise<CloudAudit> {
    if (!record.owner) throw new CarkeyError('CK_PHONE_NOT_OWNER', 'reading the audit log needs an owner key');
    const collector = await readCloudAudit(this.cloudDeps(this.deps.key()), record, 1, Number.MAX_SAFE_INTEGER);
    return { entries: collector.all, verification: collector.verify(this.deps.crypto, record.carIdentityKey) };
  }

  /** Register `record`'s car with the cloud: its signed statement (over Bluetooth, `fetchStatement`), checked, then sent. */
  async register(record: VehicleRecord, fetchStatement: (record: VehicleRecord) => Promise<Uint8Array>): Promise<{ version: number; record: VehicleRecord }> {
    if (!record.owner) throw new CarkeyError('CK_PHONE_NOT_OWNER', 'registering a car with the cloud needs an owner key');
    const deps = this.cloudDeps(this.deps.key());
    const bytes = await fetchStatement(record);
    const current = this.deps.store.listVehicles().find((stored) => equalBytes(stored.vehicleId, record.vehicleId)) ?? record;
    const checked = checkStatement(this.deps.crypto, bytes, current);
    if (!checked.ok) throw checked.error;
    this.deps.progress(`registering ${current.name} with ${deps.client.baseUrl}…`);
    const registered = await registerVehicle(deps, current, checked.value);
    return { version: registered.version, record: registered.record };
  }
}
