/**
 * A minimal car for phone-side integration tests: the core VehicleSession and
 * decision behind a real simulated-radio peripheral (src/transport/sim.ts),
 * with in-memory state (locks, drive, trunk, key list, a hash-chained audit
 * log with signed checkpoints). It is NOT carkeyd: it exists so the phone
 * client and CLI can be exercised over the real radio broker while the
 * daemon is tested on its own.
 */
import { performance } from 'node:perf_hooks';
import { decide, revealOf } from '../../src/core/authorize.js';
import { toHex } from '../../src/core/bytes.js';
import { acceptKeyList, decodeKeyList, type KeyList } from '../../src/core/credentials.js';
import type { Crypto } from '../../src/core/crypto/index.js';
import { CarkeyError } from '../../src/core/errors.js';
import { ADV_FLAG_PAIRING, advertisingId, encodeServiceData, vehicleIdOf } from '../../src/core/identity.js';
import { decodeAuditRead, decodePin, encodeStatus, encodeVersion } from '../../src/core/payloads.js';
import type { CommandName } from '../../src/core/roles.js';
import { VehicleSession, type Outcome } from '../../src/core/vehicle-session.js';
import { MessageChannel, peripheralChunks } from '../../src/transport/channel.js';
import { createSimPeripheral, type SimPeripheralTransport } from '../../src/transport/sim.js';
import type { PeripheralLink } from '../../src/transport/types.js';
import { auditLinkHash, AUDIT_GENESIS_HASH, signCheckpoint, type AuditCheckpoint, type AuditEntry, type AuditFields } from '../../src/core/audit.js';
import { encodeAuditPage } from '../../src/core/audit-page.js';
import { seededRandom } from '../helpers/core-fixtures.js';

export interface FakeCarOptions {
  readonly crypto: Crypto;
  readonly socketPath: string;
  /** name on the simulated air (its address) */
  readonly name: string;
  readonly seed: Uint8Array;
  readonly advSecret: Uint8Array;
  readonly vehicleName: string;
  readonly pairingOpen?: boolean;
  /** answer pairing confirmations with acceptance (default true) */
  readonly acceptPairing?: boolean;
  /** `start` needs this PIN when set */
  readonly pin?: string;
  /** a checkpoint is signed every this-many audit entries (default 4) */
  readonly checkpointEvery?: number;
}

export class FakeCar {
  readonly vehicleId: Uint8Array;
  readonly publicKey: Uint8Array;
  keyList: KeyList | undefined;
  pairingOpen: boolean;
  /** honk and flash commands carried out, in order */
  readonly signals: string[] = [];
  acceptPairing: boolean;
  locked = true;
  drive: 'off' | 'ready' = 'off';
  trunk: 'open' | 'closed' = 'closed';
  readonly commands: string[] = [];
  /** drop the link instead of answering: the HELLO (no CHALLENGE), or a REQUEST/COMMAND after acting on it (no RESULT) */
  hangUp: 'hello' | 'request' | undefined;
  readonly pairCodes: string[] = [];
  readonly audit: AuditEntry[] = [];
  readonly checkpoints: AuditCheckpoint[] = [];
  private readonly transport: SimPeripheralTransport;
  private readonly random = seededRandom('fake car');
  private readonly links = new Set<PeripheralLink>();

  private constructor(private readonly options: FakeCarOptions) {
    this.vehicleId = vehicleIdOf(options.crypto, options.crypto.publicKeyFromSeed(options.seed));
    this.publicKey = options.crypto.publicKeyFromSeed(options.seed);
    this.pairingOpen = options.pairingOpen ?? false;
    this.acceptPairing = options.acceptPairing ?? true;
    this.transport = createSimPeripheral({ socketPath: options.socketPath, name: options.name });
    this.transport.onLink((link) => this.onLink(link));
  }

  static async start(options: FakeCarOptions): Promise<FakeCar> {
    const car = new FakeCar(options);
    await car.transport.start(car.advertisement());
    return car;
  }

  async setPairing(open: boolean): Promise<void> {
    this.pairingOpen = open;
    await this.transport.setAdvertisement(this.advertisement());
  }

  async stop(): Promise<void> {
    await this.transport.stop();
  }

  get linkCount(): number {
    return this.links.size;
  }

  private advertisement(): { localName: string; serviceData: Uint8Array } {
    const advId = advertisingId(this.options.crypto, this.options.advSecret, Date.now());
    return { localName: 'carkey', serviceData: encodeServiceData(this.pairingOpen ? ADV_FLAG_PAIRING : 0, advId) };
  }

  private record(kind: string, fields: AuditFields): void {
    const seq = this.audit.length + 1;
    const previous = this.audit[this.audit.length - 1]?.hash ?? AUDIT_GENESIS_HASH;
    const record = { seq, time: Date.now(), kind, fields };
    const entry = { ...record, hash: auditLinkHash(this.options.crypto, previous, record) };
    this.audit.push(entry);
    if (seq % (this.options.checkpointEvery ?? 4) === 0) this.checkpoints.push(signCheckpoint(this.options.crypto, this.options.seed, seq, entry.hash));
  }

  private onLink(link: PeripheralLink): void {
    this.links.add(link);
    link.onClose(() => this.links.delete(link));
    const { crypto } = this.options;
    const session = new VehicleSession({ crypto, identitySeed: this.options.seed, random: this.random, challengeTtlMs: 60_000 });
    const channel = new MessageChannel(peripheralChunks(link));
    let queue = Promise.resolve();
    channel.onMessage((message) => {
      queue = queue.then(() => this.handle(link, channel, session, message)).catch(() => link.disconnect());
    });
  }

  private async handle(link: PeripheralLink, channel: MessageChannel, session: VehicleSession, message: Uint8Array): Promise<void> {
    const { crypto } = this.options;
    const event = session.handle(message, {
      now: performance.now(),
      carTime: Date.now(),
      keyListVersion: this.keyList?.version ?? 0,
      pairingOpen: this.pairingOpen,
      pairReady: { status: 'ready', epoch: this.keyList?.epoch ?? 0, requiredVersion: (this.keyList?.version ?? 0) + 1, keyList: this.keyList?.bytes ?? new Uint8Array(0) },
    });
    switch (event.kind) {
      case 'reply':
        if (this.hangUp === 'hello' && session.stateName === 'challenged') {
          await link.disconnect();
          return;
        }
        await channel.send(event.reply);
        return;
      case 'pair-code':
        this.pairCodes.push(event.code);
        await channel.send(event.reply);
        return;
      case 'refuse':
        await channel.send(event.reply);
        await link.disconnect();
        return;
      case 'pair-confirm': {
        const decoded = decodeKeyList(event.keyList);
        const accepted = decoded.ok ? acceptKeyList(crypto, decoded.value, this.keyList, this.vehicleId, { viaPairing: true }) : decoded;
        if (!accepted.ok || !this.acceptPairing) {
          await channel.send(session.finishPairing({ accepted: false, error: accepted.ok ? new CarkeyError('CK_PROTO_PAIRING_NOT_CONFIRMED') : accepted.error }));
          return;
        }
        this.keyList = accepted.value;
        this.record('pairing', { owner: toHex(event.peerKey.subarray(0, 8)), version: accepted.value.version });
        await channel.send(session.finishPairing({ accepted: true, advSecret: this.options.advSecret, vehicleName: this.options.vehicleName }));
        return;
      }
      case 'request': {
        const command = event.command;
        if (command === undefined) {
          await channel.send(session.refuse(new CarkeyError('CK_CODEC_BAD_VALUE', 'unknown command')).reply);
          return;
        }
        const pin = command === 'start' ? decodePin(event.args) : { ok: true as const, value: undefined };
        const pinState = !pin.ok ? 'wrong' : pin.value === undefined ? undefined : pin.value === this.options.pin ? 'ok' : 'wrong';
        const decision = decide(crypto, {
          vehicleId: this.vehicleId,
          keyList: this.keyList,
          peerKey: event.peerKey,
          credential: event.credential,
          command,
          now: Date.now(),
          proximity: { rssi: -50, near: true, responseTimeMs: 0 },
          policy: { relayBoundMs: 1000, startPinRequired: this.options.pin !== undefined },
          pin: pinState,
        });
        this.record('decision', { command, allow: decision.allow, reason: decision.allow ? null : decision.reason, subject: decision.subject });
        if (!decision.allow) {
          const category = revealOf(decision.reason);
          if (category === undefined) {
            await channel.send(session.refuse(new CarkeyError('CK_DENIED', decision.reason)).reply);
            await link.disconnect();
            return;
          }
          await channel.send(session.respond(event.seq, { status: 'denied', category }));
          return;
        }
        this.commands.push(command);
        const outcome = this.execute(command, event.args);
        if (this.hangUp === 'request') {
          await link.disconnect();
          return;
        }
        await channel.send(session.respond(event.seq, outcome));
        return;
      }
    }
  }

  private execute(command: CommandName, args: Uint8Array): Outcome {
    const { crypto } = this.options;
    switch (command) {
      case 'unlock':
      case 'passiveUnlock':
        this.locked = false;
        return { status: 'ok' };
      case 'lock':
        this.locked = true;
        return { status: 'ok' };
      case 'start':
        this.drive = 'ready';
        return { status: 'ok' };
      case 'trunk':
        this.trunk = 'open';
        return { status: 'ok' };
      case 'honk':
      case 'flash':
        this.signals.push(command);
        return { status: 'ok' };
      case 'status':
        return {
          status: 'ok',
          payload: encodeStatus({
            locked: this.locked ? ['front-left', 'front-right'] : [],
            doorCount: 2,
            drive: this.drive,
            trunk: this.trunk,
            keyListVersion: this.keyList?.version ?? 0,
            carTime: Date.now(),
            startNeedsPin: this.options.pin !== undefined,
          }),
        };
      case 'keyListGet':
        return { status: 'ok', payload: this.keyList?.bytes ?? new Uint8Array(0) };
      case 'vehicleStatement':
        return { status: 'failed', payload: new TextEncoder().encode('CK_INTERNAL') };
      case 'keyListPush': {
        const decoded = decodeKeyList(args);
        const accepted = decoded.ok ? acceptKeyList(crypto, decoded.value, this.keyList, this.vehicleId) : decoded;
        if (!accepted.ok) return { status: 'failed', payload: new TextEncoder().encode(accepted.error.code) };
        this.keyList = accepted.value;
        this.record('key-list', { version: accepted.value.version });
        return { status: 'ok', payload: encodeVersion(accepted.value.version) };
      }
      case 'auditRead': {
        const request = decodeAuditRead(args);
        if (!request.ok) return { status: 'failed', payload: new TextEncoder().encode(request.error.code) };
        const entries = this.audit.filter((entry) => entry.seq >= request.value.fromSeq).slice(0, request.value.limit);
        const checkpoints = this.checkpoints.filter((checkpoint) => entries.some((entry) => entry.seq === checkpoint.seq));
        return { status: 'ok', payload: encodeAuditPage({ entries, checkpoints, last: this.audit.length }) };
      }
    }
  }
}
