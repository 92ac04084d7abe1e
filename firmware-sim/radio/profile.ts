/**
 * Link profiles of the simulated radio: defaults, the configuration file, and
 * per-(peripheral, central) overrides changed at run time.
 *
 * Guarantees: a profile resolves in a fixed order (defaults < peripheral-only
 * override < central-only override < pair override), so the most specific
 * setting wins; every stored setting passed range validation and its RSSI
 * spec parses. The RSSI time origin is the moment the `rssi` field was last
 * set for that layer (broker start for the configuration file), so applying
 * `approach` starts a new approach. Pure: the time is passed in.
 */

import { CarkeyError, ok, type Result } from '../../src/core/errors.js';
import { FieldReader, isJsonObject } from '../../src/transport/sim-json.js';
import type { LinkSelector } from '../../src/transport/sim-protocol.js';
import { NAME_PATTERN } from '../../src/transport/sim-protocol.js';
import {
  readLinkProfileFields,
  readRadioSettingsPatch,
  type LinkProfilePatch,
  type LinkProfileSettings,
  type RadioSettings,
  type RadioSettingsPatch,
} from '../../src/transport/sim-profile.js';
import { parseRssiProfile, type RssiProfile } from './rssi.js';

export const DEFAULT_LINK_PROFILE: LinkProfileSettings = {
  connectionIntervalMs: 30,
  jitterMs: 1,
  lossRate: 0,
  pdusPerEvent: 4,
  supervisionTimeoutMs: 2000,
  rssi: 'fixed:-60',
  mute: false,
  dropAfterConnectMs: null,
};

export const DEFAULT_RADIO_SETTINGS: RadioSettings = {
  advertisingIntervalMs: 100,
  rssiReportIntervalMs: 250,
  sensitivityDbm: -100,
};

const MAX_LINK_ENTRIES = 1000;

export interface LinkOverride extends LinkSelector {
  readonly patch: LinkProfilePatch;
}

export interface RadioConfig {
  readonly radio: RadioSettings;
  readonly defaults: LinkProfilePatch;
  readonly links: readonly LinkOverride[];
}

export const EMPTY_RADIO_CONFIG: RadioConfig = { radio: DEFAULT_RADIO_SETTINGS, defaults: {}, links: [] };

export interface ResolvedProfile {
  readonly settings: LinkProfileSettings;
  readonly rssi: RssiProfile;
  /** Broker time at which the RSSI profile started. */
  readonly rssiOrigin: number;
}

/** Parse the JSON of a `--config` file (see docs). */
export function parseRadioConfig(json: unknown): Result<RadioConfig> {
  try {
    if (!isJsonObject(json)) throw new CarkeyError('CK_CONFIG_INVALID', 'radio config must be a JSON object');
    const top = new FieldReader(json, 'radio config', 'CK_CONFIG_INVALID');
    const radioObject = top.optionalObject('radio');
    const radio = { ...DEFAULT_RADIO_SETTINGS, ...(radioObject === undefined ? {} : readRadioSettingsPatch(radioObject, 'radio', 'CK_CONFIG_INVALID')) };
    const defaultsObject = top.optionalObject('defaults');
    const defaults = defaultsObject === undefined ? {} : readPatchObject(defaultsObject, 'defaults');
    const links = top.has('links')
      ? top.array('links', MAX_LINK_ENTRIES).map((entry, index) => readLinkEntry(entry, `links[${index}]`))
      : [];
    top.assertNoUnknownKeys();
    return ok({ radio, defaults, links });
  } catch (error) {
    if (error instanceof CarkeyError) return { ok: false, error };
    throw error;
  }
}

function readPatchObject(object: Readonly<Record<string, unknown>>, where: string): LinkProfilePatch {
  const reader = new FieldReader(object, where, 'CK_CONFIG_INVALID');
  const patch = readLinkProfileFields(reader);
  reader.assertNoUnknownKeys();
  checkPatch(patch, where);
  return patch;
}

function readLinkEntry(entry: unknown, where: string): LinkOverride {
  if (!isJsonObject(entry)) throw new CarkeyError('CK_CONFIG_INVALID', `${where} must be an object`);
  const reader = new FieldReader(entry, where, 'CK_CONFIG_INVALID');
  const peripheral = reader.optionalString('peripheral', 64, NAME_PATTERN);
  const central = reader.optionalString('central', 64, NAME_PATTERN);
  if (peripheral === undefined && central === undefined) {
    throw new CarkeyError('CK_CONFIG_INVALID', `${where} must name a peripheral, a central or both (use "defaults" for all links)`);
  }
  const patch = readLinkProfileFields(reader);
  reader.assertNoUnknownKeys();
  checkPatch(patch, where);
  return { peripheral, central, patch };
}

/** Semantic checks beyond field ranges (the RSSI spec must parse). */
function checkPatch(patch: LinkProfilePatch, where: string): void {
  if (patch.rssi === undefined) return;
  const parsed = parseRssiProfile(patch.rssi);
  if (!parsed.ok) throw new CarkeyError('CK_CONFIG_INVALID', `${where}: ${parsed.error.message}`);
}

interface Layer {
  patch: LinkProfilePatch;
  rssiOrigin: number;
}

const WILDCARD = '*';

function layerKey(peripheral: string | undefined, central: string | undefined): string {
  return `${peripheral ?? WILDCARD}\u0000${central ?? WILDCARD}`;
}

export class ProfileTable {
  private readonly layers = new Map<string, Layer>();
  private radioSettings: RadioSettings;

  constructor(config: RadioConfig, now: number) {
    this.radioSettings = config.radio;
    this.layers.set(layerKey(undefined, undefined), { patch: { ...DEFAULT_LINK_PROFILE, ...config.defaults }, rssiOrigin: now });
    for (const entry of config.links) this.merge(entry, entry.patch, now);
  }

  radio(): RadioSettings {
    return this.radioSettings;
  }

  setRadio(patch: RadioSettingsPatch): RadioSettings {
    this.radioSettings = { ...this.radioSettings, ...patch };
    return this.radioSettings;
  }

  /** Merge `patch` into the layer named by `selector`; returns the profile that layer now resolves to. */
  apply(selector: LinkSelector, patch: LinkProfilePatch, now: number): Result<ResolvedProfile> {
    try {
      checkPatch(patch, 'profile');
    } catch (error) {
      if (error instanceof CarkeyError) return { ok: false, error };
      throw error;
    }
    this.merge(selector, patch, now);
    return ok(this.resolveSelector(selector));
  }

  /** The profile in force between `peripheral` and `central`. */
  resolve(peripheral: string, central: string): ResolvedProfile {
    return this.resolveSelector({ peripheral, central });
  }

  private resolveSelector(selector: LinkSelector): ResolvedProfile {
    const keys = [layerKey(undefined, undefined)];
    if (selector.peripheral !== undefined) keys.push(layerKey(selector.peripheral, undefined));
    if (selector.central !== undefined) keys.push(layerKey(undefined, selector.central));
    if (selector.peripheral !== undefined && selector.central !== undefined) keys.push(layerKey(selector.peripheral, selector.central));
    let settings: LinkProfileSettings = DEFAULT_LINK_PROFILE;
    let rssiOrigin = 0;
    for (const key of keys) {
      const layer = this.layers.get(key);
      if (layer === undefined) continue;
      settings = { ...settings, ...layer.patch };
      if (layer.patch.rssi !== undefined) rssiOrigin = layer.rssiOrigin;
    }
    const rssi = parseRssiProfile(settings.rssi);
    // Every stored spec was validated, so this cannot fail; fall back defensively.
    return { settings, rssi: rssi.ok ? rssi.value : { kind: 'fixed', dbm: -60 }, rssiOrigin };
  }

  private merge(selector: LinkSelector, patch: LinkProfilePatch, now: number): void {
    const key = layerKey(selector.peripheral, selector.central);
    const existing = this.layers.get(key);
    const merged = { ...(existing?.patch ?? {}), ...patch };
    const rssiOrigin = patch.rssi !== undefined ? now : (existing?.rssiOrigin ?? now);
    this.layers.set(key, { patch: merged, rssiOrigin });
  }
}
