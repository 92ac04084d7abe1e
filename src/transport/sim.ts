/**
 * The simulated-radio transport: what the car daemon and the phone client use
 * instead of BLE when started with the simulated radio (`--transport sim`).
 *
 * Guarantees: the exported transports implement the interfaces of
 * `types.ts` exactly, so session code runs unchanged on the simulator; the
 * radio itself (timing, loss, RSSI, faults) is modelled by the broker process
 * `firmware-sim/radio/main.ts`, documented in docs/firmware-sim.md
 * ("Simulated radio"). Nothing here holds process-global state.
 */

export { SimPeripheralLink, SimPeripheralTransport, createSimPeripheral, type RssiSample, type SimPeripheralOptions } from './sim-peripheral.js';
export { SimCentralLink, SimCentralTransport, createSimCentral, type SimCentralOptions } from './sim-central.js';
export {
  RadioControl,
  dropLinks,
  radioStatus,
  radioTime,
  setLinkProfile,
  setRadioSettings,
  type DropOptions,
  type LinkProfileChange,
  type LinkProfilePatch,
  type LinkProfileSettings,
  type LinkSelector,
  type RadioSettings,
  type RadioSettingsPatch,
  type RadioStatus,
} from './sim-control.js';
export type { HandlerErrorSink } from './sim-events.js';
