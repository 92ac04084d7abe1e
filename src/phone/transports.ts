/**
 * The one place the phone side picks and loads a radio.
 *
 * Guarantees: the transport modules are loaded with a dynamic import only
 * when chosen, so `carkey` never loads noble (which throws at load time on
 * machines without kernel Bluetooth) unless `--transport ble`. Failures are
 * CarkeyErrors: CK_TRANSPORT_NO_ADAPTER (BLE), CK_TRANSPORT_RADIO_UNAVAILABLE
 * (sim broker not reachable).
 */
import type { PhaseTrace } from '../common/phase-trace.js';
import type { CentralTransport } from '../transport/types.js';

export type TransportKind = 'sim' | 'ble';
export const TRANSPORT_KINDS: readonly TransportKind[] = ['sim', 'ble'];
export const DEFAULT_RADIO_SOCKET = '/tmp/carkey-radio.sock';
export const DEFAULT_ADAPTER = 'hci0';

export interface CentralOptions {
  readonly transport: TransportKind;
  /** sim: the radio broker's UNIX socket (default /tmp/carkey-radio.sock) */
  readonly radio?: string;
  /** ble: the adapter, e.g. "hci0" */
  readonly adapter?: string;
  /** ble: a btvirt emulated controller socket instead of the kernel adapter */
  readonly hciSocketPath?: string;
  /** this phone's name on the simulated air ([A-Za-z0-9._:-]{1,64}) */
  readonly name: string;
  /** sim: phase marks for performance work (src/common/phase-trace.ts) */
  readonly trace?: PhaseTrace;
}

export function isTransportKind(value: string): value is TransportKind {
  return (TRANSPORT_KINDS as readonly string[]).includes(value);
}

/** Open the phone's radio as chosen on the command line. */
export async function openCentral(options: CentralOptions): Promise<CentralTransport> {
  if (options.transport === 'sim') {
    const { createSimCentral } = await import('../transport/sim.js');
    const socketPath = options.radio ?? DEFAULT_RADIO_SOCKET;
    return createSimCentral(options.trace === undefined ? { socketPath, name: options.name } : { socketPath, name: options.name, trace: options.trace });
  }
  const { createBleCentral } = await import('../transport/ble-central.js');
  const adapter = options.adapter ?? DEFAULT_ADAPTER;
  return options.hciSocketPath === undefined ? createBleCentral({ adapter }) : createBleCentral({ adapter, hciSocketPath: options.hciSocketPath });
}
