/**
 * Where each car was last reached on the radio (its address), so the next
 * connection can be started before the scan has heard the car: an initiator
 * that already waits for a known address connects at the car's first
 * advertising event, instead of the one after the scan heard it.
 *
 * Guarantees:
 * - An address is a hint, never trusted: the client still checks the car's
 *   rotating advertising id from the same scan and its signed CHALLENGE
 *   against the pinned key, exactly as for a scanned address.
 * - Best effort: a missing, unreadable or malformed file reads as "no hint";
 *   a failed write is ignored. Neither can fail a command.
 * - One small private JSON file in the key store home (0600, written
 *   atomically), `{format: 1, addresses: {vehicleIdHex: address}}`, at most
 *   MAX_HINTS entries, addresses checked against the sim radio's name rule
 *   and BLE's MAC form.
 */
import { join } from 'node:path';
import { ensurePrivateDir, readPrivateJson, writeFileAtomic } from './private-files.js';

export const ADDRESS_HINTS_FILE = 'addresses.json';
const FORMAT = 1;
const MAX_BYTES = 16 * 1024;
export const MAX_HINTS = 64;
/** sim radio names ([A-Za-z0-9._:-]{1,64}) cover BLE MAC addresses too */
const ADDRESS = /^[A-Za-z0-9._:-]{1,64}$/;
const VEHICLE_ID = /^[0-9a-f]{2,128}$/;

export interface AddressHints {
  get(vehicleIdHex: string): string | undefined;
  /** Remember `address` for the vehicle (a no-op when it is already the one stored). */
  set(vehicleIdHex: string, address: string): void;
}

/** The hints as stored, dropping anything malformed. Pure. */
export function readHints(json: Record<string, unknown>): Map<string, string> {
  const hints = new Map<string, string>();
  const addresses = json.addresses;
  if (typeof addresses !== 'object' || addresses === null || Array.isArray(addresses)) return hints;
  for (const [id, address] of Object.entries(addresses)) {
    if (hints.size >= MAX_HINTS) break;
    if (VEHICLE_ID.test(id) && typeof address === 'string' && ADDRESS.test(address)) hints.set(id, address);
  }
  return hints;
}

/** The hints with `address` set for `id`, newest last, at most MAX_HINTS. Pure. */
export function withHint(hints: ReadonlyMap<string, string>, id: string, address: string): Map<string, string> {
  const next = new Map([...hints].filter(([key]) => key !== id));
  next.set(id, address);
  while (next.size > MAX_HINTS) {
    const oldest = next.keys().next().value;
    if (oldest === undefined) break;
    next.delete(oldest);
  }
  return next;
}

/** File-backed hints in the key store `home`. */
export function fileAddressHints(home: string): AddressHints {
  const path = join(home, ADDRESS_HINTS_FILE);
  let cached: Map<string, string> | undefined;
  const load = (): Map<string, string> => {
    if (cached !== undefined) return cached;
    try {
      const read = readPrivateJson(home, path, MAX_BYTES, FORMAT);
      cached = read === undefined ? new Map() : readHints(read.json);
    } catch {
      cached = new Map();
    }
    return cached;
  };
  return {
    get: (id) => load().get(id),
    set: (id, address) => {
      if (!VEHICLE_ID.test(id) || !ADDRESS.test(address) || load().get(id) === address) return;
      cached = withHint(load(), id, address);
      try {
        ensurePrivateDir(home);
        writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify({ format: FORMAT, addresses: Object.fromEntries(cached) })}\n`));
      } catch {
        // a hint that could not be stored costs the next connection one advertising interval, nothing more
      }
    },
  };
}
