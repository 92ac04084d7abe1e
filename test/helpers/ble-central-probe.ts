/**
 * Test program: a phone-side probe on real noble through `createBleCentral`.
 * Spawned by test/ble/*.test.ts as
 * `node dist/test/helpers/ble-central-probe.js --hci-socket <path> ...`.
 *
 * Guarantees: prints JSON-line events and exits 0 only after the whole
 * sequence ran: scan for a carkey advertiser whose service data equals
 * --expect-service-data (event `scan` with the discovery), connect (event
 * `connected` with the MTU), send `testMessage(--message-size, --seed)`
 * through the real message channel (core framing) and wait for the answer
 * (event `reply` with both payloads in hex and the chunk statistics),
 * then either disconnect itself or, with --after-reply wait-close, wait for
 * the car to drop the link (event `disconnected` with the close reason),
 * close. No assertions here: the test
 * compares. On failure: an `error` event and the CarkeyError's exit code
 * (4 when no matching car was found).
 */
import { parseArgs } from 'node:util';
import { CarkeyError } from '../../src/core/errors.js';
import { createBleCentral } from '../../src/transport/ble-central.js';
import { centralChunks, MessageChannel } from '../../src/transport/channel.js';
import { countingLink, emit, exitWithError, testMessage, toHex } from './ble-helper-io.js';

const { values } = parseArgs({
  options: {
    'hci-socket': { type: 'string' },
    adapter: { type: 'string', default: 'hci0' },
    'expect-service-data': { type: 'string' },
    'message-size': { type: 'string', default: '700' },
    seed: { type: 'string', default: '1' },
    'scan-timeout': { type: 'string', default: '5000' },
    'connect-timeout': { type: 'string', default: '5000' },
    'reply-timeout': { type: 'string', default: '5000' },
    'after-reply': { type: 'string', default: 'disconnect' },
  },
});

async function main(): Promise<void> {
  const expected = values['expect-service-data'];
  const central = await createBleCentral({ adapter: values.adapter, hciSocketPath: values['hci-socket'] });
  emit({ event: 'ready' });

  const { match, seen } = await central.scan({
    timeoutMs: Number.parseInt(values['scan-timeout'], 10),
    accept: (discovery) => expected === undefined || toHex(discovery.serviceData) === expected,
  });
  const describe = (d: { address: string; localName: string | undefined; serviceData: Uint8Array | undefined; rssi: number | undefined }): Record<string, unknown> => ({
    address: d.address,
    localName: d.localName ?? null,
    serviceData: toHex(d.serviceData) ?? null,
    rssi: d.rssi ?? null,
  });
  emit({ event: 'scan', match: match === undefined ? null : describe(match), seen: seen.map(describe) });
  if (match === undefined) throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', `no advertiser with service data ${expected ?? '(any)'}`);

  const link = await central.connect(match, { timeoutMs: Number.parseInt(values['connect-timeout'], 10) });
  emit({ event: 'connected', mtu: link.mtu(), rssi: link.rssi() ?? null });
  const closed = new Promise<string>((resolve) => link.onClose(resolve));

  const { link: counted, stats } = countingLink(centralChunks(link));
  const channel = new MessageChannel(counted);
  const message = testMessage(Number.parseInt(values['message-size'], 10), Number.parseInt(values.seed, 10));
  await channel.send(message);
  const reply = await channel.next(Number.parseInt(values['reply-timeout'], 10));
  emit({ event: 'reply', mtu: link.mtu(), messageHex: toHex(message), replyHex: toHex(reply), ...stats });

  channel.close();
  if (values['after-reply'] === 'wait-close') emit({ event: 'waiting-for-close' });
  else await link.disconnect();
  emit({ event: 'disconnected', reason: await closed });
  await central.close();
  process.exit(0);
}

main().catch(exitWithError);
