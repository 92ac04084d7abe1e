/**
 * The carkey advertisement as legacy BLE advertising data (31 bytes of
 * advertisement + 31 bytes of scan response), for the bleno peripheral.
 *
 * Guarantees: the advertisement carries the flags and the service data under
 * `GATT.service` (AD type 0x21), so a passive scanner gets the rotating
 * identifier; the scan response carries the complete 128-bit service UUID list
 * and the local name (Complete Local Name, or a Shortened Local Name cut on a
 * UTF-8 character boundary when longer than MAX_LOCAL_NAME bytes). Service
 * data longer than MAX_SERVICE_DATA is refused (CK_CONFIG_INVALID), never cut.
 * Neither part ever exceeds 31 bytes. Pure.
 */
import { CarkeyError } from '../core/errors.js';
import { GATT, type Advertisement } from './types.js';

/** Service data bytes that fit the advertising packet next to the flags (31 - 3 - 2 - 16). */
export const MAX_SERVICE_DATA = 10;
/** Local-name bytes that fit the scan response next to the 128-bit UUID (31 - 18 - 2). */
export const MAX_LOCAL_NAME = 11;

const AD_FLAGS = 0x01;
const AD_COMPLETE_128_UUIDS = 0x07;
const AD_SHORT_NAME = 0x08;
const AD_COMPLETE_NAME = 0x09;
const AD_SERVICE_DATA_128 = 0x21;
const FLAGS_LE_GENERAL_NO_BREDR = 0x06;

/** 128-bit UUID string → 16 bytes little-endian, as carried in AD structures. */
export function uuidToLittleEndian(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new CarkeyError('CK_INTERNAL', `not a 128-bit UUID: ${uuid}`);
  return Buffer.from(hex, 'hex').reverse();
}

function adStructure(type: number, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(payload.length + 1, type), payload]);
}

/** Cut UTF-8 `name` to at most `max` bytes without splitting a character. */
function utf8Prefix(name: string, max: number): Buffer {
  let out = Buffer.alloc(0);
  for (const char of name) {
    const next = Buffer.concat([out, Buffer.from(char, 'utf8')]);
    if (next.length > max) break;
    out = next;
  }
  return out;
}

/** Encode the advertising packet and scan response for `advertisement`. */
export function encodeAdvertisement(advertisement: Advertisement): { readonly advertisementData: Buffer; readonly scanData: Buffer } {
  if (advertisement.serviceData.length > MAX_SERVICE_DATA) {
    throw new CarkeyError(
      'CK_CONFIG_INVALID',
      `advertised service data is ${advertisement.serviceData.length} bytes; at most ${MAX_SERVICE_DATA} fit a legacy advertisement`,
    );
  }
  const service = uuidToLittleEndian(GATT.service);
  const advertisementData = Buffer.concat([
    adStructure(AD_FLAGS, Buffer.of(FLAGS_LE_GENERAL_NO_BREDR)),
    adStructure(AD_SERVICE_DATA_128, Buffer.concat([service, advertisement.serviceData])),
  ]);
  const fullName = Buffer.from(advertisement.localName, 'utf8');
  const name = fullName.length <= MAX_LOCAL_NAME ? fullName : utf8Prefix(advertisement.localName, MAX_LOCAL_NAME);
  const scanParts = [adStructure(AD_COMPLETE_128_UUIDS, service)];
  if (name.length > 0) scanParts.push(adStructure(name.length === fullName.length ? AD_COMPLETE_NAME : AD_SHORT_NAME, name));
  return { advertisementData, scanData: Buffer.concat(scanParts) };
}
