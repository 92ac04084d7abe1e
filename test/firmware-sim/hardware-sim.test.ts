// Integration: the compiled simulator process, driven by the daemon's real
// driver (openHardware) over its UNIX socket and by the ctl CLI as a person.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isCarkeyError } from '../../src/core/errors.js';
import type { ErrorCode } from '../../src/core/errors.js';
import { openHardware } from '../../src/vehicle/hw-driver.js';
import type { ActuatorPort } from '../../src/vehicle/actuator.js';
import { formatOk, LineSplitter, parseControllerLine, parseRequest, sealLine } from '../../src/vehicle/body-protocol.js';
import { EventRecorder, eventually, killAll, requireBuilt, runCtl, startSim } from './sim-process.js';
import type { SimProcess } from './sim-process.js';

const TIMEOUT_MS = 5000;

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    if (isCarkeyError(err, code)) return err;
    throw new Error(`expected ${code}, got ${String(err)}`, { cause: err });
  }
  throw new Error(`expected ${code}, but it succeeded`);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'carkey-hw-'));
}

/** A raw connection to a simulator socket: write bytes, wait for lines. */
class RawPeer {
  private readonly splitter = new LineSplitter();
  private readonly lines: string[] = [];
  private waiter: { until: (line: string) => boolean; from: number; done: (lines: string[]) => void } | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const item of this.splitter.push(chunk)) this.lines.push(item.ok ? item.line : `!${item.error.code}`);
      this.check();
    });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path });
      socket.once('connect', () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  /** Write `payload`, then resolve with every line received from now until one matches `until`. */
  exchange(payload: Uint8Array | string, until: (line: string) => boolean, timeoutMs = 10_000): Promise<string[]> {
    const from = this.lines.length;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no terminating line; got ${JSON.stringify(this.lines.slice(from))}`)), timeoutMs);
      this.waiter = {
        until,
        from,
        done: (lines) => {
          clearTimeout(timer);
          resolve(lines);
        },
      };
      this.socket.write(payload);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private check(): void {
    const waiter = this.waiter;
    if (waiter === undefined) return;
    const index = this.lines.slice(waiter.from).findIndex(waiter.until);
    if (index < 0) return;
    this.waiter = undefined;
    waiter.done(this.lines.slice(waiter.from, waiter.from + index + 1));
  }
}

afterAll(async () => {
  await killAll();
});

describe('simulator + driver over the UNIX socket', () => {
  let dir: string;
  let sim: SimProcess;
  let hw: ActuatorPort;
  let recorder: EventRecorder;
  let socketPath: string;

  beforeAll(async () => {
    requireBuilt();
    dir = tempDir();
    socketPath = join(dir, 'car.sock');
    sim = await startSim(['--socket', socketPath, '--json-log']);
    hw = await openHardware(socketPath, { timeoutMs: TIMEOUT_MS });
    recorder = new EventRecorder(hw);
  });

  afterAll(async () => {
    await hw.close();
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const ctl = (...args: string[]) => runCtl(['--socket', socketPath, ...args]);
  const ctlJson = async (...args: string[]): Promise<Record<string, unknown>> => {
    const result = await ctl(...args, '--json');
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  };

  it('prints a ready line with its sockets', () => {
    expect(sim.ready).toMatchObject({ socket: socketPath, control: `${socketPath}.ctl`, pty: null, doors: 4 });
  });

  it('starts in the power-on state', async () => {
    expect(await hw.state()).toEqual({
      doors: { 'front-left': 'locked', 'front-right': 'locked', 'rear-left': 'locked', 'rear-right': 'locked' },
      positions: { 'front-left': 'closed', 'front-right': 'closed', 'rear-left': 'closed', 'rear-right': 'closed' },
      drive: 'off',
      trunk: 'closed',
      display: ['', ''],
    });
  });

  it('unlocks and locks doors, and a person sees the same locks', async () => {
    await hw.unlock();
    expect(Object.values((await hw.state()).doors)).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    await hw.lock(['front-left', 'rear-right']);
    const expected = { 'front-left': 'locked', 'front-right': 'unlocked', 'rear-left': 'unlocked', 'rear-right': 'locked' };
    expect((await hw.state()).doors).toEqual(expected);
    expect((await ctlJson('state')).locks).toEqual(expected);
    await hw.lock('all');
    expect(Object.values((await hw.state()).doors)).toEqual(['locked', 'locked', 'locked', 'locked']);
  });

  it('switches drive on and off', async () => {
    await hw.setDrive(true);
    expect((await hw.state()).drive).toBe('ready');
    expect((await ctlJson('state')).drive).toBe('ready');
    await hw.setDrive(false);
    expect((await hw.state()).drive).toBe('off');
  });

  it('opens the trunk; a person closes it; both show up as events', async () => {
    const from = recorder.events.length;
    await hw.openTrunk();
    await recorder.waitFor((e) => e.kind === 'trunk' && e.state === 'open', from);
    expect((await hw.state()).trunk).toBe('open');
    const closed = await ctl('close-trunk');
    expect(closed.code, closed.stderr).toBe(0);
    await recorder.waitFor((e) => e.kind === 'trunk' && e.state === 'closed', from);
    expect((await hw.state()).trunk).toBe('closed');
  });

  it('a person cannot open a locked door; opens and shuts an unlocked one; the host sees each move', async () => {
    const from = recorder.events.length;
    const refused = await ctl('open-door', 'front-left', '--json');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('LOCKED');
    expect((await hw.state()).positions?.['front-left']).toBe('closed');
    await hw.unlock(['front-left']);
    const opened = await ctlJson('open-door', 'front-left');
    expect(opened).toMatchObject({ ok: true, action: 'open-door', host: 'connected' });
    await recorder.waitFor((e) => e.kind === 'door' && e.door === 'front-left' && e.position === 'open', from);
    expect((await hw.state()).positions).toEqual({ 'front-left': 'open', 'front-right': 'closed', 'rear-left': 'closed', 'rear-right': 'closed' });
    expect((await ctlJson('state')).positions).toMatchObject({ 'front-left': 'open' });
    expect((await ctl('close-door', 'front-left')).code).toBe(0);
    await recorder.waitFor((e) => e.kind === 'door' && e.door === 'front-left' && e.position === 'closed', from);
    expect(recorder.events.slice(from).filter((e) => e.kind === 'door')).toEqual([
      { kind: 'door', door: 'front-left', position: 'open' },
      { kind: 'door', door: 'front-left', position: 'closed' },
    ]);
    await hw.lock();
    expect((await ctl('open-door', 'boot')).code).toBe(2);
  });

  it('writes and clears the display; a person reads it', async () => {
    await hw.display(['123456', 'Pair phone?']);
    expect((await hw.state()).display).toEqual(['123456', 'Pair phone?']);
    expect((await ctlJson('display')).display).toEqual(['123456', 'Pair phone?']);
    const text = await ctl('display');
    expect(text.stdout).toContain('|123456              |');
    await hw.display(['', 'only the bottom']);
    expect((await ctlJson('display')).display).toEqual(['', 'only the bottom']);
    await hw.clearDisplay();
    expect((await ctlJson('display')).display).toEqual(['', '']);
  });

  it('beeps and flashes', async () => {
    await hw.signal('beep', 2);
    await hw.signal('flash');
    expect(await ctlJson('state')).toMatchObject({ beeps: 2, flashes: 1 });
  });

  it('maps ERR replies to CK_HW_REJECTED with the controller code, and changes nothing', async () => {
    const before = await hw.state();
    const tooWide = await expectCode(hw.display(['x'.repeat(21)]), 'CK_HW_REJECTED');
    expect(isCarkeyError(tooWide) && tooWide.details).toMatchObject({ verb: 'DISPLAY', code: 'RANGE' });
    const tooMany = await expectCode(hw.signal('beep', 10), 'CK_HW_REJECTED');
    expect(isCarkeyError(tooMany) && tooMany.details).toMatchObject({ code: 'ARGS' });
    await expectCode(hw.unlock([]), 'CK_HW_REJECTED');
    expect(await hw.state()).toEqual(before);
  });

  it('delivers the pairing button and keycard taps made with the ctl CLI through onEvent', async () => {
    const from = recorder.events.length;
    const press = await ctl('press-button');
    expect(press.code, press.stderr).toBe(0);
    expect(press.stdout).toContain('host connected');
    await recorder.waitFor((e) => e.kind === 'button' && e.press === 'short', from);
    expect(await ctlJson('long-press')).toEqual({ ok: true, action: 'long-press', host: 'connected' });
    await recorder.waitFor((e) => e.kind === 'button' && e.press === 'long', from);
    expect((await ctl('tap-keycard', '04A224B2C35E80')).code).toBe(0);
    await recorder.waitFor((e) => e.kind === 'keycard' && e.cardId === '04A224B2C35E80', from);
    expect(recorder.events.slice(from)).toEqual([
      { kind: 'button', press: 'short' },
      { kind: 'button', press: 'long' },
      { kind: 'keycard', cardId: '04A224B2C35E80' },
    ]);
  });

  it('stops delivering to an unsubscribed handler', async () => {
    const late: unknown[] = [];
    const unsubscribe = hw.onEvent((e) => late.push(e));
    unsubscribe();
    const from = recorder.events.length;
    expect((await ctl('press-button')).code).toBe(0);
    await recorder.waitFor((e) => e.kind === 'button', from);
    expect(late).toEqual([]);
  });

  it('refuses a second host while the first is connected; the first keeps working', async () => {
    const busy = await expectCode(openHardware(socketPath, { timeoutMs: TIMEOUT_MS }), 'CK_HW_UNAVAILABLE');
    expect(busy.message).toContain('BUSY');
    expect((await hw.state()).drive).toBe('off');
  });

  it('ctl: help, usage errors and frame', async () => {
    const help = await runCtl(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('press-button');
    expect((await ctl('open-sesame')).code).toBe(2);
    expect((await ctl('tap-keycard', 'not a card')).code).toBe(2);
    expect((await ctl('tap-keycard')).code).toBe(2);
    expect((await runCtl(['state'])).code).toBe(2);
    const frame = await runCtl(['frame', '1 PING']);
    expect(frame.stdout).toBe('1 PING*8C6F\n');
  });
});

describe('a two-door car', () => {
  let dir: string;
  let sim: SimProcess;
  let hw: ActuatorPort;

  beforeAll(async () => {
    requireBuilt();
    dir = tempDir();
    sim = await startSim(['--socket', join(dir, 'car.sock'), '--doors', '2']);
    hw = await openHardware(join(dir, 'car.sock'), { timeoutMs: TIMEOUT_MS });
  });
  afterAll(async () => {
    await hw.close();
    await sim.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports two doors and refuses rear doors with NODOOR', async () => {
    expect((await hw.state()).doors).toEqual({ 'front-left': 'locked', 'front-right': 'locked' });
    const err = await expectCode(hw.unlock(['rear-left']), 'CK_HW_REJECTED');
    expect(isCarkeyError(err) && err.details).toMatchObject({ code: 'NODOOR' });
    await hw.unlock();
    expect((await hw.state()).doors).toEqual({ 'front-left': 'unlocked', 'front-right': 'unlocked' });
  });
});

describe('simulator robustness and lifecycle', () => {
  let dir: string;
  const sims: SimProcess[] = [];

  beforeAll(() => {
    requireBuilt();
    dir = tempDir();
  });
  afterEach(async () => {
    await Promise.all(sims.splice(0).map((s) => s.stop()));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers every bad host line with a typed ERR and keeps serving', async () => {
    const path = join(dir, 'bad.sock');
    sims.push(await startSim(['--socket', path]));
    const garbage = [
      `${'A'.repeat(600)}\n`,
      '1 PI\u0001NG\n',
      '2 PING\n',
      sealLine('3 FROB').replace('\n', '\r\n'),
      sealLine('4 LOCK boot'),
      sealLine('5 DISPLAY SHOW %ZZ'),
      sealLine('6 PING'),
    ].join('');
    const peer = await RawPeer.connect(path);
    const lines = await peer.exchange(garbage, (line) => line.startsWith('6 '));
    peer.close();
    const replies = lines.map((line) => {
      const parsed = parseControllerLine(line);
      if (!parsed.ok) throw new Error(`sim sent a malformed line: ${line}`);
      return parsed.value.kind === 'err' ? `${parsed.value.id} ${parsed.value.code}` : parsed.value.kind === 'ok' ? `${parsed.value.id} OK` : 'event';
    });
    expect(replies).toEqual(['0 TOOLONG', '0 BADCHAR', '0 CRC', '3 UNKNOWN', '4 ARGS', '5 SYNTAX', '6 OK']);
  });

  it('survives arbitrary bytes on the host and control sockets', async () => {
    const path = join(dir, 'fuzz.sock');
    sims.push(await startSim(['--socket', path]));
    const blobs = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2000 }), { numRuns: 40, seed: 4242 });
    const host = await RawPeer.connect(path);
    const control = await RawPeer.connect(`${path}.ctl`);
    const bytes = (text: string): number[] => [...new TextEncoder().encode(text)];
    for (const [i, blob] of blobs.entries()) {
      const id = i + 1;
      const hostLines = await host.exchange(new Uint8Array([...blob, 0x0a, ...bytes(sealLine(`${id} PING`))]), (line) => line.startsWith(`${id} `));
      expect(hostLines.at(-1)).toMatch(new RegExp(`^${id} OK firmware=`));
      const controlLines = await control.exchange(new Uint8Array([...blob, 0x0a, ...bytes(`${id} PING\n`)]), (line) => line.startsWith(`${id} `));
      expect(controlLines.at(-1)).toMatch(new RegExp(`^${id} OK `));
    }
    host.close();
    control.close();
    expect(sims[0]?.child.exitCode).toBeNull();
  });

  it('shuts down cleanly on SIGTERM and removes its sockets', async () => {
    const path = join(dir, 'term.sock');
    const sim = await startSim(['--socket', path]);
    expect(existsSync(path) && existsSync(`${path}.ctl`)).toBe(true);
    expect(await sim.stop()).toBe(0);
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.ctl`)).toBe(false);
  });

  it('replaces a stale socket file but refuses a live one or a regular file', async () => {
    const path = join(dir, 'stale.sock');
    const crashed = await startSim(['--socket', path]);
    crashed.child.kill('SIGKILL');
    await new Promise((r) => crashed.child.once('exit', r));
    expect(existsSync(path)).toBe(true);
    const live = await startSim(['--socket', path]);
    sims.push(live);
    await expect(startSim(['--socket', path])).rejects.toThrow(/in use/);
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'not a socket');
    await expect(startSim(['--socket', file])).rejects.toThrow(/not a socket/);
  });

  it('rejects bad flags with exit code 2', async () => {
    await expect(startSim(['--socket', join(dir, 'x.sock'), '--doors', '3'])).rejects.toThrow(/exited \(2\)/);
    await expect(startSim([])).rejects.toThrow(/exited \(2\)/);
  });
});

describe('driver error mapping', () => {
  let dir: string;
  const servers: net.Server[] = [];

  beforeAll(() => {
    dir = tempDir();
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A scripted stand-in controller, only to provoke driver failures a correct sim never produces. */
  async function fakeController(name: string, answer: (id: number, verb: string) => string | undefined): Promise<string> {
    const path = join(dir, name);
    const server = net.createServer((socket) => {
      const splitter = new LineSplitter();
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        for (const item of splitter.push(chunk)) {
          if (!item.ok) continue;
          const request = parseRequest(item.line);
          if (!request.ok) continue;
          const reply = answer(request.value.id, request.value.command.verb);
          if (reply !== undefined) socket.write(reply);
        }
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(path, r));
    return path;
  }

  const ping = (id: number): string => formatOk(id, ['firmware=fake/1', 'doors=4']);

  it('unreachable paths are CK_HW_UNAVAILABLE', async () => {
    await expectCode(openHardware(join(dir, 'nothing-here')), 'CK_HW_UNAVAILABLE');
    const file = join(dir, 'regular');
    writeFileSync(file, '');
    await expectCode(openHardware(file), 'CK_HW_UNAVAILABLE');
    await expectCode(openHardware('/dev/null'), 'CK_HW_UNAVAILABLE');
    const ctl = await runCtl(['--socket', join(dir, 'nothing-here'), 'state', '--json']);
    expect(ctl.code).toBe(6);
    expect(JSON.parse(ctl.stdout)).toMatchObject({ ok: false, error: { code: 'CK_HW_UNAVAILABLE' } });
  });

  it('a silent controller is CK_HW_TIMEOUT, at open and per request', async () => {
    await expectCode(openHardware(await fakeController('mute.sock', () => undefined), { timeoutMs: 200 }), 'CK_HW_TIMEOUT');
    const path = await fakeController('half-mute.sock', (id, verb) => (verb === 'PING' || verb === 'LOCK' ? ping(id) : undefined));
    const hw = await openHardware(path, { timeoutMs: 200 });
    await expectCode(hw.state(), 'CK_HW_TIMEOUT');
    await hw.lock();
    await hw.close();
  });

  it('garbled or inconsistent replies are CK_HW_BAD_REPLY', async () => {
    const path = await fakeController('garbled.sock', (id, verb) => {
      if (verb === 'PING') return ping(id);
      if (verb === 'STATE') return formatOk(id, ['doors=4', 'drive=sideways']);
      if (verb === 'LOCK') return `${id} OK*0000\n`;
      return sealLine(`${id} PERHAPS`);
    });
    const hw = await openHardware(path, { timeoutMs: 2000 });
    await expectCode(hw.state(), 'CK_HW_BAD_REPLY');
    await expectCode(hw.lock(), 'CK_HW_BAD_REPLY');
    await expectCode(hw.unlock(), 'CK_HW_BAD_REPLY');
    await hw.close();
    await expectCode(hw.state(), 'CK_HW_UNAVAILABLE');
  });

  it('door positions: firmware without door sensing reports none (positions absent); some but not all is a bad reply', async () => {
    const base = ['doors=2', 'front-left=locked', 'front-right=unlocked', 'drive=off', 'trunk=closed', 'display1=', 'display2=', 'beeps=0', 'flashes=0'];
    const path = await fakeController('old-firmware.sock', (id, verb) => {
      if (verb === 'PING') return formatOk(id, ['firmware=old/1', 'doors=2']);
      return formatOk(id, base);
    });
    const hw = await openHardware(path, { timeoutMs: 2000 });
    const state = await hw.state();
    expect(state.doors).toEqual({ 'front-left': 'locked', 'front-right': 'unlocked' });
    expect(state.positions).toBeUndefined();
    expect('positions' in state).toBe(false);
    await hw.close();
    const partial = await fakeController('partial-doors.sock', (id, verb) => (verb === 'PING' ? formatOk(id, ['firmware=odd/1', 'doors=2']) : formatOk(id, [...base, 'front-left-door=open'])));
    const odd = await openHardware(partial, { timeoutMs: 2000 });
    await expectCode(odd.state(), 'CK_HW_BAD_REPLY');
    await odd.close();
  });

  it('a controller that does not speak the protocol fails at open', async () => {
    const path = await fakeController('wrong.sock', (id) => formatOk(id, ['hello']));
    await expectCode(openHardware(path, { timeoutMs: 2000 }), 'CK_HW_BAD_REPLY');
  });
});

describe('reconnecting after the controller goes away', () => {
  let dir: string;
  const sims: SimProcess[] = [];
  const cleanupServers: net.Server[] = [];
  let hw: ActuatorPort | undefined;

  beforeAll(() => {
    requireBuilt();
    dir = tempDir();
  });
  afterAll(async () => {
    await hw?.close();
    await Promise.all(cleanupServers.map((s) => new Promise((r) => s.close(r))));
    await Promise.all(sims.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports link down, fails calls with CK_HW_UNAVAILABLE, then reconnects by itself', async () => {
    const path = join(dir, 'car.sock');
    const first = await startSim(['--socket', path]);
    sims.push(first);
    const port = await openHardware(path, { timeoutMs: TIMEOUT_MS });
    hw = port;
    const recorder = new EventRecorder(port);
    await port.unlock();
    expect(await first.stop()).toBe(0);
    await recorder.waitFor((e) => e.kind === 'link' && e.state === 'down');
    await expectCode(port.state(), 'CK_HW_UNAVAILABLE');

    sims.push(await startSim(['--socket', path]));
    await recorder.waitFor((e) => e.kind === 'link' && e.state === 'up');
    // a fresh controller powers on locked
    expect(Object.values((await port.state()).doors)).toEqual(['locked', 'locked', 'locked', 'locked']);
    const from = recorder.events.length;
    expect((await runCtl(['--socket', path, 'press-button'])).code).toBe(0);
    await recorder.waitFor((e) => e.kind === 'button', from);
  });

  it('close() aborts a reconnect attempt to a controller that never answers (no wait for the reply timeout)', async () => {
    const path = join(dir, 'wedged.sock');
    const sim = await startSim(['--socket', path]);
    sims.push(sim);
    // a reply timeout far beyond this test's own timeout: close() must not wait for it
    const port = await openHardware(path, { timeoutMs: 600_000 });
    const recorder = new EventRecorder(port);
    expect(await sim.stop()).toBe(0);
    await recorder.waitFor((e) => e.kind === 'link' && e.state === 'down');
    // the controller comes back wedged: it accepts the connection and never answers PING
    let released = false;
    const retried = new Promise<void>((resolve) => {
      const server = net.createServer((socket) => {
        socket.on('error', () => undefined);
        socket.on('close', () => (released = true));
        resolve();
      });
      server.listen(path);
      cleanupServers.push(server);
    });
    await retried; // the background retry is now waiting for PING
    await port.close();
    await eventually(() => (released ? Promise.resolve(true) : Promise.reject(new Error('socket still open'))));
    await expectCode(port.state(), 'CK_HW_UNAVAILABLE');
  });

  it('with reconnect off, stays down; close() is idempotent', async () => {
    const path = join(dir, 'once.sock');
    const sim = await startSim(['--socket', path]);
    sims.push(sim);
    const port = await openHardware(path, { timeoutMs: TIMEOUT_MS, reconnect: false });
    const recorder = new EventRecorder(port);
    await sim.stop();
    await recorder.waitFor((e) => e.kind === 'link' && e.state === 'down');
    sims.push(await startSim(['--socket', path]));
    await expectCode(port.state(), 'CK_HW_UNAVAILABLE');
    await port.close();
    await port.close();
    // a new driver on the same path works
    const again = await eventually(() => openHardware(path, { timeoutMs: TIMEOUT_MS }));
    expect((await again.state()).drive).toBe('off');
    await again.close();
  });
});
