import { describe, expect, it } from 'vitest';
import { CarkeyError } from '../../src/core/errors.js';
import { CLOUD_DEFAULTS, DEFAULTS, loadConfigFile, resolveConfig } from '../../src/vehicle/config.js';
import { CONFIG_SCHEMA, editDistance, suggestKey } from '../../src/vehicle/config-schema.js';

function refusal(file: Record<string, unknown>, flags: Record<string, unknown> = {}): CarkeyError {
  try {
    resolveConfig(file, flags);
  } catch (error) {
    expect(error).toBeInstanceOf(CarkeyError);
    expect((error as CarkeyError).code).toBe('CK_CONFIG_INVALID');
    return error as CarkeyError;
  }
  throw new Error(`accepted ${JSON.stringify(file)}`);
}

const EXAMPLE = new URL('../../deploy/carkeyd.example.json', import.meta.url).pathname;

describe('config schema: no type coercion', () => {
  it.each([
    ['slots', '0x4'],
    ['slots', ' 4 '],
    ['slots', '4'],
    ['relayBoundMs', '5e2'],
    ['statusPort', '7341'],
    ['slots', 4.5],
    ['slots', true],
    ['passiveEnterRssi', '-60'],
  ])('refuses %s = %j, naming the field and the JSON type expected', (key, value) => {
    const error = refusal({ [key]: value });
    expect(error.message).toContain(`${key} = ${JSON.stringify(value)}`);
    expect(error.message).toContain('an integer');
    expect(error.details).toEqual({ path: key });
  });
  it('numbers in range still pass', () => {
    expect(resolveConfig({ slots: 4, relayBoundMs: 500, statusPort: 7341 }, {}).slots).toBe(4);
  });
  it('booleans in the cloud section are not strings', () => {
    expect(refusal({ cloud: { url: 'https://x', auditUpload: 'true' } }).message).toContain('cloud.auditUpload = "true": expected true or false');
    expect(refusal({ cloud: { url: 'https://x', remote: { lock: 'false' } } }).message).toContain('cloud.remote.lock');
  });
  it('a startPin given as a number is refused (leading zeros would be lost)', () => {
    expect(refusal({ startPin: 4711 }).message).toContain('startPin = 4711');
  });
});

describe('statusHost', () => {
  it('defaults to loopback and takes IP literals only', () => {
    expect(resolveConfig({}, {}).statusHost).toBe('127.0.0.1');
    expect(resolveConfig({ statusHost: '0.0.0.0' }, {}).statusHost).toBe('0.0.0.0');
    expect(resolveConfig({ statusHost: '::1' }, {}).statusHost).toBe('::1');
    expect(refusal({ statusHost: 'localhost' }).message).toContain('statusHost = "localhost": expected an IP address');
    expect(refusal({ statusHost: 7341 }).message).toContain('statusHost = 7341');
    for (const bad of ['999.1.1.1', '10.0.0', '1:2:3', 'fe80::1%eth0']) expect(refusal({ statusHost: bad }).message).toContain('expected an IP address');
    expect(resolveConfig({ statusHost: '192.168.4.20' }, {}).statusHost).toBe('192.168.4.20');
    expect(resolveConfig({ statusHost: '::' }, {}).statusHost).toBe('::');
  });
});

describe('config schema: flags', () => {
  it('flag strings are decimal integers only', () => {
    expect(resolveConfig({}, { statusPort: '7342' }).statusPort).toBe(7342);
    expect(resolveConfig({}, { statusPort: '-1' }).statusPort).toBe(-1);
    for (const bad of ['0x4', ' 4 ', '5e2', '', '7341.0', '+1']) expect(refusal({}, { statusPort: bad }).message).toContain(`statusPort = ${JSON.stringify(bad)}: expected a decimal integer`);
  });
});

describe('config schema: unknown keys', () => {
  it.each([
    [{ relayBoundMS: 10 }, 'unknown setting "relayBoundMS" in the config file (did you mean "relayBoundMs"?)'],
    [{ statusport: 1 }, '(did you mean "statusPort"?)'],
    [{ slot: 4 }, '(did you mean "slots"?)'],
    [{ keycard: [] }, '(did you mean "keycards"?)'],
    [{ cloud: { url: 'https://x', pollIntervalMS: 5 } }, 'unknown setting "cloud.pollIntervalMS" in the config file (did you mean "pollIntervalMs"?)'],
    [{ cloud: { url: 'https://x', remote: { unlcok: true } } }, 'unknown setting "cloud.remote.unlcok" in the config file (did you mean "unlock"?)'],
  ])('refuses %j with a suggestion', (file, expected) => {
    expect(refusal(file).message).toContain(expected);
  });
  it('gives no suggestion for a key nothing like a setting', () => {
    const error = refusal({ frobnicate: 1 });
    expect(error.message).toContain('unknown setting "frobnicate"');
    expect(error.message).not.toContain('did you mean');
  });
  it('edit distance: insertions, deletions, substitutions; case is free', () => {
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('relayBoundMS', 'relayBoundMs')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
    expect(suggestKey('slto', ['slots', 'name'])).toBe('slots');
    expect(suggestKey('zzzzzz', ['slots', 'name'])).toBeUndefined();
  });
});

describe('config schema: paths and placeholders', () => {
  it('names nested paths and list entries', () => {
    expect(refusal({ keycards: ['04A224B2C35E80', 'bad id'] }).message).toContain('keycards[1] = "bad id"');
    expect(refusal({ cloud: { url: 'https://x', remote: { unlock: 1 } } }).details).toEqual({ path: 'cloud.remote.unlock' });
  });
  it("the shipped example's placeholder keycard id is refused, saying what to do", () => {
    const error = refusal(loadConfigFile(EXAMPLE));
    expect(error.message).toContain('keycards[0] = "replace-with-your-keycard-id"');
    expect(error.message).toContain('placeholder');
  });
  it('the example with a real keycard id validates', () => {
    const config = resolveConfig({ ...loadConfigFile(EXAMPLE), keycards: ['04A224B2C35E80'] }, {});
    expect(config.transport).toBe('ble');
    expect(config.startPin).toBe('4711');
    expect(config.keycards).toEqual(['04A224B2C35E80']);
  });
  it('the schema covers every setting and every cloud setting (no drift from config.ts)', () => {
    const properties = CONFIG_SCHEMA.properties as Record<string, { properties?: Record<string, unknown> }>;
    expect(Object.keys(properties).sort()).toEqual(Object.keys(DEFAULTS).sort());
    expect(Object.keys(properties.cloud?.properties ?? {}).sort()).toEqual(['url', ...Object.keys(CLOUD_DEFAULTS)].sort());
  });
});
