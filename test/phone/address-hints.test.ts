/**
 * Tests of the address hints (src/phone/address-hints.ts): only well-formed
 * entries are read, the newest MAX_HINTS are kept, the file is private and
 * survives a reload, and a missing or damaged file is "no hint", never an error.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADDRESS_HINTS_FILE, fileAddressHints, MAX_HINTS, readHints, withHint } from '../../src/phone/address-hints.js';

const ID = 'ab'.repeat(16);
const OTHER = 'cd'.repeat(16);

function privateHome(): string {
  const home = join(mkdtempSync(join(tmpdir(), 'carkey-hints-')), 'home');
  mkdirSync(home, { mode: 0o700 });
  return home;
}

describe('readHints', () => {
  it.each([
    { what: 'no addresses field', json: { format: 1 }, want: [] },
    { what: 'addresses not an object', json: { format: 1, addresses: ['x'] }, want: [] },
    { what: 'a good entry', json: { format: 1, addresses: { [ID]: 'Test-Car' } }, want: [[ID, 'Test-Car']] },
    { what: 'a BLE address', json: { format: 1, addresses: { [ID]: 'aa:bb:cc:dd:ee:ff' } }, want: [[ID, 'aa:bb:cc:dd:ee:ff']] },
    { what: 'an address with a space', json: { format: 1, addresses: { [ID]: 'Test Car' } }, want: [] },
    { what: 'an address that is not a string', json: { format: 1, addresses: { [ID]: 7 } }, want: [] },
    { what: 'a vehicle id that is not hex', json: { format: 1, addresses: { 'not-hex': 'car' } }, want: [] },
    { what: 'a 65-character address', json: { format: 1, addresses: { [ID]: 'a'.repeat(65) } }, want: [] },
  ])('$what', ({ json, want }) => {
    expect([...readHints(json)]).toEqual(want);
  });
});

describe('withHint', () => {
  it('replaces an entry and moves it to the end', () => {
    const hints = withHint(new Map([[ID, 'a'], [OTHER, 'b']]), ID, 'c');
    expect([...hints]).toEqual([[OTHER, 'b'], [ID, 'c']]);
  });

  it(`keeps the newest ${MAX_HINTS}`, () => {
    let hints = new Map<string, string>();
    for (let i = 0; i < MAX_HINTS + 5; i++) hints = withHint(hints, i.toString(16).padStart(4, '0'), `car-${i}`);
    expect(hints.size).toBe(MAX_HINTS);
    expect(hints.has('0000')).toBe(false);
    expect(hints.get((MAX_HINTS + 4).toString(16).padStart(4, '0'))).toBe(`car-${MAX_HINTS + 4}`);
  });
});

describe('fileAddressHints', () => {
  it('stores a private file that a new reader sees', () => {
    const home = privateHome();
    fileAddressHints(home).set(ID, 'Test-Car');
    const path = join(home, ADDRESS_HINTS_FILE);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ format: 1, addresses: { [ID]: 'Test-Car' } });
    const again = fileAddressHints(home);
    expect(again.get(ID)).toBe('Test-Car');
    expect(again.get(OTHER)).toBeUndefined();
  });

  it('ignores a malformed address or vehicle id instead of storing it', () => {
    const home = privateHome();
    const hints = fileAddressHints(home);
    hints.set(ID, 'bad address');
    hints.set('xyz', 'car');
    expect(hints.get(ID)).toBeUndefined();
    expect(() => statSync(join(home, ADDRESS_HINTS_FILE))).toThrow();
  });

  it.each([
    { what: 'not JSON', text: '{', mode: 0o600 },
    { what: 'another format', text: '{"format":2,"addresses":{}}', mode: 0o600 },
    { what: 'readable by others', text: `{"format":1,"addresses":{"${ID}":"Test-Car"}}`, mode: 0o644 },
  ])('reads a file that is $what as no hint, and can still store one', ({ text, mode }) => {
    const home = privateHome();
    const path = join(home, ADDRESS_HINTS_FILE);
    writeFileSync(path, text);
    chmodSync(path, mode);
    const hints = fileAddressHints(home);
    expect(hints.get(ID)).toBeUndefined();
    expect(() => hints.set(ID, 'Car-2')).not.toThrow();
    expect(hints.get(ID)).toBe('Car-2');
  });

  it('a home that does not exist yet is no hint; set creates it privately', () => {
    const home = join(mkdtempSync(join(tmpdir(), 'carkey-hints-')), 'new-home');
    const hints = fileAddressHints(home);
    expect(hints.get(ID)).toBeUndefined();
    hints.set(ID, 'Test-Car');
    expect(statSync(home).mode & 0o777).toBe(0o700);
    expect(fileAddressHints(home).get(ID)).toBe('Test-Car');
  });
});
