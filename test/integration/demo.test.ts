/**
 * `npm run demo` end to end: runs the compiled demo (dist/scripts/demo.js
 * --json --keep) as a user would and checks that every step of the outage
 * story is there and passed, that the unlocks during each cloud fault
 * succeeded, and that the run ended with an ok summary; then presses Ctrl-C
 * (SIGINT) as a person would after --keep and checks the demo said where the
 * keys are and that it deletes them, did delete them, and exited 0.
 * Latencies are printed, not asserted. Needs `npm run build`.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIST } from '../../firmware-sim/rig.js';

interface DemoLine {
  readonly event: 'step' | 'summary';
  readonly step?: string;
  readonly who?: string;
  readonly ok: boolean;
  readonly ms?: number;
  readonly detail?: string;
  readonly data?: { medianMs?: number; ratio?: number };
}

function runDemo(): Promise<{ code: number | null; lines: DemoLine[]; stderr: string }> {
  const script = join(DIST, 'scripts/demo.js');
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [script, '--json', '--keep'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let interrupted = false;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    // --keep: once it has said how to stop, stop it the way a person does.
    if (!interrupted && stderr.includes('Ctrl-C stops')) {
      interrupted = true;
      child.kill('SIGINT');
    }
  });
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      const lines = stdout
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as DemoLine);
      resolve({ code, lines, stderr });
    });
  });
}

describe('npm run demo --json', () => {
  it('plays the outage story with every step passing and exits 0', async () => {
    const { code, lines, stderr } = await runDemo();
    const steps = lines.filter((l) => l.event === 'step');
    const failed = steps.filter((l) => !l.ok);
    expect(failed, stderr).toEqual([]);
    const summary = lines.at(-1);
    expect(summary).toMatchObject({ event: 'summary', ok: true, steps: steps.length, failed: [] });
    expect(code, stderr).toBe(0);
    // --keep then Ctrl-C: it said where the keys were and that it deletes them, and it did.
    const dir = /Everything lives in (\S+):/.exec(stderr)?.[1];
    expect(dir, stderr).toBeDefined();
    expect(stderr).toContain(`DELETES ${dir ?? ''} with every key in it`);
    expect(stderr).toContain(`removing ${dir ?? ''}`);
    expect(existsSync(dir ?? '/nonexistent'), `${dir ?? ''} still exists`).toBe(false);

    const names = steps.map((s) => `${s.who ?? ''}: ${s.step ?? ''}`);
    const expected = [
      /^owner: pair/,
      /^owner: cloud register/,
      /^owner: cloud healthy: .*unlock/,
      /^owner: share .*--via-cloud/,
      /^friend: accept --from-cloud/,
      /^friend: cloud healthy: .*unlock/,
      /^cloud: fault switch: every route answers 500/,
      /^owner: cloud 500: .*unlock/,
      /^friend: cloud 500: .*unlock/,
      /^cloud: fault switch: every route hangs/,
      /^owner: cloud hang: .*unlock/,
      /^friend: cloud hang: .*unlock/,
      /^cloud: fault switch: every route resets/,
      /^owner: cloud reset: .*unlock/,
      /^friend: cloud reset: .*unlock/,
      /^owner: revoke FRIEND \(over BLE, cloud down\)/,
      /^friend: unlock \(revoked: must be denied\)/,
      /^cloud: fault switch off/,
      /^car: uploads its audit log/,
      /^owner: audit --from-cloud --verify/,
      /^owner: revoke NEIGHBOUR --offline/,
      /^owner: sync/,
      /^car: applies the new key list/,
      /^neighbour: unlock \(revoked through the cloud: must be denied\)/,
    ];
    // In this order, each exactly where the story puts it.
    let from = 0;
    for (const pattern of expected) {
      const index = names.findIndex((name, i) => i >= from && pattern.test(name));
      expect(index, `${pattern.source} after step ${from}: ${names.join('\n')}`).toBeGreaterThanOrEqual(0);
      from = index + 1;
    }
    for (const s of steps.filter((l) => l.data?.ratio !== undefined)) console.log(`${s.who ?? ''} ${s.step ?? ''}: ${s.detail ?? ''}`);
  }, 300_000);
});
