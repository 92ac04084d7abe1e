/**
 * The `carkey-cloud` program as an operator runs it (the compiled dist/
 * program; `npm test` builds first): --help and --version on every command,
 * exit codes that mean something, `migrate` on SQLite and on PostgreSQL
 * (DATABASE_URL), `serve` printing its one ready line, serving, and stopping
 * on SIGTERM with exit 0 after releasing a held long-poll.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../src/core/bytes.js';
import { runCli, startProgram, stopProgram, type Started } from '../../firmware-sim/rig.js';
import { packageVersion } from '../../src/cloud/version.js';
import { Client, newCar, pgBackend, PG_ENABLED, PG_URL, random, socketTransport, type Backend } from './helpers.js';

const CLI = 'src/cli/carkey-cloud.js';

describe('carkey-cloud command line', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'carkey-cloud-cli-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--help and --version on every command', async () => {
    for (const args of [['--help'], ['serve', '--help'], ['migrate', '--help']]) {
      const result = await runCli(CLI, args);
      expect({ args, code: result.code }).toEqual({ args, code: 0 });
      expect(result.stdout).toContain('Usage: carkey-cloud');
    }
    for (const args of [['--version'], ['serve', '--version'], ['migrate', '--version']]) {
      const result = await runCli(CLI, args);
      expect({ args, code: result.code, out: result.stdout.trim() }).toEqual({ args, code: 0, out: packageVersion() });
    }
  });

  it('exit codes: 2 for bad flags and configuration, 6 for an unreachable database', async () => {
    const cases: { args: string[]; env?: NodeJS.ProcessEnv; code: number; says: string }[] = [
      { args: ['serve'], code: 2, says: 'CK_USAGE' },
      { args: ['serve', '--port', 'x', '--data', dir], code: 2, says: '--port' },
      { args: ['serve', '--nope'], code: 2, says: 'unknown option' },
      { args: ['frobnicate'], code: 2, says: 'unknown command' },
      { args: ['serve', '--data', dir], env: { DATABASE_URL: PG_URL }, code: 2, says: 'not both' },
      { args: ['migrate'], env: { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' }, code: 6, says: 'CK_CLOUD_STORE' },
    ];
    for (const c of cases) {
      const result = await runCli(CLI, c.args, c.env === undefined ? {} : { env: c.env });
      expect({ args: c.args, code: result.code }).toEqual({ args: c.args, code: c.code });
      expect(result.stderr).toContain(c.says);
    }
  });

  it('a port in use is exit 2 with the port named', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const result = await runCli(CLI, ['serve', '--port', String(port), '--data', join(dir, 'busy')]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`port ${port}`);
    } finally {
      blocker.close();
    }
  });

  it('migrate --json on SQLite reports the schema version', async () => {
    const result = await runCli(CLI, ['migrate', '--data', join(dir, 'migrated'), '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ ok: true, store: 'sqlite', schemaVersion: 1 });
  });

  it('serve: one ready line, answers, and on SIGTERM releases a long-poll and exits 0', async () => {
    let server: Started | undefined;
    try {
      server = await startProgram(CLI, ['serve', '--port', '0', '--data', join(dir, 'serve'), '--log-level', 'warn']);
      const { url, store, pid } = server.ready as { url: string; store: string; pid: number };
      expect(store).toBe('sqlite');
      expect(pid).toBe(server.child.pid);
      const client = new Client(socketTransport(url));
      expect((await client.raw('GET', '/health')).status).toBe(200);
      const car = newCar();
      expect((await client.register(car)).status).toBe(200);
      const held = client.call(car.car, 'GET', `/v1/vehicles/${car.id}/key-list?wait=60`, undefined, { headers: { 'if-none-match': '"0.1"' } });
      // the wait is parked once the metrics say so
      for (let i = 0; i < 500; i++) {
        const metrics = await client.raw('GET', '/metrics');
        if (/carkey_cloud_long_polls 1/.test(metrics.text)) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const code = await stopProgram(server);
      expect(code).toBe(0);
      expect((await held).status).toBe(304);
    } finally {
      await stopProgram(server, 'SIGKILL');
    }
  });
});

describe.runIf(PG_ENABLED)('carkey-cloud with DATABASE_URL', () => {
  let backend: Backend;
  let url: string;
  beforeAll(async () => {
    backend = pgBackend();
    await (await backend.open()).close();
    url = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${backend.location}`)}`;
  });
  afterAll(() => backend.cleanup());

  it('migrate and serve against PostgreSQL', async () => {
    const migrated = await runCli(CLI, ['migrate', '--json'], { env: { DATABASE_URL: url } });
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(JSON.parse(migrated.stdout)).toEqual({ ok: true, store: 'postgres', schemaVersion: 1 });
    let server: Started | undefined;
    try {
      server = await startProgram(CLI, ['serve', '--port', '0', '--log-level', 'warn'], { env: { DATABASE_URL: url } });
      expect(server.ready.store).toBe('postgres');
      const client = new Client(socketTransport(String(server.ready.url)));
      expect((await client.raw('GET', '/ready')).json()).toEqual({ ok: true, store: 'postgres' });
      const car = newCar(`cli-${toHex(random(4))}`);
      expect((await client.register(car)).status).toBe(200);
      expect((await backend.exec('SELECT vehicle_id FROM vehicles WHERE vehicle_id = ?', [car.id])).length).toBe(1);
      expect(await stopProgram(server)).toBe(0);
    } finally {
      await stopProgram(server, 'SIGKILL');
    }
  });
});
