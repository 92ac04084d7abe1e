/**
 * The service against the one HTTP client the car and the phone use
 * (src/cloud-client/client.ts), over a real socket on SQLite: every typed
 * call of the client gets the answer it expects from the service, and what
 * comes back verifies with core. If the two drift apart, this fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { encodeAuditPage, decodeAuditPage } from '../../src/core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, signCheckpoint, verifyAudit, type AuditEntry } from '../../src/core/audit.js';
import { signRemoteResult } from '../../src/core/cloud-docs.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import { decodeKeyList } from '../../src/core/credentials.js';
import { openSealedBox, sealTo } from '../../src/core/sealed-box.js';
import { CloudClient } from '../../src/cloud-client/client.js';
import { crypto, listFor, newCar, newParty, random, sqliteBackend, startHarness, type Backend, type Harness, type Party } from './helpers.js';

describe('the shared cloud client against the service', () => {
  let backend: Backend;
  let h: Harness;
  const clientFor = (who: Party): CloudClient => new CloudClient({ baseUrl: h.url ?? '', crypto, random, clock: Date.now, seed: () => who.seed, timeoutMs: 5000 });

  beforeAll(async () => {
    backend = sqliteBackend();
    h = await startHarness(await backend.open(), 'socket');
  });
  afterAll(async () => {
    await h.close();
    await backend.cleanup();
  });

  it('registration, key lists with ETag, mailbox, audit, remote commands', async () => {
    const car = newCar();
    const friend = newParty('friend');
    const carClient = clientFor(car.car);
    const owner = clientFor(car.owner);
    const friendClient = clientFor(friend);

    expect(Math.abs((await carClient.time()) - Date.now())).toBeLessThan(60_000);
    expect(await carClient.registerVehicle(car.vehicleId, signVehicleStatement(crypto, car.car.seed, Date.now(), car.keyList.bytes))).toEqual({ epoch: 0, version: 1 });

    const first = await carClient.getKeyList(car.vehicleId);
    if (first === 'unchanged') throw new Error('expected a list');
    expect(first.etag).toBe('"0.1"');
    expect(decodeKeyList(first.keyList).ok).toBe(true);
    expect(await carClient.getKeyList(car.vehicleId, { etag: first.etag })).toBe('unchanged');
    const v2 = listFor(car, car.owner, { version: 2 });
    const waiting = carClient.getKeyList(car.vehicleId, { etag: first.etag, waitS: 30 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await owner.publishKeyList(car.vehicleId, v2.bytes)).toEqual({ epoch: 0, version: 2 });
    const woken = await waiting;
    expect(woken !== 'unchanged' && toHex(woken.keyList)).toBe(toHex(v2.bytes));
    await expect(owner.publishKeyList(car.vehicleId, v2.bytes)).rejects.toMatchObject({ code: 'CK_CLOUD_CONFLICT', details: { reason: 'CK_KEYLIST_ROLLBACK' } });
    await expect(friendClient.getKeyList(car.vehicleId)).rejects.toMatchObject({ code: 'CK_CLOUD_FORBIDDEN' });

    const share = new TextEncoder().encode('carkey1:share');
    const id = await owner.postMailbox(friend.publicKey, car.vehicleId, sealTo(crypto, random, friend.publicKey, share), Date.now() + 60_000);
    const items = await friendClient.listMailbox();
    expect(items.map((item) => item.id)).toEqual([id]);
    const opened = openSealedBox(crypto, friend.seed, items[0]?.box ?? new Uint8Array(0));
    expect(opened.ok && new TextDecoder().decode(opened.value)).toBe('carkey1:share');
    await friendClient.ackMailbox(id);
    expect(await friendClient.listMailbox()).toEqual([]);

    const entries: AuditEntry[] = [];
    let previous = AUDIT_GENESIS_HASH;
    for (let seq = 1; seq <= 3; seq++) {
      const record = { seq, time: Date.now(), kind: 'boot', fields: { n: seq } };
      previous = auditLinkHash(crypto, previous, record);
      entries.push({ ...record, hash: previous });
    }
    const page = JSON.parse(new TextDecoder().decode(encodeAuditPage({ entries, checkpoints: [signCheckpoint(crypto, car.car.seed, 3, previous)], last: 3 }))) as unknown;
    expect(await carClient.uploadAudit(car.vehicleId, page)).toEqual({ stored: 3, lastSeq: 3 });
    const read = decodeAuditPage(await owner.readAudit(car.vehicleId, 1, 64));
    if (!read.ok) throw read.error;
    expect(verifyAudit(read.value.entries, read.value.checkpoints, car.car.publicKey, crypto).ok).toBe(true);

    const commandId = random(16);
    await friendClient.postCommand(car.vehicleId, commandId, Date.now() + 60_000, sealTo(crypto, random, car.car.publicKey, random(80)));
    const commands = await carClient.fetchCommands(car.vehicleId);
    expect(commands.map((c) => toHex(c.commandId))).toEqual([toHex(commandId)]);
    expect(toHex(commands[0]?.caller ?? new Uint8Array(0))).toBe(friend.hex);
    expect(await friendClient.getResult(car.vehicleId, commandId)).toBeUndefined();
    const result = sealTo(crypto, random, friend.publicKey, signRemoteResult(crypto, car.car.seed, { vehicleId: car.vehicleId, commandId, time: Date.now(), status: 0, category: 0, payload: new Uint8Array(0) }));
    await carClient.putResult(car.vehicleId, commandId, result);
    expect(toHex((await friendClient.getResult(car.vehicleId, commandId, { waitS: 5 })) ?? new Uint8Array(0))).toBe(toHex(result));
    await expect(owner.getResult(car.vehicleId, commandId)).rejects.toMatchObject({ code: 'CK_CLOUD_FORBIDDEN' });
  });
});
