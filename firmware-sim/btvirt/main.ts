/**
 * `node dist/firmware-sim/btvirt/main.js`: run BlueZ btvirt emulated LE
 * controllers by hand (see docs/ble-emulation.md).
 *
 * Guarantees: prints the LE socket path as `CARKEY_HCI_SOCKET=<path>` on one
 * stdout line once a controller answered, keeps btvirt running until SIGINT or
 * SIGTERM, then stops it and removes its private directory. Exits 6
 * (unavailable) with the reason on stderr if btvirt cannot start.
 */
import { versionLine, wantsVersion } from '../../src/common/version.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { startBtvirt } from './launcher.js';

async function main(): Promise<void> {
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('sim-btvirt'));
    return;
  }
  const btvirt = await startBtvirt();
  process.stdout.write(`CARKEY_HCI_SOCKET=${btvirt.leSocketPath}\n`);
  process.stderr.write(`btvirt pid ${btvirt.pid} running; Ctrl-C to stop\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await btvirt.stop();
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = isCarkeyError(error) ? error.exitCode : 1;
});
