/**
 * Test helper program: a simulated phone that scans for a car, connects,
 * writes `--count` chunks (as large as the MTU allows, all in flight at once)
 * and checks that the car echoes them back, in order, as notifications.
 * Prints JSON lines: {"event":"connected",...}, {"event":"result",...}, and
 * with --hold waits for the link to close ({"event":"closed","reason":...}).
 *
 *     node dist/test/helpers/radio-phone.js --socket PATH --name NAME --target CAR [--count N] [--hold]
 */
import { parseArgs } from 'node:util';
import { CarkeyError, toCarkeyError } from '../../src/core/errors.js';
import { createSimCentral } from '../../src/transport/sim.js';

const { values } = parseArgs({
  options: {
    socket: { type: 'string' },
    name: { type: 'string' },
    target: { type: 'string' },
    count: { type: 'string' },
    hold: { type: 'boolean' },
  },
  strict: true,
});

function print(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function chunkFor(index: number, size: number): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (index * 31 + i) & 0xff);
}

async function main(): Promise<void> {
  if (values.socket === undefined || values.name === undefined || values.target === undefined) throw new Error('--socket, --name and --target are required');
  const count = Number(values.count ?? 20);
  const phone = createSimCentral({ socketPath: values.socket, name: values.name });
  const scan = await phone.scan({ timeoutMs: 10_000, accept: (d) => d.address === values.target });
  if (scan.match === undefined) throw new CarkeyError('CK_TRANSPORT_NOT_FOUND', values.target);
  const link = await phone.connect(scan.match, { timeoutMs: 10_000, mtu: 247 });
  print({ event: 'connected', mtu: link.mtu(), rssi: link.rssi(), scanRssi: scan.match.rssi });
  const size = link.mtu() - 3;
  const echoed: string[] = [];
  const allEchoed = new Promise<void>((resolve) => {
    link.onChunk((chunk) => {
      echoed.push(Buffer.from(chunk).toString('hex'));
      if (echoed.length === count) resolve();
    });
  });
  const closed = new Promise<string>((resolve) => link.onClose(resolve));
  const sent = Array.from({ length: count }, (_, i) => chunkFor(i, size));
  await Promise.all(sent.map((chunk) => link.write(chunk)));
  await allEchoed;
  const inOrder = sent.every((chunk, i) => Buffer.from(chunk).toString('hex') === echoed[i]);
  print({ event: 'result', ok: inOrder, count, size, mtu: link.mtu() });
  if (values.hold === true) {
    print({ event: 'closed', reason: await closed });
  } else {
    await link.disconnect();
  }
  await phone.close();
}

main().catch((error: unknown) => {
  const failure = toCarkeyError(error);
  print({ event: 'error', code: failure.code, message: failure.message });
  process.exit(failure.exitCode);
});
