/**
 * Test helper program: a simulated car on the radio broker that echoes every
 * chunk it receives back as a notification. Prints one JSON line per event on
 * stdout ({"event":"ready"|"link"|"subscribed"|"chunk"|"closed"|"error"}).
 * SIGTERM stops it cleanly (links are disconnected, exit 0).
 *
 *     node dist/test/helpers/radio-car.js --socket PATH --name NAME [--max-mtu N]
 */
import { parseArgs } from 'node:util';
import { toCarkeyError } from '../../src/core/errors.js';
import { createSimPeripheral } from '../../src/transport/sim.js';

const { values } = parseArgs({
  options: { socket: { type: 'string' }, name: { type: 'string' }, 'max-mtu': { type: 'string' } },
  strict: true,
});

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main(): Promise<void> {
  if (values.socket === undefined || values.name === undefined) throw new Error('--socket and --name are required');
  const car = createSimPeripheral({ socketPath: values.socket, name: values.name, maxMtu: Number(values['max-mtu'] ?? 517) });
  car.onLink((link) => {
    print({ event: 'link', id: link.id });
    link.onSubscribed(() => print({ event: 'subscribed', id: link.id, mtu: link.mtu() }));
    link.onChunk((chunk) => {
      print({ event: 'chunk', id: link.id, hex: Buffer.from(chunk).toString('hex') });
      link.notify(chunk).catch((error: unknown) => print({ event: 'error', code: toCarkeyError(error).code }));
    });
    link.onClose((reason) => print({ event: 'closed', id: link.id, reason }));
  });
  await car.start({ localName: 'carkey', serviceData: Uint8Array.from([1, 0, 9, 9, 9, 9, 9, 9, 9, 9]) });
  print({ event: 'ready' });
  const stop = (): void => {
    car.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  const failure = toCarkeyError(error);
  print({ event: 'error', code: failure.code, message: failure.message });
  process.exit(failure.exitCode);
});
