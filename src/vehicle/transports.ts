/**
 * Chooses the car's radio: real BLE (bleno, loaded lazily so a machine without
 * Bluetooth never loads it) or the simulated radio broker.
 *
 * Guarantees: with `--transport ble` and no usable adapter this fails with
 * CK_TRANSPORT_NO_ADAPTER naming the adapter and pointing at `--transport sim`.
 * The car accepts an ATT MTU of at most CAR_MAX_MTU on every transport, so a
 * phone negotiates the same chunk size over BLE and the sim radio
 * (docs/protocol.md §4).
 */
import type { DaemonConfig } from './config.js';
import type { PeripheralTransport } from '../transport/types.js';
import type { Logger } from 'pino';

/** The largest ATT MTU the car accepts (a phone asking for more gets this). */
export const CAR_MAX_MTU = 256;

export async function openPeripheral(config: DaemonConfig, logger: Logger): Promise<PeripheralTransport> {
  if (config.transport === 'sim') {
    const { createSimPeripheral } = await import('../transport/sim.js');
    return createSimPeripheral({ socketPath: config.radio, name: config.name.replace(/[^A-Za-z0-9._:-]/g, '-') || 'car', maxMtu: CAR_MAX_MTU });
  }
  const { createBlePeripheral } = await import('../transport/ble-peripheral.js');
  return createBlePeripheral({ adapter: config.adapter, hciSocketPath: config.hciSocket, maxMtu: CAR_MAX_MTU, logger });
}
