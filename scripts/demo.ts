/**
 * `npm run demo`: carkey on the simulated car and radio, for a machine with no
 * car and no Bluetooth adapter.
 *
 * Starts the radio broker, the body-controller simulator and carkeyd as
 * separate processes, then plays a story with the real `carkey` CLI, printing
 * each command as a person would type it and what it printed: pairing with the
 * car's button and 6-digit code, unlock/lock/start with PIN, a guest key shared
 * and used, revocation, the audit log. With `--keep` it leaves the car running
 * and prints the commands to drive it by hand.
 *
 * Exit code: 0 when every step did what it should, 1 otherwise.
 */
import { join } from 'node:path';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../firmware-sim/rig.js';

const keep = process.argv.includes('--keep');
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write('usage: npm run demo [-- --keep]\n\n  --keep   leave the simulated car running afterwards and print how to use it\n');
  process.exit(0);
}

let failures = 0;

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`);
}

async function step(rig: CarRig, who: string, args: string[], expectCode = 0): Promise<CliResult> {
  process.stdout.write(`\x1b[36m${who}$ carkey ${args.join(' ')}\x1b[0m\n`);
  const result = await runCli('src/cli/carkey.js', ['--home', join(rig.dir, who), '--transport', 'sim', '--radio', rig.radio, ...args]);
  const output = `${result.stdout}${result.stderr}`.trim();
  if (output !== '') process.stdout.write(`${output.replace(/^/gm, '  ')}\n`);
  const verdict = result.code === expectCode ? '\x1b[32m✓\x1b[0m' : '\x1b[31m✗\x1b[0m';
  if (result.code !== expectCode) failures++;
  process.stdout.write(`  ${verdict} exit ${result.code}${expectCode === 0 ? '' : ` (expected ${expectCode})`}\n`);
  return result;
}

async function car(rig: CarRig, ...args: string[]): Promise<void> {
  process.stdout.write(`\x1b[35mcar$ ${args.join(' ')}\x1b[0m\n`);
  const result = await hardwareCtl(rig, ...args);
  process.stdout.write(`${result.stdout.trim().replace(/^/gm, '  ')}\n`);
}

async function waitForDisplay(rig: CarRig, text: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
    if (state.display.join(' ').includes(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the car's display never showed "${text}"`);
}

async function main(): Promise<void> {
  say('Starting the simulated radio, the simulated body controller and carkeyd…');
  const rig = await startRig({ config: { startPin: '4711', logLevel: 'warn' } });
  try {
    const daemon = await startDaemonProcess(rig);
    process.stdout.write(`  carkeyd ready: vehicle key id ${String(daemon.ready.vehicleKeyId)}, status ${String(daemon.ready.status)}\n`);

    say('1. The owner makes a key and pairs: the car must be in pairing mode (physical button).');
    await step(rig, 'owner', ['keygen']);
    await car(rig, 'press-button');
    const pairing = step(rig, 'owner', ['pair', '--yes', '--name', 'owner-phone']);
    await waitForDisplay(rig, 'Hold button');
    await car(rig, 'display');
    await car(rig, 'long-press');
    await pairing;

    say('2. Unlock, lock, status — decided by the car alone; no server anywhere.');
    await step(rig, 'owner', ['unlock']);
    await step(rig, 'owner', ['lock']);
    await step(rig, 'owner', ['status']);

    say('3. Starting needs the PIN.');
    await step(rig, 'owner', ['start'], 3);
    await step(rig, 'owner', ['start', '--pin', '4711']);

    say('4. The owner shares a guest key with a friend, offline.');
    await step(rig, 'friend', ['keygen']);
    const who = JSON.parse((await runCli('src/cli/carkey.js', ['--home', join(rig.dir, 'friend'), 'whoami', '--json'])).stdout) as { publicKey: string };
    await step(rig, 'owner', ['share', '--role', 'guest', '--until', '+2d', '--to', who.publicKey, '--out', join(rig.dir, 'friend.carkey')]);
    await step(rig, 'friend', ['accept', join(rig.dir, 'friend.carkey')]);
    await step(rig, 'friend', ['unlock']);
    await step(rig, 'friend', ['trunk'], 3);

    say('5. The owner revokes the friend; the car learns it over BLE at once.');
    const keys = JSON.parse((await runCli('src/cli/carkey.js', ['--home', join(rig.dir, 'owner'), 'keys', '--json'])).stdout) as { vehicles?: { issued?: { serial: string }[] }[] };
    const serial = keys.vehicles?.[0]?.issued?.[0]?.serial;
    if (serial === undefined) throw new Error('carkey keys --json did not list the issued grant');
    await step(rig, 'owner', ['revoke', serial]);
    await step(rig, 'friend', ['unlock'], 3);

    say('6. The audit log: every decision, hash-chained and signed by the car.');
    await step(rig, 'owner', ['audit', '--verify', '--limit', '8']);

    say(failures === 0 ? 'Demo complete: every step did what it should.' : `Demo finished with ${failures} unexpected result(s).`);
    if (keep) {
      process.stdout.write(
        `\nThe simulated car keeps running (Ctrl-C to stop). Try:\n` +
          `  export CARKEY_TRANSPORT=sim CARKEY_RADIO=${rig.radio} CARKEY_HOME=${join(rig.dir, 'owner')}\n` +
          `  node bin/carkey.js unlock\n` +
          `  node dist/firmware-sim/hardware/ctl.js --socket ${rig.hardware} state\n`,
      );
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
  } finally {
    await stopRig(rig);
  }
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((error: unknown) => {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
