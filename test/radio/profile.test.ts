/**
 * Link profiles: the config file format (the documented example parses),
 * strict validation, resolution order (defaults < peripheral < central <
 * pair) and the RSSI time origin.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LINK_PROFILE, DEFAULT_RADIO_SETTINGS, ProfileTable, parseRadioConfig, type RadioConfig } from '../../firmware-sim/radio/profile.js';

function config(json: unknown): RadioConfig {
  const parsed = parseRadioConfig(json);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

function rejection(json: unknown): string {
  const parsed = parseRadioConfig(json);
  if (parsed.ok) throw new Error('expected a rejection');
  expect(parsed.error.code).toBe('CK_CONFIG_INVALID');
  return parsed.error.message;
}

describe('radio config file', () => {
  it('accepts the example from docs/firmware-sim.md', () => {
    const text = readFileSync(path.resolve(import.meta.dirname, '../../docs/firmware-sim.md'), 'utf8');
    const match = /<!-- radio-config-example -->\s*```json\n([\s\S]*?)```/.exec(text);
    expect(match, 'docs must contain the radio config example').not.toBeNull();
    const parsed = config(JSON.parse(match?.[1] ?? '{}'));
    expect(parsed.links.length).toBeGreaterThan(0);
  });

  it('an empty object means all defaults', () => {
    const parsed = config({});
    expect(parsed.radio).toEqual(DEFAULT_RADIO_SETTINGS);
    const table = new ProfileTable(parsed, 0);
    expect(table.resolve('car', 'phone').settings).toEqual(DEFAULT_LINK_PROFILE);
  });

  it.each([
    [{ unknown: 1 }, 'unknown field "unknown"'],
    [{ defaults: { connectionIntervalMs: 5 } }, 'connectionIntervalMs'],
    [{ defaults: { connectionIntervalMs: 12 } }, 'multiple of 1.25'],
    [{ defaults: { lossRate: 1.5 } }, 'lossRate'],
    [{ defaults: { lossrate: 0.1 } }, 'unknown field "lossrate"'],
    [{ defaults: { rssi: 'nearby' } }, 'RSSI profile'],
    [{ defaults: { mute: 'yes' } }, 'mute'],
    [{ links: [{ lossRate: 0.1 }] }, 'must name a peripheral, a central or both'],
    [{ links: [{ peripheral: 'car one' }] }, 'peripheral'],
    [{ links: 'car' }, 'links'],
    [{ radio: { sensitivityDbm: -200 } }, 'sensitivityDbm'],
    [[], 'JSON object'],
  ])('rejects %j', (json, fragment) => {
    expect(rejection(json)).toContain(fragment);
  });
});

describe('ProfileTable', () => {
  const table = (): ProfileTable =>
    new ProfileTable(
      config({
        defaults: { connectionIntervalMs: 15, rssi: 'fixed:-70' },
        links: [
          { peripheral: 'car', lossRate: 0.1, jitterMs: 2 },
          { central: 'phone', lossRate: 0.2, pdusPerEvent: 2 },
          { peripheral: 'car', central: 'phone', lossRate: 0.3 },
        ],
      }),
      100,
    );

  it('resolves defaults < peripheral < central < pair', () => {
    const t = table();
    expect(t.resolve('car', 'phone').settings).toMatchObject({ connectionIntervalMs: 15, lossRate: 0.3, jitterMs: 2, pdusPerEvent: 2 });
    expect(t.resolve('car', 'tablet').settings).toMatchObject({ lossRate: 0.1, jitterMs: 2, pdusPerEvent: DEFAULT_LINK_PROFILE.pdusPerEvent });
    expect(t.resolve('van', 'phone').settings).toMatchObject({ lossRate: 0.2, jitterMs: DEFAULT_LINK_PROFILE.jitterMs });
    expect(t.resolve('van', 'tablet').settings).toMatchObject({ lossRate: 0, connectionIntervalMs: 15 });
  });

  it('apply merges into one layer and returns what that selector resolves to', () => {
    const t = table();
    const applied = t.apply({ peripheral: 'car', central: 'phone' }, { mute: true }, 500);
    expect(applied.ok && applied.value.settings).toMatchObject({ mute: true, lossRate: 0.3 });
    expect(t.resolve('car', 'tablet').settings.mute).toBe(false);
    const defaults = t.apply({}, { jitterMs: 0 }, 600);
    expect(defaults.ok && defaults.value.settings.jitterMs).toBe(0);
    expect(t.resolve('van', 'tablet').settings.jitterMs).toBe(0);
    // the peripheral layer still wins for car
    expect(t.resolve('car', 'tablet').settings.jitterMs).toBe(2);
  });

  it('the RSSI origin is when the rssi field was last set for the winning layer', () => {
    const t = table();
    expect(t.resolve('car', 'phone').rssiOrigin).toBe(100);
    t.apply({ central: 'phone' }, { rssi: 'approach' }, 250);
    expect(t.resolve('car', 'phone')).toMatchObject({ rssiOrigin: 250, rssi: { kind: 'approach' } });
    t.apply({ central: 'phone' }, { lossRate: 0 }, 900);
    expect(t.resolve('car', 'phone').rssiOrigin).toBe(250);
    t.apply({ central: 'phone' }, { rssi: 'approach' }, 1000);
    expect(t.resolve('car', 'phone').rssiOrigin).toBe(1000);
  });

  it('rejects an invalid RSSI spec without changing anything', () => {
    const t = table();
    const applied = t.apply({}, { rssi: 'walk-away:-90:-40:100' }, 5);
    expect(applied.ok).toBe(false);
    if (!applied.ok) expect(applied.error.code).toBe('CK_CONFIG_INVALID');
    expect(t.resolve('van', 'tablet').settings.rssi).toBe('fixed:-70');
  });

  it('radio settings merge', () => {
    const t = table();
    expect(t.setRadio({ advertisingIntervalMs: 20 })).toEqual({ ...DEFAULT_RADIO_SETTINGS, advertisingIntervalMs: 20 });
  });
});
