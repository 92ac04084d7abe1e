/**
 * The settings of the simulated radio's timing and fault model, as they
 * travel in control messages and the broker's configuration file.
 *
 * Guarantees: `readLinkProfilePatch` and `readRadioSettingsPatch` accept only
 * known fields with in-range values (the ranges below are the documented
 * ones, see docs/firmware-sim.md "Simulated radio"); anything else throws a
 * `CarkeyError` naming the field. The RSSI profile string is only
 * length-checked here; the broker parses it.
 */

import { FieldReader, type JsonObject } from './sim-json.js';
import type { ErrorCode } from '../core/errors.js';

/** Timing and faults of the links between one peripheral and one central. */
export interface LinkProfileSettings {
  /** Connection interval in ms: 7.5 to 100, a multiple of 1.25 (as on the air). */
  readonly connectionIntervalMs: number;
  /** Host-side latency added to each delivery, uniform in [0, jitterMs]. */
  readonly jitterMs: number;
  /** Probability that a connection event fails (0..1); 1 silences the link. */
  readonly lossRate: number;
  /** How many PDUs each direction can carry in one connection event. */
  readonly pdusPerEvent: number;
  /** Link is lost after this long without a successful connection event (100..32000 ms). */
  readonly supervisionTimeoutMs: number;
  /** RSSI profile: `fixed:-60`, `approach[...]`, `walk-away[...]`, `cabin[...]`. */
  readonly rssi: string;
  /** The peripheral advertises but never answers a connection request. */
  readonly mute: boolean;
  /** Every link of this pair goes silent this long after it opens (null: never). */
  readonly dropAfterConnectMs: number | null;
}

export type LinkProfilePatch = { -readonly [K in keyof LinkProfileSettings]?: LinkProfileSettings[K] };

/** Radio-wide settings. */
export interface RadioSettings {
  /** Advertising interval in ms (20..10240); each event adds 0-10 ms advDelay. */
  readonly advertisingIntervalMs: number;
  /** How often each open link reports RSSI to both ends (10..60000 ms). */
  readonly rssiReportIntervalMs: number;
  /** Weakest mean RSSI (dBm) at which anything is received (-127..0). */
  readonly sensitivityDbm: number;
}

export type RadioSettingsPatch = { -readonly [K in keyof RadioSettings]?: RadioSettings[K] };

export const CONNECTION_INTERVAL_STEP_MS = 1.25;
export const MAX_RSSI_SPEC_LENGTH = 64;
const MAX_DROP_AFTER_MS = 86_400_000;

export const LINK_PROFILE_KEYS: readonly (keyof LinkProfileSettings)[] = [
  'connectionIntervalMs',
  'jitterMs',
  'lossRate',
  'pdusPerEvent',
  'supervisionTimeoutMs',
  'rssi',
  'mute',
  'dropAfterConnectMs',
];

/** Reads the link-profile fields of `reader`'s object (others are left to the caller). */
export function readLinkProfileFields(reader: FieldReader): LinkProfilePatch {
  const patch: LinkProfilePatch = {};
  const interval = reader.optionalNumber('connectionIntervalMs', 7.5, 100);
  if (interval !== undefined) {
    const steps = interval / CONNECTION_INTERVAL_STEP_MS;
    if (Math.abs(steps - Math.round(steps)) > 1e-9) {
      throw reader.bad('connectionIntervalMs', 'must be a multiple of 1.25 ms');
    }
    patch.connectionIntervalMs = interval;
  }
  const jitter = reader.optionalNumber('jitterMs', 0, 1000);
  if (jitter !== undefined) patch.jitterMs = jitter;
  const loss = reader.optionalNumber('lossRate', 0, 1);
  if (loss !== undefined) patch.lossRate = loss;
  const pdus = reader.optionalInteger('pdusPerEvent', 1, 32);
  if (pdus !== undefined) patch.pdusPerEvent = pdus;
  const supervision = reader.optionalNumber('supervisionTimeoutMs', 100, 32_000);
  if (supervision !== undefined) patch.supervisionTimeoutMs = supervision;
  const rssi = reader.optionalString('rssi', MAX_RSSI_SPEC_LENGTH);
  if (rssi !== undefined) patch.rssi = rssi;
  const mute = reader.optionalBoolean('mute');
  if (mute !== undefined) patch.mute = mute;
  if (reader.has('dropAfterConnectMs')) {
    const value = reader.raw('dropAfterConnectMs');
    if (value === null) patch.dropAfterConnectMs = null;
    else patch.dropAfterConnectMs = reader.number('dropAfterConnectMs', 0, MAX_DROP_AFTER_MS);
  }
  return patch;
}

/** A whole object that must hold only link-profile fields. */
export function readLinkProfilePatch(object: JsonObject, where: string, code: ErrorCode): LinkProfilePatch {
  const reader = new FieldReader(object, where, code);
  const patch = readLinkProfileFields(reader);
  reader.assertNoUnknownKeys();
  return patch;
}

export function readRadioSettingsPatch(object: JsonObject, where: string, code: ErrorCode): RadioSettingsPatch {
  const reader = new FieldReader(object, where, code);
  const patch: RadioSettingsPatch = {};
  const adv = reader.optionalNumber('advertisingIntervalMs', 20, 10_240);
  if (adv !== undefined) patch.advertisingIntervalMs = adv;
  const report = reader.optionalNumber('rssiReportIntervalMs', 10, 60_000);
  if (report !== undefined) patch.rssiReportIntervalMs = report;
  const sensitivity = reader.optionalInteger('sensitivityDbm', -127, 0);
  if (sensitivity !== undefined) patch.sensitivityDbm = sensitivity;
  reader.assertNoUnknownKeys();
  return patch;
}
