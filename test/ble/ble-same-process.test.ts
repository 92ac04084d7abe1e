/**
 * Both transports in one process (as a daemon and a test rig would use them),
 * each on its own btvirt controller: a raw-chunk exchange without framing, and
 * closing the central leaves the peripheral's controller alive.
 *
 * Loud when btvirt is unavailable: fails with CARKEY_REQUIRE_BTVIRT=1,
 * skipped otherwise.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBtvirt, type Btvirt } from '../../firmware-sim/btvirt/launcher.js';
import { createBleCentral } from '../../src/transport/ble-central.js';
import { createBlePeripheral } from '../../src/transport/ble-peripheral.js';
import type { CentralLink, PeripheralLink, PeripheralTransport } from '../../src/transport/types.js';
import { announceUnavailable, emulatorOrSkip } from '../helpers/ble-process.js';

let btvirt: Btvirt | undefined;
let unavailableReason: string | undefined;
let peripheral: PeripheralTransport | undefined;

beforeAll(async () => {
  try {
    btvirt = await startBtvirt();
  } catch (error) {
    unavailableReason = error instanceof Error ? error.message : String(error);
    announceUnavailable('emulated BLE tier (test/ble/ble-same-process.test.ts)', unavailableReason);
  }
});

afterAll(async () => {
  await peripheral?.stop();
  await btvirt?.stop();
});

function nextValue<T>(register: (handler: (value: T) => void) => unknown): Promise<T> {
  return new Promise((resolve) => register(resolve));
}

describe('bleno and noble transports in one process', () => {
  it('exchange raw chunks of mtu - 3 bytes both ways, and each closes only its own controller', async ({ skip }) => {
    const emulator = emulatorOrSkip(btvirt, unavailableReason, skip);
    const car = await createBlePeripheral({ adapter: 'hci0', hciSocketPath: emulator.leSocketPath });
    peripheral = car;
    const carLink = nextValue<PeripheralLink>((h) => car.onLink(h));
    await car.start({ localName: 'same-proc', serviceData: Uint8Array.of(7, 7, 7) });

    const phone = await createBleCentral({ adapter: 'hci0', hciSocketPath: emulator.leSocketPath });
    const { match } = await phone.scan({ timeoutMs: 5000, accept: (d) => d.localName === 'same-proc' });
    expect(match?.serviceData).toEqual(Uint8Array.of(7, 7, 7));
    if (match === undefined) return;
    const link: CentralLink = await phone.connect(match, { timeoutMs: 5000 });
    const onCar = await carLink;
    const subscribedOrNow = nextValue<undefined>((h) => onCar.onSubscribed(() => h(undefined)));
    await subscribedOrNow;
    expect(link.mtu()).toBeGreaterThan(23);
    expect(onCar.mtu()).toBe(link.mtu());

    // raw chunks at the size limit, no framing involved
    const size = link.mtu() - 3;
    const up = Uint8Array.from({ length: size }, (_, i) => i & 0xff);
    const carGot = nextValue<Uint8Array>((h) => onCar.onChunk(h));
    await link.write(up);
    expect(await carGot).toEqual(up);
    const down = Uint8Array.from({ length: size }, (_, i) => 255 - (i & 0xff));
    const phoneGot = nextValue<Uint8Array>((h) => link.onChunk(h));
    await onCar.notify(down);
    expect(await phoneGot).toEqual(down);

    // one byte too many is refused on both sides, before touching the radio
    await expect(link.write(new Uint8Array(size + 1))).rejects.toMatchObject({ code: 'CK_TRANSPORT_CHUNK_TOO_LARGE' });
    await expect(onCar.notify(new Uint8Array(size + 1))).rejects.toMatchObject({ code: 'CK_TRANSPORT_CHUNK_TOO_LARGE' });

    const carClosed = nextValue<string>((h) => onCar.onClose(h));
    await phone.close();
    expect(await carClosed).toBe('remote');
    await expect(onCar.notify(Uint8Array.of(1))).rejects.toMatchObject({ code: 'CK_TRANSPORT_DISCONNECTED' });

    // the car's controller survived the phone's close: a new phone finds it
    const phone2 = await createBleCentral({ adapter: 'hci0', hciSocketPath: emulator.leSocketPath });
    try {
      const again = await phone2.scan({ timeoutMs: 5000, accept: (d) => d.localName === 'same-proc' });
      expect(again.match?.serviceData).toEqual(Uint8Array.of(7, 7, 7));
    } finally {
      await phone2.close();
    }
  });
});
