/**
 * The web app's cloud settings and guards, without a browser (src/web/app/cloud.ts
 * with injected settings): URL normalisation (the CLI's rules), and what is
 * refused before any request is made — no cloud set, and a device-bound key
 * asked to open what is sealed to it.
 */
import { describe, expect, it } from 'vitest';
import { createCrypto } from '../../src/core/crypto/index.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { seedSigner } from '../../src/core/signer.js';
import { CLOUD_URL_KEY, normaliseCloudUrl, SEALED_NEEDS_SEED, WebCloud } from '../../src/web/app/cloud.js';
import type { VehicleStore } from '../../src/phone/client.js';
import type { ShareAcceptor } from '../../src/web/app/cloud.js';

const crypto = createCrypto('node');

interface MemorySettings {
  readonly map: Map<string, string>;
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function memorySettings(): MemorySettings {
  const map = new Map<string, string>();
  return {
    map,
    getItem: (key: string) => map.get(key) ?? null,
    setItem: (key: string, value: string) => void map.set(key, value),
    removeItem: (key: string) => void map.delete(key),
  };
}

function cloudFor(seed: Uint8Array | undefined, settings = memorySettings()): WebCloud {
  const signer = seedSigner(crypto, new Uint8Array(32).fill(7));
  return new WebCloud({
    crypto,
    random: (n) => new Uint8Array(n).fill(1),
    clock: () => 1_700_000_000_000,
    // Neither is reached by what these tests do (settings, and refusals before any request).
    store: undefined as unknown as VehicleStore,
    phone: undefined as unknown as ShareAcceptor,
    key: () => ({ signer, seed }),
    progress: () => undefined,
    settings,
  });
}

describe('normaliseCloudUrl', () => {
  it.each([
    ['http://127.0.0.1:8443', 'http://127.0.0.1:8443'],
    ['https://cloud.example.net/', 'https://cloud.example.net'],
    ['  https://cloud.example.net/carkey//  ', 'https://cloud.example.net/carkey'],
    ['HTTPS://Cloud.Example.NET:443/x', 'https://cloud.example.net/x'],
  ])('%s → %s', (input, expected) => {
    expect(normaliseCloudUrl(input)).toBe(expected);
  });

  it.each([
    ['', 'an http:// or https:// URL'],
    ['cloud.example.net', 'is not a URL'],
    ['ftp://cloud.example.net', 'got ftp:'],
    ['https://user:pw@cloud.example.net', 'user name or password'],
    ['https://cloud.example.net/?k=1', 'query or fragment'],
    ['https://cloud.example.net/#x', 'query or fragment'],
    [`https://cloud.example.net/${'a'.repeat(1100)}`, 'an http:// or https:// URL'],
  ])('refuses %j (CK_USAGE: %s)', (input, reason) => {
    let thrown: unknown;
    try {
      normaliseCloudUrl(input);
    } catch (error) {
      thrown = error;
    }
    expect(isCarkeyError(thrown, 'CK_USAGE')).toBe(true);
    expect((thrown as Error).message).toContain(reason);
  });
});

describe('WebCloud settings and guards', () => {
  it('stores the normalised URL, reads it back and forgets it; a stored value that no longer parses is no cloud', () => {
    const settings = memorySettings();
    const cloud = cloudFor(undefined, settings);
    expect(cloud.url()).toBeUndefined();
    expect(cloud.use('https://cloud.example.net/')).toBe('https://cloud.example.net');
    expect(settings.map.get(CLOUD_URL_KEY)).toBe('https://cloud.example.net');
    expect(cloud.url()).toBe('https://cloud.example.net');
    cloud.forget();
    expect(cloud.url()).toBeUndefined();
    settings.map.set(CLOUD_URL_KEY, 'javascript:alert(1)');
    expect(cloud.url()).toBeUndefined();
  });

  it('with no cloud set, a cloud action is CK_USAGE (details.missing = cloud)', async () => {
    const error = await cloudFor(new Uint8Array(32)).check().catch((thrown: unknown) => thrown);
    expect(isCarkeyError(error, 'CK_USAGE')).toBe(true);
    expect((error as { details?: Record<string, unknown> }).details?.missing).toBe('cloud');
  });

  it('a device-bound key (no seed) is told why the inbox and remote commands need a passphrase key', async () => {
    const settings = memorySettings();
    settings.map.set(CLOUD_URL_KEY, 'http://127.0.0.1:9');
    const cloud = cloudFor(undefined, settings);
    const inbox = await cloud.inbox().catch((thrown: unknown) => thrown);
    expect(isCarkeyError(inbox, 'CK_USAGE')).toBe(true);
    expect((inbox as Error).message).toContain(SEALED_NEEDS_SEED);
    let remote: unknown;
    try {
      await cloud.remote({} as never, 'lock', undefined);
    } catch (error) {
      remote = error;
    }
    expect(isCarkeyError(remote, 'CK_USAGE')).toBe(true);
  });
});
