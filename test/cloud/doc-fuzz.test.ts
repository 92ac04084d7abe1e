/**
 * Mutated valid documents and mutated valid JSON bodies at every cloud route
 * (issue 12), against a real `carkey-cloud serve` process (SQLite, rate
 * limits off) over a socket — test/cloud/fuzz.test.ts covers random JSON
 * through inject() on SQLite and PostgreSQL.
 *
 * Each case (one seed → `FuzzRandom`) takes a genuine request — a car
 * statement, an owner-signed key list, a grant sealed to a friend's mailbox,
 * a phone-signed remote command sealed to the car, the car's sealed result,
 * a car-signed audit page (entries + checkpoint), or a plain read — and
 * mutates it: the document's bytes (test/helpers/frame-mutator.ts edits, then
 * base64 again), the JSON body (a key dropped, added or renamed to
 * `__proto__`/`constructor`, a value of another type, huge, negative,
 * fractional or empty, a base64 string edited), the JSON text itself, the
 * ids in the path, or the signer. The request is then signed correctly, so
 * it reaches validation and the handlers.
 *
 * Property: never a 5xx; every 4xx carries a catalog error body (`error.code`
 * CK_…, message, details); /health answers between batches; afterwards the
 * process is still running, its stderr has no uncaught error, and the car's
 * genuine key list is still served.
 *
 * Size: CARKEY_CLOUD_FUZZ_CASES (600 in `npm test`, 10,000 in `npm run
 * soak`); fast-check prints the seed and the failing case's seed;
 * CARKEY_FUZZ_SEED reruns a run. Needs `npm run build`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProgram, stopProgram, type Started } from '../../firmware-sim/rig.js';
import { encodeAuditPage } from '../../src/core/audit-page.js';
import { AUDIT_GENESIS_HASH, auditLinkHash, signCheckpoint, type AuditEntry } from '../../src/core/audit.js';
import { toHex } from '../../src/core/bytes.js';
import { signRemoteCommand, signRemoteResult } from '../../src/core/cloud-docs.js';
import { acceptKeyList, decodeKeyList } from '../../src/core/credentials.js';
import { Command } from '../../src/core/roles.js';
import { sealTo } from '../../src/core/sealed-box.js';
import { signVehicleStatement } from '../../src/core/vehicle-statement.js';
import { decodeB64, encodeB64 } from '../../src/cloud/encoding.js';
import { FuzzRandom, mutateFrame } from '../helpers/frame-mutator.js';
import { Client, crypto, listFor, newCar, newParty, random, socketTransport, type Answer, type Car, type Party } from './helpers.js';
import { grantFor, pairedWorld, PROPERTY_SEED } from '../helpers/core-harness.js';

const CASES = Math.max(1, Number(process.env.CARKEY_CLOUD_FUZZ_CASES ?? '600'));
const SEED = Number(process.env.CARKEY_FUZZ_SEED ?? String(PROPERTY_SEED));

let cloud: Started;
let dir: string;
let client: Client;
let car: Car;
let friend: Party;
let commandId: string;
let itemId: string;

/** A genuine request: who signs it, where it goes, its JSON body (or raw text body). */
interface Genuine {
  readonly name: string;
  readonly signer: () => Party;
  readonly method: string;
  readonly url: () => string;
  readonly body: () => Record<string, unknown> | string | undefined;
}

function auditPage(): string {
  const entries: AuditEntry[] = [];
  let previous = AUDIT_GENESIS_HASH;
  for (let seq = 1; seq <= 4; seq++) {
    const record = { seq, time: Date.now() - 1000 + seq, kind: 'decision', fields: { command: 'unlock', result: 'allow', n: seq } };
    const hash = auditLinkHash(crypto, previous, record);
    entries.push({ ...record, hash });
    previous = hash;
  }
  const last = entries[3];
  if (last === undefined) throw new Error('no entries');
  return new TextDecoder().decode(encodeAuditPage({ entries, checkpoints: [signCheckpoint(crypto, car.car.seed, last.seq, last.hash)], last: last.seq }));
}

const world = pairedWorld();
const GENUINE: readonly Genuine[] = [
  { name: 'statement', signer: () => car.car, method: 'PUT', url: () => `/v1/vehicles/${car.id}`, body: () => ({ statement: encodeB64(signVehicleStatement(crypto, car.car.seed, Date.now(), car.keyList.bytes)) }) },
  { name: 'key list', signer: () => car.owner, method: 'POST', url: () => `/v1/vehicles/${car.id}/key-list`, body: () => ({ keyList: encodeB64(listFor(car, car.owner, { version: 2 }).bytes) }) },
  { name: 'get key list', signer: () => car.car, method: 'GET', url: () => `/v1/vehicles/${car.id}/key-list`, body: () => undefined },
  {
    name: 'grant to mailbox',
    signer: () => car.owner,
    method: 'POST',
    url: () => `/v1/mailbox/${friend.hex}`,
    // A grant is core bytes; this one is for another (test) car, which the cloud cannot tell from inside the box.
    body: () => ({ vehicleId: car.id, box: encodeB64(sealTo(crypto, random, friend.publicKey, grantFor(world, { name: 'friend', seed: friend.seed, publicKey: friend.publicKey }).bytes)), expiresAt: Date.now() + 600_000 }),
  },
  { name: 'read mailbox', signer: () => friend, method: 'GET', url: () => '/v1/mailbox', body: () => undefined },
  { name: 'delete mailbox item', signer: () => friend, method: 'DELETE', url: () => `/v1/mailbox/${itemId}`, body: () => undefined },
  { name: 'audit page', signer: () => car.car, method: 'POST', url: () => `/v1/vehicles/${car.id}/audit`, body: () => auditPage() },
  { name: 'read audit', signer: () => car.owner, method: 'GET', url: () => `/v1/vehicles/${car.id}/audit?from=1&limit=10`, body: () => undefined },
  {
    name: 'remote command',
    signer: () => friend,
    method: 'POST',
    url: () => `/v1/vehicles/${car.id}/commands`,
    body: () => {
      const id = random(16);
      const expiresAt = Date.now() + 600_000;
      const signed = signRemoteCommand(crypto, friend.seed, { vehicleId: car.vehicleId, commandId: id, issuedAt: Date.now(), expiresAt, credentialKind: 0, credential: new Uint8Array(0), command: Command.lock, args: new Uint8Array(0) });
      return { commandId: toHex(id), expiresAt, box: encodeB64(sealTo(crypto, random, car.car.publicKey, signed)) };
    },
  },
  { name: 'fetch commands', signer: () => car.car, method: 'GET', url: () => `/v1/vehicles/${car.id}/commands`, body: () => undefined },
  {
    name: 'command result',
    signer: () => car.car,
    method: 'PUT',
    url: () => `/v1/vehicles/${car.id}/commands/${commandId}/result`,
    body: () => {
      const id = Uint8Array.from(Buffer.from(commandId, 'hex'));
      const result = signRemoteResult(crypto, car.car.seed, { vehicleId: car.vehicleId, commandId: id, time: Date.now(), status: 0, category: 0, payload: new Uint8Array(0) });
      return { box: encodeB64(sealTo(crypto, random, friend.publicKey, result)) };
    },
  },
  { name: 'read result', signer: () => friend, method: 'GET', url: () => `/v1/vehicles/${car.id}/commands/${commandId}/result`, body: () => undefined },
  { name: 'time', signer: () => friend, method: 'GET', url: () => '/v1/time', body: () => undefined },
];

// --- mutations -----------------------------------------------------------------------------------

const ODD_VALUES: readonly unknown[] = [null, true, false, 0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER + 2, 1e308, -1e308, '', ' ', 'x'.repeat(20_000), '\u0000', '💥', [], {}, [[[[]]]], { a: { b: { c: {} } } }, '=', 'AAAA', '!!!!', '0'.repeat(64)];

function mutateString(r: FuzzRandom, text: string): string {
  const bytes = decodeB64(text);
  if (bytes !== undefined && bytes.length > 0 && r.chance(0.8)) return encodeB64(mutateFrame(r, bytes, []).bytes);
  const edits = [(): string => text + r.pick(['=', '==', '!', ' ', '\n', 'A']), (): string => text.slice(0, r.below(text.length + 1)), (): string => text.toUpperCase(), (): string => `${text}${text}`, (): string => text.replace(/[A-Za-z]/, '-')];
  return r.pick(edits)();
}

function mutateValue(r: FuzzRandom, value: unknown): unknown {
  if (typeof value === 'string') return r.chance(0.7) ? mutateString(r, value) : r.pick(ODD_VALUES);
  if (typeof value === 'number') return r.chance(0.6) ? r.pick([value + 1, value - 1, 0, -value, value * 1000, value + 0.5, 2 ** 63, Number.MAX_SAFE_INTEGER + 1]) : r.pick(ODD_VALUES);
  if (Array.isArray(value)) return r.chance(0.5) && value.length > 0 ? (value as unknown[]).map((v) => (r.chance(0.3) ? mutateValue(r, v) : v)) : r.pick(ODD_VALUES);
  return r.pick(ODD_VALUES);
}

/** One edit of a JSON body: returns an object or the raw text to send. */
function mutateBody(r: FuzzRandom, body: Record<string, unknown> | string | undefined): { kind: string; body: Record<string, unknown> | string | undefined } {
  if (body === undefined) return { kind: 'none', body };
  if (typeof body === 'string') {
    // The audit page travels as JSON text: edit its bytes, or edit it as JSON.
    if (r.chance(0.5)) return { kind: 'text', body: new TextDecoder().decode(mutateFrame(r, new TextEncoder().encode(body), []).bytes) };
    const parsed = JSON.parse(body) as Record<string, unknown>;
    return mutateBody(r, auditJsonEdit(r, parsed));
  }
  const keys = Object.keys(body);
  const key = r.pick(keys.length > 0 ? keys : ['x']);
  const copy: Record<string, unknown> = { ...body };
  switch (r.pick(['value', 'value', 'value', 'drop', 'add', 'proto', 'text', 'array-body'] as const)) {
    case 'value':
      copy[key] = mutateValue(r, copy[key]);
      return { kind: `value:${key}`, body: copy };
    case 'drop':
      return { kind: `drop:${key}`, body: Object.fromEntries(Object.entries(copy).filter(([k]) => k !== key)) };
    case 'add':
      copy[r.pick(['extra', '', 'statement', 'keyList', 'box', 'entries'])] = r.pick(ODD_VALUES);
      return { kind: 'add', body: copy };
    case 'proto':
      return { kind: 'proto', body: { ...copy, [r.pick(['__proto__', 'constructor', 'prototype'])]: { polluted: true, [key]: copy[key] } } };
    case 'text':
      return { kind: 'json-text', body: new TextDecoder().decode(mutateFrame(r, new TextEncoder().encode(JSON.stringify(copy)), []).bytes) };
    case 'array-body':
      return { kind: 'array-body', body: JSON.stringify([copy]) };
  }
}

/** Edit an audit page's structure: an entry's hash, seq or fields, a checkpoint, `last`. */
function auditJsonEdit(r: FuzzRandom, page: Record<string, unknown>): Record<string, unknown> {
  const entries = Array.isArray(page.entries) ? (page.entries as Record<string, unknown>[]) : [];
  const at = r.below(entries.length);
  const entry = entries[at];
  if (entry !== undefined && r.chance(0.6)) {
    const field = r.pick(Object.keys(entry));
    const changed = { ...entry, [field]: mutateValue(r, entry[field]) };
    return { ...page, entries: entries.map((e, i) => (i === at ? changed : e)) };
  }
  return page;
}

function mutatePath(r: FuzzRandom, url: string): string {
  return url.replace(/[0-9a-f]{16,}/, (hex) => r.pick([hex.slice(1), `${hex}00`, hex.toUpperCase(), hex.replace(/^./, 'g'), '..', '%00', encodeURIComponent('../../etc')]));
}

/** Query parameters of the wrong shape (a held `wait` only within the test's patience). */
function mutateQuery(r: FuzzRandom, url: string): string {
  const name = r.pick(['from', 'limit', 'wait', 'x', 'from[]', '']);
  const value = r.pick(['-1', '0', '1.5', '99999999999999999999', 'abc', '', '%00', '1e3', '0x10', '1', '2']);
  return `${url}${url.includes('?') ? '&' : '?'}${name}=${value}${r.chance(0.3) ? `&${name}=${value}` : ''}`;
}

// --- the suite ------------------------------------------------------------------------------------

function catalogBody(answer: Answer): boolean {
  try {
    const body = answer.json() as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    return typeof body.error?.code === 'string' && /^CK_[A-Z0-9_]+$/.test(body.error.code) && typeof body.error.message === 'string' && typeof body.error.details === 'object';
  } catch {
    return false;
  }
}

describe('carkey-cloud serve: mutated valid documents and bodies at every route', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'carkey-doc-fuzz-'));
    cloud = await startProgram('src/cli/carkey-cloud.js', ['serve', '--port', '0', '--host', '127.0.0.1', '--data', dir, '--rate-key', '0', '--rate-ip', '0', '--log-level', 'error'], { env: { DATABASE_URL: '' } });
    client = new Client(socketTransport(String(cloud.ready.url)));
    car = newCar('doc-fuzz');
    friend = newParty('friend');
    expect((await client.register(car)).status).toBe(200);
    const command = GENUINE.find((g) => g.name === 'remote command');
    if (command === undefined) throw new Error('no remote command');
    const posted = await client.call(friend, 'POST', command.url(), command.body());
    expect(posted.status, posted.text).toBe(202);
    commandId = (posted.json() as { commandId: string }).commandId;
    const grant = GENUINE.find((g) => g.name === 'grant to mailbox');
    if (grant === undefined) throw new Error('no grant');
    const item = await client.call(car.owner, 'POST', grant.url(), grant.body());
    expect(item.status, item.text).toBeLessThan(300);
    itemId = (item.json() as { id: string }).id;
  }, 60_000);

  afterAll(async () => {
    await stopProgram(cloud);
    rmSync(dir, { recursive: true, force: true });
  });

  it('every genuine request is accepted as is (the mutations start from valid documents)', async () => {
    for (const genuine of GENUINE) {
      const answer = await client.call(genuine.signer(), genuine.method, genuine.url(), genuine.body());
      expect(answer.status, `${genuine.name}: ${answer.text}`).toBeLessThan(300);
    }
  });

  it(`${CASES} mutated requests: never a 5xx, every refusal a catalog error, the process keeps serving`, async () => {
    const statuses = new Map<number, number>();
    const kinds = new Map<string, number>();
    let done = 0;
    for (let round = 0; done < CASES; round++) {
      const runs = Math.min(200, CASES - done);
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 0x7fffffff }), async (seed) => {
          const r = new FuzzRandom(seed);
          const genuine = r.pick(GENUINE);
          // GET carries no body (fetch refuses one); a DELETE sometimes gets one anyway.
          const edit = genuine.method === 'DELETE' && r.chance(0.5) ? { kind: 'body-on-delete', body: { extra: r.pick(ODD_VALUES) } } : mutateBody(r, genuine.body());
          const bodyless = genuine.body() === undefined;
          const url = r.chance(bodyless ? 0.35 : 0.1) ? mutatePath(r, genuine.url()) : bodyless && r.chance(0.6) ? mutateQuery(r, genuine.url()) : genuine.url();
          const signer = r.chance(0.1) ? r.pick([car.car, car.owner, friend, newParty('stranger')]) : genuine.signer();
          kinds.set(`${genuine.name}/${edit.kind.split(':')[0] ?? ''}`, (kinds.get(`${genuine.name}/${edit.kind.split(':')[0] ?? ''}`) ?? 0) + 1);
          const answer = await client.call(signer, genuine.method, url, edit.body);
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          const what = `case seed ${seed}: ${genuine.method} ${url} (${genuine.name}, ${edit.kind}) → ${answer.status} ${answer.text.slice(0, 300)}`;
          expect(answer.status, what).toBeLessThan(500);
          if (answer.status >= 400) expect(catalogBody(answer), what).toBe(true);
        }),
        { seed: SEED + round, numRuns: runs, endOnFailure: true },
      );
      done += runs;
      expect((await client.raw('GET', '/health')).status).toBe(200);
    }
    process.stdout.write(`\ncloud doc fuzz: ${done} requests to carkey-cloud serve; statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`);
    expect(cloud.child.exitCode).toBe(null);
    expect(cloud.stderr()).not.toMatch(/uncaught|unhandled|"level":(50|60)/i);
    // The process still serves the genuine list (never a mutated one).
    const list = await client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list`);
    expect(list.status).toBe(200);
    const served = decodeKeyList(decodeB64((list.json() as { keyList: string }).keyList) ?? new Uint8Array(0));
    const accepted = served.ok ? acceptKeyList(crypto, served.value, car.keyList, car.vehicleId) : served;
    expect(accepted.ok, 'the served key list is a genuine owner-signed successor').toBe(true);
  }, 600_000);
});
