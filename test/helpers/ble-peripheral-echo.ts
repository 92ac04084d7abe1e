/**
 * Test program: a car-side echo peripheral on real bleno through
 * `createBlePeripheral`. Spawned by test/ble/*.test.ts as
 * `node dist/test/helpers/ble-peripheral-echo.js --hci-socket <path> ...`.
 *
 * Guarantees: prints JSON-line events (ready, link, subscribed, message,
 * replied, closed, readvertised, advertising, error) on stdout; `readvertised`
 * follows each `closed` once advertising has resumed with the latest data;
 * answers every framed message with `echoAnswer(message)` through the real
 * message channel (core framing);
 * reads JSON commands on stdin: {"cmd":"advertise","serviceData":"<hex>"}
 * rotates the advertised identifier, {"cmd":"disconnect"} drops the current
 * link from the car's side, {"cmd":"stop"} stops and exits 0.
 * SIGTERM also stops and exits. Exits non-zero with an `error` event on failure.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createBlePeripheral } from '../../src/transport/ble-peripheral.js';
import { MessageChannel, peripheralChunks } from '../../src/transport/channel.js';
import type { Advertisement, PeripheralLink, PeripheralTransport } from '../../src/transport/types.js';
import { countingLink, echoAnswer, emit, exitWithError, toHex } from './ble-helper-io.js';

const { values } = parseArgs({
  options: {
    'hci-socket': { type: 'string' },
    adapter: { type: 'string', default: 'hci0' },
    name: { type: 'string', default: 'carkey' },
    'service-data': { type: 'string', default: '00112233' },
    'max-mtu': { type: 'string', default: '256' },
  },
});

async function main(): Promise<void> {
  const transport: PeripheralTransport = await createBlePeripheral({
    adapter: values.adapter,
    hciSocketPath: values['hci-socket'],
    maxMtu: Number.parseInt(values['max-mtu'], 10),
  });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await transport.stop();
    emit({ event: 'stopped' });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());

  let advertisement: Advertisement = { localName: values.name, serviceData: Buffer.from(values['service-data'], 'hex') };
  let current: PeripheralLink | undefined;
  transport.onLink((link) => {
    current = link;
    emit({ event: 'link', id: link.id, mtu: link.mtu() });
    const { link: counted, stats } = countingLink(peripheralChunks(link));
    const channel = new MessageChannel(counted);
    link.onSubscribed(() => emit({ event: 'subscribed', id: link.id, mtu: link.mtu(), rssi: link.rssi() ?? null }));
    channel.onError((error) => emit({ event: 'frame-error', code: error.code, message: error.message }));
    channel.onMessage((message) => {
      emit({ event: 'message', bytes: message.length, chunks: stats.receivedChunks, maxChunk: stats.receivedMaxChunk, mtu: link.mtu() });
      const answer = echoAnswer(message);
      channel.send(answer).then(
        () => emit({ event: 'replied', bytes: answer.length, chunks: stats.sentChunks, maxChunk: stats.sentMaxChunk }),
        (error: unknown) => emit({ event: 'reply-error', message: error instanceof Error ? error.message : String(error) }),
      );
    });
    link.onClose((reason) => {
      channel.close();
      emit({ event: 'closed', id: link.id, reason });
      if (stopping) return;
      // Advertising commands are serialised, so this resolves only after the
      // transport resumed advertising (with the latest data): tests wait for it.
      transport.setAdvertisement(advertisement).then(() => emit({ event: 'readvertised', serviceData: toHex(advertisement.serviceData) }), exitWithError);
    });
  });

  await transport.start(advertisement);
  emit({ event: 'ready', serviceData: values['service-data'] });

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let command: unknown;
    try {
      command = JSON.parse(line);
    } catch {
      emit({ event: 'bad-command', line });
      return;
    }
    const cmd = typeof command === 'object' && command !== null ? (command as Record<string, unknown>) : {};
    if (cmd.cmd === 'advertise' && typeof cmd.serviceData === 'string') {
      const serviceData = cmd.serviceData;
      advertisement = { localName: values.name, serviceData: Buffer.from(serviceData, 'hex') };
      transport.setAdvertisement(advertisement).then(
        () => emit({ event: 'advertising', serviceData }),
        exitWithError,
      );
    } else if (cmd.cmd === 'disconnect' && current !== undefined) {
      const link = current;
      void link.disconnect().then(() => emit({ event: 'disconnect-requested', id: link.id }));
    } else if (cmd.cmd === 'stop') {
      void stop();
    } else {
      emit({ event: 'bad-command', line });
    }
  });
}

main().catch(exitWithError);
