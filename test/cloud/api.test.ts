/**
 * The carkey-cloud API (docs/cloud.md) end to end, on SQLite and on
 * PostgreSQL, through `inject()` and over a real socket: every route with
 * its authorization rule, every refusal with its code and status.
 *
 * What it proves: documents the cloud must refuse (forged, unsigned, stale,
 * replayed, wrong-vehicle, rolled back, version jumps, other epochs, squatted
 * registrations, changed audit history) are refused with the documented
 * code; what it accepts it stores and serves byte for byte (ETag/304
 * included); the mailbox and remote commands work end to end with core
 * sealing and signatures, and only the right key reads each thing; a
 * missing resource and a forbidden one get the identical 403.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { DEFAULT_REPLAY_WINDOW_MS } from '../../src/core/cloud-auth.js';
import { signRemoteCommand, signRemoteResult, verifyRemoteCommand, verifyRemoteResult } from '../../src/core/cloud-docs.js';
import { acceptKeyList, decodeKeyList } from '../../src/core/credentials.js';
import { encodeAuditPage, AuditCollector, decodeAuditPage } from '../../src/core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, signCheckpoint, type AuditCheckpoint, type AuditEntry } from '../../src/core/audit.js';
import { Command } from '../../src/core/roles.js';
import { openSealedBox, sealTo } from '../../src/core/sealed-box.js';
import { decodeB64, encodeB64 } from '../../src/cloud/encoding.js';
import {
  backends,
  codeOf,
  crypto,
  listFor,
  newCar,
  newParty,
  random,
  reasonOf,
  startHarness,
  statementFor,
  type Answer,
  type Backend,
  type Car,
  type Client,
  type Harness,
  type Party,
} from './helpers.js';

// --- document builders ---------------------------------------------------------------

function chain(count: number): AuditEntry[] {
  const entries: AuditEntry[] = [];
  let previous = AUDIT_GENESIS_HASH;
  for (let seq = 1; seq <= count; seq++) {
    const record = { seq, time: 1_700_000_000_000 + seq, kind: 'decision', fields: { command: 'unlock', result: seq % 2 === 0 ? 'allow' : 'deny', n: seq } };
    const hash = auditLinkHash(crypto, previous, record);
    entries.push({ ...record, hash });
    previous = hash;
  }
  return entries;
}

function page(entries: readonly AuditEntry[], checkpoints: readonly AuditCheckpoint[] = [], last = entries[entries.length - 1]?.seq ?? 0): string {
  return new TextDecoder().decode(encodeAuditPage({ entries, checkpoints, last }));
}

function checkpoint(car: Car, entry: AuditEntry | undefined): AuditCheckpoint {
  if (entry === undefined) throw new Error('no entry to checkpoint');
  return signCheckpoint(crypto, car.car.seed, entry.seq, entry.hash);
}

function sealedCommand(car: Car, phone: Party, commandId: Uint8Array, expiresAt: number): string {
  const now = Date.now();
  const command = signRemoteCommand(crypto, phone.seed, { vehicleId: car.vehicleId, commandId, issuedAt: now, expiresAt, credentialKind: 0, credential: new Uint8Array(0), command: Command.lock, args: new Uint8Array(0) });
  return encodeB64(sealTo(crypto, random, car.car.publicKey, command));
}

function flipByte(b64: string, index: number): string {
  const bytes = Uint8Array.from(decodeB64(b64) ?? []);
  bytes[index] = (bytes[index] ?? 0) ^ 0x40;
  return encodeB64(bytes);
}

function body(a: Answer): Record<string, unknown> {
  return a.json() as Record<string, unknown>;
}

function expectRefused(a: Answer, status: number, code: string, reason?: string): void {
  expect({ status: a.status, code: codeOf(a), ...(reason === undefined ? {} : { reason: reasonOf(a) }) }, a.text).toEqual({ status, code, ...(reason === undefined ? {} : { reason }) });
  const error = (body(a).error ?? {}) as Record<string, unknown>;
  expect(typeof error.message).toBe('string');
  expect(typeof error.details).toBe('object');
}

// --- the suite, per database and transport ----------------------------------------------

for (const makeBackend of backends()) {
  for (const transport of ['inject', 'socket'] as const) {
    describe(`${makeBackend().name} via ${transport}`, () => {
      let backend: Backend;
      let h: Harness;
      let client: Client;
      let clockOffset = 0;

      beforeAll(async () => {
        backend = makeBackend();
        h = await startHarness(await backend.open(), transport, { now: () => Date.now() + clockOffset });
        client = h.client;
      });
      afterAll(async () => {
        await h.close();
        await backend.cleanup();
      });

      async function registered(name = 'car'): Promise<Car> {
        const car = newCar(name);
        const answer = await client.register(car);
        expect(answer.status, answer.text).toBe(200);
        return car;
      }

      describe('registration', () => {
        it('the car registers with its statement; the answer names the list in force', async () => {
          const car = newCar();
          const put = await client.register(car);
          expect(put.status).toBe(200);
          expect(put.json()).toEqual({ vehicleId: car.id, epoch: 0, version: 1 });
          // the owner may forward the same statement: nothing changes
          const again = await client.call(car.owner, 'PUT', `/v1/vehicles/${car.id}`, { statement: statementFor(car) });
          expect(again.json()).toEqual({ vehicleId: car.id, epoch: 0, version: 1 });
        });

        it('cannot be squatted: statements not signed by the car the id belongs to are refused', async () => {
          const victim = newCar('victim');
          const attacker = newCar('attacker');
          const cases: { name: string; statement: string; status: number; reason: string }[] = [
            { name: "the attacker's own car statement at the victim's id", statement: statementFor(attacker), status: 409, reason: 'CK_CRED_WRONG_VEHICLE' },
            { name: "the attacker's car naming a list for the victim", statement: statementFor(attacker, listFor(victim, attacker.owner, { version: 1, owners: [attacker.owner.publicKey] }).bytes), status: 409, reason: 'CK_CRED_WRONG_VEHICLE' },
            { name: "a statement in the victim car's name with a forged signature", statement: flipByte(statementFor(victim), 60), status: 409, reason: 'CK_CRED_BAD_SIGNATURE' },
            { name: 'a statement that does not decode', statement: encodeB64(Uint8Array.of(1, 2, 3)), status: 400, reason: 'CK_CODEC_TRUNCATED' },
          ];
          for (const c of cases) {
            const answer = await client.call(attacker.owner, 'PUT', `/v1/vehicles/${victim.id}`, { statement: c.statement });
            expect({ name: c.name, status: answer.status, reason: reasonOf(answer) }).toEqual({ name: c.name, status: c.status, reason: c.reason });
          }
          // and the id is still free for the real car
          expect((await client.register(victim)).status).toBe(200);
        });

        it('a statement of an unpaired car (no key list) or non-canonical base64url is 400', async () => {
          const car = newCar();
          expectRefused(await client.call(car.car, 'PUT', `/v1/vehicles/${car.id}`, { statement: statementFor(car, new Uint8Array(0)) }), 400, 'CK_CLOUD_BAD_REQUEST', 'CK_KEYLIST_EMPTY_OWNERS');
          expectRefused(await client.call(car.car, 'PUT', `/v1/vehicles/${car.id}`, { statement: `${statementFor(car)}=` }), 400, 'CK_CLOUD_BAD_REQUEST');
        });

        it('statements move the list forward only: later version or epoch accepted, earlier refused', async () => {
          const car = await registered();
          const v5 = listFor(car, car.owner, { version: 5 });
          expect((await client.register(car, v5.bytes)).json()).toMatchObject({ version: 5 });
          expectRefused(await client.register(car, listFor(car, car.owner, { version: 4 }).bytes), 409, 'CK_CLOUD_CONFLICT', 'CK_KEYLIST_ROLLBACK');
          const reset = listFor(car, car.owner, { epoch: 1, version: 1 });
          expect((await client.register(car, reset.bytes)).json()).toEqual({ vehicleId: car.id, epoch: 1, version: 1 });
          expectRefused(await client.register(car, v5.bytes), 409, 'CK_CLOUD_CONFLICT', 'CK_KEYLIST_WRONG_EPOCH');
          const fetched = await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`);
          expect(body(fetched).keyList).toBe(encodeB64(reset.bytes));
        });
      });

      describe('request signatures', () => {
        it('unsigned, malformed, stale, forged, altered and replayed requests are 401 with their codes', async () => {
          const car = await registered();
          const url = `/v1/vehicles/${car.id}/key-list`;
          const stranger = newParty('stranger');
          const signed = (await import('./helpers.js')).signedRequest;
          const replayed = signed(car.owner, 'GET', url);
          expect((await client.transport.send(replayed)).status).toBe(200);
          const forged = signed(stranger, 'GET', url);
          const v2 = listFor(car, car.owner, { version: 2 });
          const cases: { name: string; answer: Promise<Answer>; code: string }[] = [
            { name: 'unsigned', answer: client.raw('GET', url), code: 'CK_CLOUD_AUTH_MISSING' },
            { name: 'malformed key header', answer: client.raw('GET', url, { ...replayed.headers, 'x-carkey-key': 'not-hex' }), code: 'CK_CLOUD_AUTH_MISSING' },
            { name: 'stale (signed 121 s ago)', answer: client.call(car.owner, 'GET', url, undefined, { time: Date.now() - DEFAULT_REPLAY_WINDOW_MS - 1000 }), code: 'CK_CLOUD_AUTH_STALE' },
            { name: 'from the future (121 s ahead)', answer: client.call(car.owner, 'GET', url, undefined, { time: Date.now() + DEFAULT_REPLAY_WINDOW_MS + 1000 }), code: 'CK_CLOUD_AUTH_STALE' },
            { name: "another key's signature under the owner's key", answer: client.raw('GET', url, { ...forged.headers, 'x-carkey-key': car.owner.hex }), code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' },
            { name: 'query changed after signing', answer: client.transport.send({ ...signed(car.owner, 'GET', `${url}?wait=1`), url: `${url}?wait=2` }), code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' },
            { name: 'path changed after signing', answer: client.transport.send({ ...signed(car.owner, 'GET', url), url: `/v1/vehicles/${car.id}/commands` }), code: 'CK_CLOUD_AUTH_BAD_SIGNATURE' },
            {
              name: 'body changed after signing',
              answer: client.call(car.owner, 'POST', url, { keyList: encodeB64(v2.bytes) }, { sentBody: JSON.stringify({ keyList: encodeB64(listFor(car, car.owner, { version: 3 }).bytes) }) }),
              code: 'CK_CLOUD_AUTH_BAD_SIGNATURE',
            },
            { name: 'replayed', answer: client.transport.send(replayed), code: 'CK_CLOUD_AUTH_REPLAY' },
          ];
          for (const c of cases) {
            const answer = await c.answer;
            expect({ name: c.name, status: answer.status, code: codeOf(answer) }).toEqual({ name: c.name, status: 401, code: c.code });
          }
          // none of them changed anything
          expect(body(await client.call(car.car, 'GET', url)).version).toBe(1);
        });

        it('the replay check is per request: a fresh signature of the same request passes', async () => {
          const car = await registered();
          for (let i = 0; i < 3; i++) expect((await client.call(car.owner, 'GET', `/v1/vehicles/${car.id}/key-list`)).status).toBe(200);
        });
      });

      describe('key lists', () => {
        it('car and owner read it with an ETag; If-None-Match gives 304; others get 403', async () => {
          const car = await registered();
          const url = `/v1/vehicles/${car.id}/key-list`;
          for (const reader of [car.car, car.owner]) {
            const answer = await client.call(reader, 'GET', url);
            expect(answer.status).toBe(200);
            expect(answer.headers.etag).toBe('"0.1"');
            expect(answer.json()).toEqual({ keyList: encodeB64(car.keyList.bytes), epoch: 0, version: 1 });
          }
          const notModified = await client.call(car.car, 'GET', url, undefined, { headers: { 'if-none-match': '"0.1"' } });
          expect(notModified.status).toBe(304);
          expect(notModified.text).toBe('');
          expect(notModified.headers.etag).toBe('"0.1"');
          expect((await client.call(car.car, 'GET', url, undefined, { headers: { 'if-none-match': '"0.0"' } })).status).toBe(200);
          expectRefused(await client.call(newParty('stranger'), 'GET', url), 403, 'CK_CLOUD_FORBIDDEN');
        });

        it('?wait with a matching ETag and no change answers 304 when the wait is over', async () => {
          const car = await registered();
          const answer = await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list?wait=1`, undefined, { headers: { 'if-none-match': '"0.1"' } });
          expect(answer.status).toBe(304);
        });

        it('an owner publishes the next list; it is stored and served as the exact bytes sent', async () => {
          const car = await registered();
          const friend = newParty('friend');
          const v2 = listFor(car, car.owner, { version: 2, owners: [car.owner.publicKey, friend.publicKey] });
          const post = await client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(v2.bytes) });
          expect(post.status, post.text).toBe(200);
          expect(post.json()).toEqual({ epoch: 0, version: 2 });
          const fetched = await client.call(friend, 'GET', `/v1/vehicles/${car.id}/key-list`);
          expect(fetched.headers.etag).toBe('"0.2"');
          expect(body(fetched).keyList).toBe(encodeB64(v2.bytes));
        });

        it('lists that do not follow the stored one are 409 with the core reason', async () => {
          const car = await registered();
          const other = newCar('other');
          const stranger = newParty('stranger');
          const v2 = listFor(car, car.owner, { version: 2 });
          expect((await client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(v2.bytes) })).status).toBe(200);
          const cases: { name: string; keyList: string; reason: string }[] = [
            { name: 'same version again', keyList: encodeB64(v2.bytes), reason: 'CK_KEYLIST_ROLLBACK' },
            { name: 'older version', keyList: encodeB64(car.keyList.bytes), reason: 'CK_KEYLIST_ROLLBACK' },
            { name: 'version jump (+17)', keyList: encodeB64(listFor(car, car.owner, { version: 19 }).bytes), reason: 'CK_KEYLIST_VERSION_JUMP' },
            { name: 'another epoch', keyList: encodeB64(listFor(car, car.owner, { epoch: 1, version: 3 }).bytes), reason: 'CK_KEYLIST_WRONG_EPOCH' },
            { name: 'signed by a non-owner', keyList: encodeB64(listFor(car, stranger, { version: 3, owners: [stranger.publicKey] }).bytes), reason: 'CK_KEYLIST_NOT_OWNER' },
            { name: 'forged signature', keyList: flipByte(encodeB64(listFor(car, car.owner, { version: 3 }).bytes), 120), reason: 'CK_CRED_BAD_SIGNATURE' },
            { name: "another car's list", keyList: encodeB64(listFor(other, car.owner, { version: 3 }).bytes), reason: 'CK_CRED_WRONG_VEHICLE' },
          ];
          for (const c of cases) {
            const answer = await client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: c.keyList });
            expect({ name: c.name, status: answer.status, code: codeOf(answer), reason: reasonOf(answer) }).toEqual({ name: c.name, status: 409, code: 'CK_CLOUD_CONFLICT', reason: c.reason });
          }
          expectRefused(await client.call(car.owner, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(Uint8Array.of(1, 0)) }), 400, 'CK_CLOUD_BAD_REQUEST');
          expect(body(await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`)).version).toBe(2);
        });

        it('only an unrevoked owner may publish or read; a revoked owner is refused like a stranger', async () => {
          const car = await registered();
          const second = newParty('second-owner');
          const url = `/v1/vehicles/${car.id}/key-list`;
          const v3 = listFor(car, car.owner, { version: 3 });
          expectRefused(await client.call(newParty('stranger'), 'POST', url, { keyList: encodeB64(v3.bytes) }), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(car.car, 'POST', url, { keyList: encodeB64(v3.bytes) }), 403, 'CK_CLOUD_FORBIDDEN');
          const withSecond = listFor(car, car.owner, { version: 2, owners: [car.owner.publicKey, second.publicKey] });
          expect((await client.call(car.owner, 'POST', url, { keyList: encodeB64(withSecond.bytes) })).status).toBe(200);
          expect((await client.call(second, 'GET', url)).status).toBe(200);
          const revoked = listFor(car, car.owner, { version: 3, owners: [car.owner.publicKey, second.publicKey], revokedKeys: [second.publicKey] });
          expect((await client.call(car.owner, 'POST', url, { keyList: encodeB64(revoked.bytes) })).status).toBe(200);
          expectRefused(await client.call(second, 'GET', url), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(second, 'POST', url, { keyList: encodeB64(listFor(car, second, { version: 4, owners: [second.publicKey] }).bytes) }), 403, 'CK_CLOUD_FORBIDDEN');
        });
      });

      describe('mailbox', () => {
        it('an owner posts a sealed share; only the recipient reads, opens and acknowledges it', async () => {
          const car = await registered();
          const friend = newParty('friend');
          const share = 'carkey1:a-share-bundle-for-the-friend';
          const box = encodeB64(sealTo(crypto, random, friend.publicKey, new TextEncoder().encode(share)));
          const expiresAt = Date.now() + 86_400_000;
          const posted = await client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { vehicleId: car.id, box, expiresAt });
          expect(posted.status, posted.text).toBe(201);
          const id = String(body(posted).id);
          expect(id).toMatch(/^[0-9a-f]{32}$/);

          const inbox = await client.call(friend, 'GET', '/v1/mailbox');
          expect(inbox.status).toBe(200);
          const items = body(inbox).items as Record<string, unknown>[];
          expect(items).toHaveLength(1);
          expect(items[0]).toMatchObject({ id, vehicleId: car.id, box, expiresAt, sender: car.owner.hex });
          const opened = openSealedBox(crypto, friend.seed, decodeB64(String(items[0]?.box)) ?? new Uint8Array(0));
          expect(opened.ok && new TextDecoder().decode(opened.value)).toBe(share);

          for (const other of [car.owner, car.car, newParty('stranger')]) expect(body(await client.call(other, 'GET', '/v1/mailbox')).items).toEqual([]);
          const notYours = await client.call(car.owner, 'DELETE', `/v1/mailbox/${id}`);
          expectRefused(notYours, 403, 'CK_CLOUD_FORBIDDEN');
          expect((await client.call(friend, 'DELETE', `/v1/mailbox/${id}`)).status).toBe(204);
          const gone = await client.call(friend, 'DELETE', `/v1/mailbox/${id}`);
          expect(gone.text).toBe(notYours.text);
          expect(body(await client.call(friend, 'GET', '/v1/mailbox')).items).toEqual([]);
        });

        it('only an owner of the named vehicle may post; expiry must be within 30 days', async () => {
          const car = await registered();
          const friend = newParty('friend');
          const box = encodeB64(sealTo(crypto, random, friend.publicKey, Uint8Array.of(1, 2, 3)));
          const ok = { vehicleId: car.id, box, expiresAt: Date.now() + 60_000 };
          expectRefused(await client.call(newParty('stranger'), 'POST', `/v1/mailbox/${friend.hex}`, ok), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(car.car, 'POST', `/v1/mailbox/${friend.hex}`, ok), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { ...ok, vehicleId: newCar().id }), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { ...ok, expiresAt: Date.now() - 1 }), 400, 'CK_CLOUD_BAD_REQUEST');
          expectRefused(await client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { ...ok, expiresAt: Date.now() + 31 * 86_400_000 }), 400, 'CK_CLOUD_BAD_REQUEST');
          expectRefused(await client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { ...ok, box: encodeB64(Uint8Array.of(1)) }), 400, 'CK_CLOUD_BAD_REQUEST');
        });

        it('unacknowledged items are not served after they expire, and are purged', async () => {
          const car = await registered();
          const friend = newParty('friend');
          const box = encodeB64(sealTo(crypto, random, friend.publicKey, Uint8Array.of(9)));
          expect((await client.call(car.owner, 'POST', `/v1/mailbox/${friend.hex}`, { vehicleId: car.id, box, expiresAt: Date.now() + 5_000 })).status).toBe(201);
          expect(body(await client.call(friend, 'GET', '/v1/mailbox')).items).toHaveLength(1);
          clockOffset = 10_000;
          try {
            expect(body(await client.call(friend, 'GET', '/v1/mailbox', undefined, { time: Date.now() + clockOffset })).items).toEqual([]);
            const purged = await h.store.purgeExpired(Date.now() + clockOffset, 0);
            expect(purged.mailbox).toBeGreaterThanOrEqual(1);
            expect(await backend.exec('SELECT item_id FROM mailbox WHERE recipient = ?', [friend.hex])).toEqual([]);
          } finally {
            clockOffset = 0;
          }
        });
      });

      describe('audit', () => {
        it('the car uploads pages idempotently by seq; owners read a page that verifies end to end', async () => {
          const car = await registered();
          const url = `/v1/vehicles/${car.id}/audit`;
          const entries = chain(10);
          const first = await client.call(car.car, 'POST', url, page(entries.slice(0, 5), [checkpoint(car, entries[3])]));
          expect(first.status, first.text).toBe(200);
          expect(first.json()).toEqual({ stored: 5, lastSeq: 5 });
          expect((await client.call(car.car, 'POST', url, page(entries.slice(0, 5), [checkpoint(car, entries[3])]))).json()).toEqual({ stored: 0, lastSeq: 5 });
          expect((await client.call(car.car, 'POST', url, page(entries.slice(2, 10), [checkpoint(car, entries[9])]))).json()).toEqual({ stored: 5, lastSeq: 10 });

          const read = await client.call(car.owner, 'GET', `${url}?from=1&limit=256`);
          expect(read.status, read.text).toBe(200);
          const decoded = decodeAuditPage(new TextEncoder().encode(read.text));
          if (!decoded.ok) throw decoded.error;
          expect(decoded.value.entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
          expect(decoded.value.checkpoints.map((c) => c.seq)).toEqual([4, 10]);
          const collector = new AuditCollector();
          collector.add(decoded.value);
          const verified = collector.verify(crypto, car.car.publicKey);
          expect(verified.ok && verified.value).toMatchObject({ entries: 10, lastCheckpointSeq: 10 });

          const second = await client.call(car.owner, 'GET', `${url}?from=5&limit=3`);
          expect((body(second).entries as unknown[]).length).toBe(3);
          expect(body(second).last).toBe(10);
        });

        it('changed history, gaps, broken links and forged checkpoints are 409; nothing is stored', async () => {
          const car = await registered();
          const url = `/v1/vehicles/${car.id}/audit`;
          const entries = chain(6);
          expect((await client.call(car.car, 'POST', url, page(entries.slice(0, 4)))).status).toBe(200);
          const changed = { ...(entries[1] as AuditEntry), fields: { command: 'unlock', result: 'allow', n: 99 } };
          const otherCar = newCar('other');
          const cases: { name: string; page: string }[] = [
            { name: 'a stored seq with another hash', page: page([{ ...changed, hash: auditLinkHash(crypto, (entries[0] as AuditEntry).hash, changed) }]) },
            { name: 'a stored seq with other content, same hash', page: page([changed]) },
            { name: 'a gap after the stored head', page: page(entries.slice(5, 6)) },
            { name: 'a new entry that does not link to the head', page: page([{ ...(entries[4] as AuditEntry), hash: (entries[5] as AuditEntry).hash }]) },
            { name: 'a checkpoint signed by another car', page: page(entries.slice(4, 6), [signCheckpoint(crypto, otherCar.car.seed, 6, (entries[5] as AuditEntry).hash)]) },
            { name: 'a checkpoint that disagrees with the chain', page: page(entries.slice(4, 6), [signCheckpoint(crypto, car.car.seed, 6, (entries[4] as AuditEntry).hash)]) },
            { name: 'a checkpoint past the last entry', page: page(entries.slice(4, 5), [checkpoint(car, entries[5])]) },
          ];
          for (const c of cases) {
            const answer = await client.call(car.car, 'POST', url, c.page);
            expect({ name: c.name, status: answer.status, reason: reasonOf(answer) }).toEqual({ name: c.name, status: 409, reason: 'CK_AUDIT_CHAIN_BROKEN' });
          }
          const read = body(await client.call(car.owner, 'GET', url));
          expect((read.entries as unknown[]).length).toBe(4);
          expect(read.checkpoints).toEqual([]);
        });

        it('only the car uploads and only owners read; a page that does not decode is 400', async () => {
          const car = await registered();
          const url = `/v1/vehicles/${car.id}/audit`;
          expectRefused(await client.call(car.owner, 'POST', url, page(chain(1))), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(car.car, 'GET', url), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(newParty('stranger'), 'GET', url), 403, 'CK_CLOUD_FORBIDDEN');
          const bad = { entries: [{ seq: 1, time: 1, kind: 'NOT A KIND', fields: {}, hash: '00'.repeat(64) }], checkpoints: [], last: 1 };
          expectRefused(await client.call(car.car, 'POST', url, bad), 400, 'CK_CLOUD_BAD_REQUEST', 'CK_CODEC_BAD_VALUE');
        });
      });

      describe('remote commands', () => {
        it('post (any key) → fetch (the car) → result (the car) → read (only the poster), verified with core', async () => {
          const car = await registered();
          const phone = newParty('remote-phone');
          const commandId = random(16);
          const cid = toHex(commandId);
          const expiresAt = Date.now() + 5 * 60_000;
          const box = sealedCommand(car, phone, commandId, expiresAt);
          const posted = await client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId: cid, expiresAt, box });
          expect(posted.status, posted.text).toBe(202);
          expect(posted.json()).toEqual({ commandId: cid });
          expectRefused(await client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId: cid, expiresAt, box }), 409, 'CK_CLOUD_CONFLICT', 'CK_PROTO_REPLAY');

          const resultUrl = `/v1/vehicles/${car.id}/commands/${cid}/result`;
          expect((await client.call(phone, 'GET', resultUrl)).status).toBe(204);

          const pending = await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/commands`);
          expect(pending.status).toBe(200);
          const commands = body(pending).commands as Record<string, unknown>[];
          expect(commands).toEqual([{ commandId: cid, box, caller: phone.hex, expiresAt }]);
          // the car opens and verifies it with core, exactly as it will in the sync worker
          const opened = openSealedBox(crypto, car.car.seed, decodeB64(box) ?? new Uint8Array(0));
          if (!opened.ok) throw opened.error;
          expect(verifyRemoteCommand(crypto, opened.value, car.vehicleId, Date.now()).ok).toBe(true);

          const result = signRemoteResult(crypto, car.car.seed, { vehicleId: car.vehicleId, commandId, time: Date.now(), status: 0, category: 0, payload: new Uint8Array(0) });
          const sealedResult = encodeB64(sealTo(crypto, random, phone.publicKey, result));
          expect((await client.call(car.car, 'PUT', resultUrl, { box: sealedResult })).status).toBe(204);
          expect((await client.call(car.car, 'PUT', resultUrl, { box: encodeB64(sealTo(crypto, random, phone.publicKey, result)) })).status).toBe(204);
          expect(body(await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/commands`)).commands).toEqual([]);

          const read = await client.call(phone, 'GET', resultUrl);
          expect(read.status).toBe(200);
          expect(read.json()).toEqual({ box: sealedResult });
          const openedResult = openSealedBox(crypto, phone.seed, decodeB64(sealedResult) ?? new Uint8Array(0));
          if (!openedResult.ok) throw openedResult.error;
          expect(verifyRemoteResult(crypto, openedResult.value, car.car.publicKey, commandId).ok).toBe(true);

          for (const other of [car.owner, car.car, newParty('stranger')]) expectRefused(await client.call(other, 'GET', resultUrl), 403, 'CK_CLOUD_FORBIDDEN');
        });

        it('only the car fetches commands and posts results; expired commands are not offered', async () => {
          const car = await registered();
          const phone = newParty('phone');
          const commandId = toHex(random(16));
          expectRefused(await client.call(car.owner, 'GET', `/v1/vehicles/${car.id}/commands`), 403, 'CK_CLOUD_FORBIDDEN');
          const box = sealedCommand(car, phone, random(16), Date.now() + 60_000);
          expect((await client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId, expiresAt: Date.now() + 2_000, box })).status).toBe(202);
          expectRefused(await client.call(phone, 'PUT', `/v1/vehicles/${car.id}/commands/${commandId}/result`, { box }), 403, 'CK_CLOUD_FORBIDDEN');
          expectRefused(await client.call(car.car, 'PUT', `/v1/vehicles/${car.id}/commands/${toHex(random(16))}/result`, { box }), 403, 'CK_CLOUD_FORBIDDEN');
          expect((body(await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/commands`)).commands as unknown[]).length).toBe(1);
          clockOffset = 5_000;
          try {
            expect(body(await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/commands`, undefined, { time: Date.now() + clockOffset })).commands).toEqual([]);
          } finally {
            clockOffset = 0;
          }
          expectRefused(await client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId: toHex(random(16)), expiresAt: Date.now() + 30 * 60_000, box }), 400, 'CK_CLOUD_BAD_REQUEST');
          expectRefused(await client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId: toHex(random(16)), expiresAt: Date.now() - 1, box }), 400, 'CK_CLOUD_BAD_REQUEST');
        });
      });

      describe('no enumeration', () => {
        it('a missing resource and a forbidden one get the identical 403', async () => {
          const car = await registered();
          const phone = newParty('phone');
          const stranger = newParty('stranger');
          const missing = newCar('missing').id;
          const commandId = toHex(random(16));
          const box = sealedCommand(car, phone, random(16), Date.now() + 60_000);
          expect((await client.call(phone, 'POST', `/v1/vehicles/${car.id}/commands`, { commandId, expiresAt: Date.now() + 60_000, box })).status).toBe(202);
          const pairs: { name: string; forbidden: () => Promise<Answer>; missing: () => Promise<Answer> }[] = [
            { name: 'GET key-list', forbidden: () => client.call(stranger, 'GET', `/v1/vehicles/${car.id}/key-list`), missing: () => client.call(stranger, 'GET', `/v1/vehicles/${missing}/key-list`) },
            {
              name: 'POST key-list',
              forbidden: () => client.call(stranger, 'POST', `/v1/vehicles/${car.id}/key-list`, { keyList: encodeB64(car.keyList.bytes) }),
              missing: () => client.call(stranger, 'POST', `/v1/vehicles/${missing}/key-list`, { keyList: encodeB64(car.keyList.bytes) }),
            },
            { name: 'GET audit', forbidden: () => client.call(stranger, 'GET', `/v1/vehicles/${car.id}/audit`), missing: () => client.call(stranger, 'GET', `/v1/vehicles/${missing}/audit`) },
            { name: 'POST audit', forbidden: () => client.call(stranger, 'POST', `/v1/vehicles/${car.id}/audit`, page(chain(1))), missing: () => client.call(stranger, 'POST', `/v1/vehicles/${missing}/audit`, page(chain(1))) },
            { name: 'GET commands', forbidden: () => client.call(stranger, 'GET', `/v1/vehicles/${car.id}/commands`), missing: () => client.call(stranger, 'GET', `/v1/vehicles/${missing}/commands`) },
            {
              name: 'GET result',
              forbidden: () => client.call(stranger, 'GET', `/v1/vehicles/${car.id}/commands/${commandId}/result`),
              missing: () => client.call(stranger, 'GET', `/v1/vehicles/${car.id}/commands/${toHex(random(16))}/result`),
            },
            {
              name: 'PUT result',
              forbidden: () => client.call(stranger, 'PUT', `/v1/vehicles/${car.id}/commands/${commandId}/result`, { box }),
              missing: () => client.call(car.car, 'PUT', `/v1/vehicles/${car.id}/commands/${toHex(random(16))}/result`, { box }),
            },
            {
              name: 'POST mailbox',
              forbidden: () => client.call(stranger, 'POST', `/v1/mailbox/${phone.hex}`, { vehicleId: car.id, box, expiresAt: Date.now() + 60_000 }),
              missing: () => client.call(stranger, 'POST', `/v1/mailbox/${phone.hex}`, { vehicleId: missing, box, expiresAt: Date.now() + 60_000 }),
            },
            { name: 'DELETE mailbox', forbidden: () => client.call(stranger, 'DELETE', `/v1/mailbox/${toHex(random(16))}`), missing: () => client.call(phone, 'DELETE', `/v1/mailbox/${toHex(random(16))}`) },
          ];
          for (const pair of pairs) {
            const a = await pair.forbidden();
            const b = await pair.missing();
            expect({ name: pair.name, status: a.status, body: a.text }).toEqual({ name: pair.name, status: 403, body: b.text });
            expect(codeOf(a)).toBe('CK_CLOUD_FORBIDDEN');
          }
        });
      });

      describe('the cloud does not re-sign', () => {
        it('a corrupted row is served as stored, and the reader’s verification catches it', async () => {
          const car = await registered();
          const stored = car.keyList.bytes;
          const corrupted = Uint8Array.from(stored);
          const last = corrupted.length - 1;
          corrupted[last] = (corrupted[last] ?? 0) ^ 0x01; // a signature byte
          await backend.exec('UPDATE vehicles SET key_list = ? WHERE vehicle_id = ?', [Buffer.from(corrupted), car.id]);
          for (const reader of [car.car, car.owner]) {
            const answer = await client.call(reader, 'GET', `/v1/vehicles/${car.id}/key-list`);
            expect(answer.status).toBe(200);
            expect(body(answer).keyList).toBe(encodeB64(corrupted));
            const decoded = decodeKeyList(decodeB64(String(body(answer).keyList)) ?? new Uint8Array(0));
            if (!decoded.ok) throw decoded.error;
            const accepted = acceptKeyList(crypto, decoded.value, undefined, car.vehicleId, { viaPairing: true });
            expect(accepted.ok ? 'accepted' : accepted.error.code).toBe('CK_CRED_BAD_SIGNATURE');
          }
          // a structurally broken row: only the car can still read it (nobody is an owner of garbage), as is
          const garbage = Uint8Array.of(7, 7, 7);
          await backend.exec('UPDATE vehicles SET key_list = ? WHERE vehicle_id = ?', [Buffer.from(garbage), car.id]);
          expect(body(await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`)).keyList).toBe(encodeB64(garbage));
          expect(decodeKeyList(garbage).ok).toBe(false);
          expectRefused(await client.call(car.owner, 'GET', `/v1/vehicles/${car.id}/key-list`), 403, 'CK_CLOUD_FORBIDDEN');
        });
      });

      describe('bad input', () => {
        it('is a 4xx with an error body, never a 5xx', async () => {
          const car = await registered();
          const url = `/v1/vehicles/${car.id}/key-list`;
          const big = { keyList: 'A'.repeat(70_000) };
          const cases: { name: string; answer: Promise<Answer>; status: number; reason: string }[] = [
            { name: 'body over 64 KiB', answer: client.call(car.owner, 'POST', url, big), status: 413, reason: 'body-limit' },
            { name: 'not JSON', answer: client.call(car.owner, 'POST', url, '{"keyList":'), status: 400, reason: 'json' },
            { name: 'not UTF-8', answer: client.call(car.owner, 'POST', url, Buffer.from([0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])), status: 400, reason: 'encoding' },
            { name: '__proto__ member', answer: client.call(car.owner, 'POST', url, '{"__proto__":{"x":1},"keyList":"AA"}'), status: 400, reason: 'json' },
            { name: 'unknown member', answer: client.call(car.owner, 'POST', url, { keyList: 'AA', extra: 1 }), status: 400, reason: 'schema' },
            { name: 'text/plain body', answer: client.call(car.owner, 'POST', url, 'keyList', { headers: { 'content-type': 'text/plain' } }), status: 400, reason: 'media-type' },
            { name: 'bad vehicle id', answer: client.call(car.owner, 'GET', '/v1/vehicles/XYZ/key-list'), status: 400, reason: 'schema' },
            { name: 'wait out of range', answer: client.call(car.owner, 'GET', `${url}?wait=61`), status: 400, reason: 'schema' },
            { name: 'unknown query parameter', answer: client.call(car.owner, 'GET', `${url}?x=1`), status: 400, reason: 'schema' },
            { name: 'no such route', answer: client.raw('GET', '/v1/nothing'), status: 404, reason: 'no-route' },
          ];
          for (const c of cases) {
            const answer = await c.answer;
            expect({ name: c.name, status: answer.status, reason: reasonOf(answer) }).toEqual({ name: c.name, status: c.status, reason: c.reason });
            expect(codeOf(answer)).toMatch(/^CK_CLOUD_/);
          }
        });
      });

      describe('operations', () => {
        it('/health, /ready, /v1/time and /metrics answer without a signature', async () => {
          expect((await client.raw('GET', '/health')).json()).toEqual({ ok: true });
          expect((await client.raw('GET', '/ready')).json()).toEqual({ ok: true, store: backend.name });
          const time = body(await client.raw('GET', '/v1/time')).time;
          expect(typeof time === 'number' && Math.abs(time - Date.now()) < 60_000).toBe(true);
          const metrics = await client.raw('GET', '/metrics');
          expect(metrics.status).toBe(200);
          expect(metrics.text).toContain('carkey_cloud_build_info{');
          expect(metrics.text).toContain('carkey_cloud_requests_total{');
          expect(metrics.text).not.toMatch(/[0-9a-f]{64}/);
        });
      });
    });
  }
}
