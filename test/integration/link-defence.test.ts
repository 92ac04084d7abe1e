/**
 * Denial of service at the link level, against the real carkeyd process over
 * the sim radio: idle unauthenticated links are dropped, garbage gets one
 * generic refusal and the link is dropped, and an attacker holding every
 * connection slot cannot keep the owner out. (Message-rate limits are token
 * buckets, unit-tested in test/vehicle/daemon-parts.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { splitMessage } from '../../src/core/framing.js';
import { createSimCentral, type SimCentralTransport } from '../../src/transport/sim.js';
import type { CentralLink, CloseReason } from '../../src/transport/types.js';

let rig: CarRig;
const attackers: SimCentralTransport[] = [];

function carkey(...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, 'owner'), '--transport', 'sim', '--radio', rig.radio, '--quiet', ...args]);
}

async function attackerLink(): Promise<{ link: CentralLink; closed: Promise<CloseReason> }> {
  const central = createSimCentral({ socketPath: rig.radio, name: `mallory-${randomBytes(3).toString('hex')}` });
  attackers.push(central);
  const scan = await central.scan({ timeoutMs: 5000, accept: () => true });
  if (scan.match === undefined) throw new Error('car not found');
  const link = await central.connect(scan.match, { timeoutMs: 5000 });
  const closed = new Promise<CloseReason>((resolve) => link.onClose(resolve));
  return { link, closed };
}

describe('link defences of carkeyd', () => {
  beforeAll(async () => {
    rig = await startRig({ config: { slots: 3, idleTimeoutMs: 1000, perLinkRate: 5, perLinkBurst: 5 } });
    await startDaemonProcess(rig);
    expect((await carkey('keygen')).code).toBe(0);
    await hardwareCtl(rig, 'press-button');
    const pairing = carkey('pair', '--yes');
    for (let i = 0; i < 100; i++) {
      const state = JSON.parse((await hardwareCtl(rig, 'state', '--json')).stdout) as { display: string[] };
      if (state.display.join(' ').includes('Hold button')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await hardwareCtl(rig, 'long-press');
    expect((await pairing).code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(attackers.map((a) => a.close().catch(() => undefined)));
    await stopRig(rig);
  });

  it('drops a link that never authenticates', async () => {
    const { closed } = await attackerLink();
    expect(await closed).toBe('remote');
  });

  it('drops a link that sends garbage (one generic refusal, then gone)', async () => {
    const { link, closed } = await attackerLink();
    for (let i = 0; i < 20; i++) await link.write(Uint8Array.of(0x80, 0x00, 0x02, 0x01, 0x01)).catch(() => undefined);
    expect(await closed).toBe('remote');
  });

  it('survives random frames and random messages from many links, and still serves the owner', async () => {
    for (let round = 0; round < 30; round++) {
      const { link, closed } = await attackerLink();
      const junk = new Uint8Array(randomBytes(1 + (round * 37) % 180));
      // Half the rounds: a well-framed message of random bytes; the rest: raw random chunks.
      const chunks = round % 2 === 0 ? splitMessage(junk, link.mtu()) : [junk.subarray(0, Math.min(junk.length, link.mtu() - 3))];
      for (const chunk of chunks) await link.write(chunk).catch(() => undefined);
      if (round % 3 === 0) await closed;
      else await link.disconnect().catch(() => undefined);
    }
    expect(rig.daemon?.child.exitCode).toBe(null);
    const unlock = await carkey('unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
  }, 60_000);

  it('an attacker holding every slot cannot keep the owner out', async () => {
    const held = await Promise.all([attackerLink(), attackerLink(), attackerLink()]);
    const unlock = await carkey('unlock');
    expect(unlock.code, unlock.stderr).toBe(0);
    const reasons = await Promise.all(held.map((h) => h.closed));
    expect(reasons.every((r) => r === 'remote')).toBe(true);
    const metrics = await (await fetch(`${String(rig.daemon?.ready.status)}/metrics`)).text();
    expect(metrics).toMatch(/carkey_connections_total\{event="evicted"\} [1-9]/);
    expect(metrics).toMatch(/carkey_connections_total\{event="idle-dropped"\} [1-9]/);
    expect(metrics).toMatch(/carkey_refusals_total\{code="CK_CODEC_BAD_VALUE"\} [1-9]/);
  });
});
