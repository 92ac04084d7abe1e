/**
 * The PostgreSQL nonce pool's connections commit with synchronous_commit=off,
 * set as a startup parameter (no query of ours runs beside the first one on
 * a new connection, which pg deprecates): the option string, and its effect
 * on a real server when PostgreSQL is running.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { nonceConnectionOptions } from '../../src/cloud/pg-store.js';
import { PG_ENABLED, PG_URL } from './helpers.js';

describe('nonce pool connection options', () => {
  it.each([
    [undefined, '-c synchronous_commit=off'],
    ['', '-c synchronous_commit=off'],
    ['  ', '-c synchronous_commit=off'],
    ['-c search_path=s1', '-c search_path=s1 -c synchronous_commit=off'],
  ])('caller options %j → %j', (caller, expected) => {
    expect(nonceConnectionOptions(caller)).toBe(expected);
  });

  it.skipIf(!PG_ENABLED)('a connection opened with them has synchronous_commit off and keeps the caller’s search_path', async () => {
    const client = new pg.Client({ connectionString: PG_URL, options: nonceConnectionOptions('-c search_path=carkey_probe') });
    await client.connect();
    try {
      const commit = await client.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
      const path = await client.query<{ search_path: string }>('SHOW search_path');
      expect(commit.rows[0]?.synchronous_commit).toBe('off');
      expect(path.rows[0]?.search_path).toBe('carkey_probe');
    } finally {
      await client.end();
    }
  });
});
