/**
 * Lazy loading and error mapping of the real BLE stacks, and the advertising
 * layout of the bleno peripheral. Runs anywhere; no emulator needed.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCarkeyError } from '../../src/core/errors.js';
import { createBleCentral } from '../../src/transport/ble-central.js';
import { mapLoadError, parseAdapter } from '../../src/transport/ble-load.js';
import { encodeAdvertisement, MAX_LOCAL_NAME, MAX_SERVICE_DATA, uuidToLittleEndian } from '../../src/transport/ble-advertising.js';
import { GATT } from '../../src/transport/types.js';

/** Split an AD payload into [type, data] structures. */
function adStructures(data: Buffer): [number, string][] {
  const out: [number, string][] = [];
  let i = 0;
  while (i < data.length) {
    const length = data[i] ?? 0;
    out.push([data[i + 1] ?? -1, data.subarray(i + 2, i + 1 + length).toString('hex')]);
    i += 1 + length;
  }
  expect(i).toBe(data.length);
  return out;
}

describe('adapter names', () => {
  it('maps hciN (or N) to the device index and refuses anything else', () => {
    expect(parseAdapter('hci0')).toBe(0);
    expect(parseAdapter('hci12')).toBe(12);
    expect(parseAdapter('1')).toBe(1);
    for (const bad of ['', 'hci', 'usb0', 'hci-1', 'hci0; rm']) {
      expect(() => parseAdapter(bad)).toThrow(expect.objectContaining({ code: 'CK_CONFIG_INVALID' }));
    }
  });
});

describe('load failures become CK_TRANSPORT_NO_ADAPTER naming the adapter and --transport sim', () => {
  const cases: [string, unknown, RegExp][] = [
    ['no kernel Bluetooth', Object.assign(new Error('EAFNOSUPPORT, Address family not supported by protocol'), { code: 'EAFNOSUPPORT' }), /no Bluetooth support/],
    ['native module not built', Object.assign(new Error("Cannot find module '@abandonware/bluetooth-hci-socket'"), { code: 'MODULE_NOT_FOUND' }), /not built/],
    ['no permission', Object.assign(new Error('EPERM'), { code: 'EPERM' }), /permission denied/],
    ['no such adapter', Object.assign(new Error('ENODEV'), { code: 'ENODEV' }), /no such adapter/],
    ['anything else', new Error('boom'), /failed to start: boom/],
  ];
  for (const [name, error, detail] of cases) {
    it(name, () => {
      const mapped = mapLoadError(error, 'hci1', '@abandonware/noble');
      expect(mapped.code).toBe('CK_TRANSPORT_NO_ADAPTER');
      expect(mapped.message).toContain('hci1');
      expect(mapped.message).toContain('--transport sim');
      expect(mapped.message).toMatch(detail);
      expect(mapped.exitCode).toBe(6);
    });
  }

  it('an emulated socket path that is not a socket is refused before noble loads', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'carkey-ble-load-'));
    try {
      const notSocket = path.join(dir, 'bt-server-le');
      await writeFile(notSocket, '');
      const attempt = createBleCentral({ adapter: 'hci0', hciSocketPath: notSocket });
      await expect(attempt).rejects.toSatisfy((error: unknown) => isCarkeyError(error, 'CK_TRANSPORT_NO_ADAPTER') && error.message.includes(notSocket));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('on a machine without kernel Bluetooth, creating a kernel central fails cleanly', async ({ skip }) => {
    // With a real adapter present this would open it; only meaningful where there is none.
    if (existsSync('/sys/class/bluetooth')) skip('this machine has kernel Bluetooth');
    const attempt = createBleCentral({ adapter: 'hci0', readyTimeoutMs: 2000 });
    await expect(attempt).rejects.toSatisfy(
      (error: unknown) => isCarkeyError(error, 'CK_TRANSPORT_NO_ADAPTER') && error.message.includes('hci0') && error.message.includes('--transport sim'),
    );
  });
});

describe('advertising layout (legacy 31 + 31 bytes)', () => {
  const service = uuidToLittleEndian(GATT.service).toString('hex');

  it('puts flags and service data in the advertisement, UUID and name in the scan response', () => {
    const { advertisementData, scanData } = encodeAdvertisement({ localName: 'carkey', serviceData: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) });
    expect(adStructures(advertisementData)).toEqual([
      [0x01, '06'],
      [0x21, `${service}0102030405060708`],
    ]);
    expect(adStructures(scanData)).toEqual([
      [0x07, service],
      [0x09, Buffer.from('carkey').toString('hex')],
    ]);
    expect(service).toBe(Buffer.from(GATT.service.replace(/-/g, ''), 'hex').reverse().toString('hex'));
  });

  it('fits the limits exactly and never exceeds 31 bytes', () => {
    const { advertisementData, scanData } = encodeAdvertisement({ localName: 'x'.repeat(MAX_LOCAL_NAME), serviceData: new Uint8Array(MAX_SERVICE_DATA) });
    expect(advertisementData.length).toBe(31);
    expect(scanData.length).toBe(31);
  });

  it('shortens a long name on a character boundary and marks it shortened', () => {
    const { scanData } = encodeAdvertisement({ localName: 'carkey-äöü-garage', serviceData: new Uint8Array(0) });
    const name = adStructures(scanData)[1];
    expect(name?.[0]).toBe(0x08);
    const text = Buffer.from(name?.[1] ?? '', 'hex').toString('utf8');
    expect('carkey-äöü-garage'.startsWith(text)).toBe(true);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_LOCAL_NAME);
    expect(scanData.length).toBeLessThanOrEqual(31);
  });

  it('refuses service data that cannot fit', () => {
    expect(() => encodeAdvertisement({ localName: 'carkey', serviceData: new Uint8Array(MAX_SERVICE_DATA + 1) })).toThrow(
      expect.objectContaining({ code: 'CK_CONFIG_INVALID' }),
    );
  });
});
