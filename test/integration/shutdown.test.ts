/**
 * carkeyd's shutdown is bounded, through real processes (carkeyd, the
 * simulated body controller and radio broker): SIGTERM after the body
 * controller vanished, while the radio broker has stopped answering, and
 * with a half-sent request on the status port each ends in a clean exit 0;
 * a second SIGTERM while a stop is still in progress exits at once with 1.
 * (docs/operations.md, "Stopping".) Exits are awaited with a deadline well
 * above the 5 s bound; no assertion measures durations.
 */
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemonProcess, startRig, stopRig, type CarRig, type Started } from '../../firmware-sim/rig.js';

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The child's exit, or a failure after `deadlineMs` (then it is SIGKILLed). */
function exitOf(child: ChildProcess, deadlineMs: number): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`still running ${deadlineMs} ms after the signal`));
    }, deadlineMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

async function logShows(started: Started, text: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (started.stderr().includes(text)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`carkeyd never logged ${text}\n${started.stderr()}`);
}

const rigs: CarRig[] = [];
const paused: ChildProcess[] = [];

afterEach(async () => {
  for (const child of paused.splice(0)) child.kill('SIGCONT');
  for (const rig of rigs.splice(0)) {
    if (rig.daemon?.child.exitCode !== null || rig.daemon.child.signalCode !== null) rig.daemon = undefined;
    if (rig.hardwareProc?.child.exitCode !== null || rig.hardwareProc.child.signalCode !== null) rig.hardwareProc = undefined;
    await stopRig(rig);
  }
});

async function runningCar(): Promise<{ rig: CarRig; daemon: Started }> {
  const rig = await startRig();
  rigs.push(rig);
  return { rig, daemon: await startDaemonProcess(rig) };
}

describe('carkeyd shutdown is bounded', () => {
  it('SIGTERM while it retries a vanished body controller: exit 0', async () => {
    const { rig, daemon } = await runningCar();
    const hardware = rig.hardwareProc?.child;
    if (hardware === undefined) throw new Error('no hardware sim');
    hardware.kill('SIGKILL');
    await exitOf(hardware, 10_000);
    await logShows(daemon, 'body controller link lost');
    daemon.child.kill('SIGTERM');
    expect(await exitOf(daemon.child, 15_000)).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM while the radio broker has stopped answering: exit 0', async () => {
    const { rig, daemon } = await runningCar();
    const radio = rig.radioProc?.child;
    if (radio === undefined) throw new Error('no radio');
    radio.kill('SIGSTOP');
    paused.push(radio);
    daemon.child.kill('SIGTERM');
    expect(await exitOf(daemon.child, 15_000)).toEqual({ code: 0, signal: null });
  });

  it('a half-sent request on the status port does not hold up SIGTERM: exit 0', async () => {
    const { daemon } = await runningCar();
    const url = new URL(String(daemon.ready.status));
    const socket = net.createConnection({ host: url.hostname, port: Number(url.port) });
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n'); // never finished
    try {
      daemon.child.kill('SIGTERM');
      expect(await exitOf(daemon.child, 15_000)).toEqual({ code: 0, signal: null });
    } finally {
      socket.destroy();
    }
  });

  it('a second SIGTERM while a stop is in progress exits at once with 1', async () => {
    const { rig, daemon } = await runningCar();
    const radio = rig.radioProc?.child;
    if (radio === undefined) throw new Error('no radio');
    radio.kill('SIGSTOP'); // the stop now waits (bounded) for the broker
    paused.push(radio);
    daemon.child.kill('SIGTERM');
    await logShows(daemon, '"msg":"stopping"');
    daemon.child.kill('SIGTERM');
    expect(await exitOf(daemon.child, 15_000)).toEqual({ code: 1, signal: null });
    expect(daemon.stderr()).toContain('second signal while stopping');
  });
});
