/**
 * The real carkey-cloud (`buildCloudApp` on a SQLite store in a temp dir)
 * listening on 127.0.0.1 for the phone-side cloud tests, with the fault
 * switch on; plus a stand-in for the car's sync worker built from core alone
 * (fetch commands, verify, answer with a car-signed result sealed to the
 * caller), so the phone path is tested without carkeyd.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildCloudApp } from '../../src/cloud/app.js';
import { SqliteCloudStore } from '../../src/cloud/sqlite-store.js';
import { CloudClient } from '../../src/cloud-client/client.js';
import { signRemoteResult, verifyRemoteCommand, type RemoteCommand } from '../../src/core/cloud-docs.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import type { KeyList } from '../../src/core/credentials.js';
import type { Crypto } from '../../src/core/crypto/index.js';
import { openSealedBox, sealTo } from '../../src/core/sealed-box.js';
import { vehicleIdOf } from '../../src/core/identity.js';

export interface TestCloud {
  readonly url: string;
  readonly app: FastifyInstance;
  /** POST /_faults */
  fault(route: string, mode: string): Promise<void>;
  close(): Promise<void>;
}

export async function startTestCloud(): Promise<TestCloud> {
  const dir = mkdtempSync(join(tmpdir(), 'ck-phone-cloud-'));
  const store = SqliteCloudStore.open({ dir });
  await store.migrate(Date.now());
  const app = await buildCloudApp({ store, faults: true, docs: false, limits: { perKeyPerMinute: 0, perIpPerMinute: 0 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return {
    url,
    app,
    async fault(route, mode) {
      const response = await fetch(`${url}/_faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ route, mode }) });
      if (!response.ok) throw new Error(`fault switch: HTTP ${response.status} ${await response.text()}`);
    },
    async close() {
      await app.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const random = (n: number): Uint8Array => globalThis.crypto.getRandomValues(new Uint8Array(n));

/** What the stand-in car answers: status/category/payload as in a RESULT. */
export type CarDecision = (command: RemoteCommand) => { status: number; category: number; payload?: Uint8Array };

/** The car's side of the cloud, from core: register, and answer commands. */
export class StandInCar {
  readonly client: CloudClient;
  readonly vehicleId: Uint8Array;
  readonly seen: RemoteCommand[] = [];

  constructor(
    private readonly crypto: Crypto,
    private readonly seed: Uint8Array,
    url: string,
  ) {
    this.client = new CloudClient({ baseUrl: url, crypto, random, clock: () => Date.now(), seed: () => seed, timeoutMs: 5000 });
    this.vehicleId = vehicleIdOf(crypto, crypto.publicKeyFromSeed(seed));
  }

  statement(keyList: KeyList | undefined): Uint8Array {
    return signVehicleStatement(this.crypto, this.seed, Date.now(), keyList?.bytes ?? new Uint8Array(0));
  }

  async register(keyList: KeyList): Promise<void> {
    await this.client.registerVehicle(this.vehicleId, this.statement(keyList));
  }

  /** Answer command `commandId` of `caller` without fetching it (a result posted while the fetch route misbehaves). */
  async answerDirect(commandId: Uint8Array, caller: Uint8Array, status: number, category = 0): Promise<void> {
    const result = signRemoteResult(this.crypto, this.seed, { vehicleId: this.vehicleId, commandId, time: Date.now(), status, category, payload: new Uint8Array(0) });
    await this.client.putResult(this.vehicleId, commandId, sealTo(this.crypto, random, caller, result));
  }

  /**
   * Fetch pending commands once (long-poll up to `waitS`) and answer each
   * with `decide`; `signWith` lets a test answer with another key (a forgery).
   */
  async answerOnce(decide: CarDecision, options: { waitS?: number; signWith?: Uint8Array; commandId?: (id: Uint8Array) => Uint8Array } = {}): Promise<number> {
    const pending = await this.client.fetchCommands(this.vehicleId, { waitS: options.waitS ?? 5 });
    for (const item of pending) {
      const opened = openSealedBox(this.crypto, this.seed, item.box);
      if (!opened.ok) throw opened.error;
      const verified = verifyRemoteCommand(this.crypto, opened.value, this.vehicleId, Date.now());
      if (!verified.ok) throw verified.error;
      const command = verified.value;
      this.seen.push(command);
      const decision = decide(command);
      const result = signRemoteResult(this.crypto, options.signWith ?? this.seed, {
        vehicleId: this.vehicleId,
        commandId: options.commandId?.(command.commandId) ?? command.commandId,
        time: Date.now(),
        status: decision.status,
        category: decision.category,
        payload: decision.payload ?? new Uint8Array(0),
      });
      await this.client.putResult(this.vehicleId, item.commandId, sealTo(this.crypto, random, command.identity, result));
    }
    return pending.length;
  }
}
