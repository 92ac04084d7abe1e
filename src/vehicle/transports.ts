/**
 * Chooses the car's radio: real BLE (bleno, loaded lazily so a machine without
 * Bluetooth never loads it) or the simulated radio broker.
 *
 * Guarantees: with `--transport ble` and no usable adapter this fails with
 * CK_TRANSPORT_NO_ADAPTER naming the adapter and pointing at `--transport sim`.
 */
import type { DaemonConfig } from './config.js';
import type { PeripheralTransport } from '../transport/types.js';
import type { Logger } from 'pino';

export async function openPeripheral(config: DaemonConfig, logger: Logger): Promise<PeripheralTransport> {
  if (config.transport === 'sim') {
    const { createSimPeripheral } = await import('../transport/sim.js');
    return createSimPeripheral({ socketPath: config.radio, name: config.name.replace(/[^A-Za-z0-9._:-]/g, '-') || 'car' });
  }
  const { createBlePeripheral } = await import('../transport/ble-peripheral.js');
  return createBlePeripheral({ adapter: config.adapter, hciSocketPath: config.hciSocket, logger });
}
