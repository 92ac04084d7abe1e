// The wiring of auto-relock and walk-away lock (src/vehicle/auto-lock.ts) against an in-memory
// body controller, with fake timers driving both the interval and the injected monotonic clock.
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CarkeyError } from '../../src/core/errors.js';
import type { AuditFields, AuditKind } from '../../src/core/audit.js';
import type { CloseReason, PeripheralLink } from '../../src/transport/types.js';
import { DOORS, type ActuatorPort, type Door, type DoorPosition, type HardwareEvent, type LockState, type VehicleState } from '../../src/vehicle/actuator.js';
import { AUTO_LOCK_CHECK_MS, AutoLock } from '../../src/vehicle/auto-lock.js';

class FakeCar implements ActuatorPort {
  locks: Record<Door, LockState> = { 'front-left': 'locked', 'front-right': 'locked', 'rear-left': 'locked', 'rear-right': 'locked' };
  positions: Record<Door, DoorPosition> | undefined = { 'front-left': 'closed', 'front-right': 'closed', 'rear-left': 'closed', 'rear-right': 'closed' };
  drive: 'off' | 'ready' = 'off';
  lockFails = false;
  lockCalls = 0;
  private readonly handlers = new Set<(event: HardwareEvent) => void>();

  unlock(): Promise<void> {
    for (const door of DOORS) this.locks[door] = 'unlocked';
    return Promise.resolve();
  }
  lock(): Promise<void> {
    this.lockCalls++;
    if (this.lockFails) return Promise.reject(new CarkeyError('CK_HW_TIMEOUT', 'no answer'));
    for (const door of DOORS) this.locks[door] = 'locked';
    return Promise.resolve();
  }
  setDrive(on: boolean): Promise<void> {
    this.drive = on ? 'ready' : 'off';
    return Promise.resolve();
  }
  openTrunk = (): Promise<void> => Promise.resolve();
  display = (): Promise<void> => Promise.resolve();
  clearDisplay = (): Promise<void> => Promise.resolve();
  signal = (): Promise<void> => Promise.resolve();
  close = (): Promise<void> => Promise.resolve();
  state(): Promise<VehicleState> {
    return Promise.resolve({ doors: { ...this.locks }, ...(this.positions === undefined ? {} : { positions: { ...this.positions } }), drive: this.drive, trunk: 'closed', display: ['', ''] });
  }
  onEvent(handler: (event: HardwareEvent) => void): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }
  door(door: Door, position: DoorPosition): void {
    if (this.positions !== undefined) this.positions[door] = position;
    for (const handler of this.handlers) handler({ kind: 'door', door, position });
  }
  get allLocked(): boolean {
    return DOORS.every((door) => this.locks[door] === 'locked');
  }
}

class FakeLink implements PeripheralLink {
  rssiValue: number | undefined = -55;
  private readonly closeHandlers: ((reason: CloseReason) => void)[] = [];
  constructor(readonly id: string) {}
  mtu = (): number => 185;
  rssi = (): number | undefined => this.rssiValue;
  onChunk = (): (() => void) => () => undefined;
  onSubscribed = (): (() => void) => () => undefined;
  onClose(handler: (reason: CloseReason) => void): () => void {
    this.closeHandlers.push(handler);
    return () => undefined;
  }
  notify = (): Promise<void> => Promise.resolve();
  disconnect = (): Promise<void> => Promise.resolve();
  end(reason: CloseReason): void {
    for (const handler of this.closeHandlers) handler(reason);
  }
}

interface Written {
  readonly kind: AuditKind;
  readonly fields: AuditFields;
}

let car: FakeCar;
let written: Written[];
let others: { key: string; rssi: number | undefined }[];
let autoLock: AutoLock | undefined;
/** The injected monotonic clock; the wall clock (Date) is faked separately and may jump. */
let mono = 0;

function start(options: { relockMs?: number; walkAway?: boolean }): AutoLock {
  autoLock = new AutoLock({
    autoRelock: options.relockMs === undefined ? undefined : { afterMs: options.relockMs },
    walkAway: options.walkAway === true ? { leaveRssi: -80, hysteresisDb: 6, graceMs: 2000, doorWaitMs: 30_000 } : undefined,
    hardware: car,
    audit: { append: (kind, fields) => written.push({ kind, fields }) },
    logger: pino({ level: 'silent' }),
    monotonic: () => mono,
    links: () => others,
  });
  return autoLock;
}

/** Let `ms` pass on both clocks, in small steps, settling promises between interval ticks. */
async function elapse(ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= 50) {
    const step = Math.min(50, left);
    mono += step;
    await vi.advanceTimersByTimeAsync(step);
  }
  await vi.advanceTimersByTimeAsync(0);
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
  mono = 5000;
  car = new FakeCar();
  written = [];
  others = [];
});

afterEach(() => {
  autoLock?.stop();
  autoLock = undefined;
  vi.useRealTimers();
});

describe('AutoLock wiring', () => {
  it('with both features off it is the hardware port itself and runs no timer', () => {
    const lock = start({});
    expect(lock.port).toBe(car);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an unlock through its port relocks after afterMs and audits it', async () => {
    const lock = start({ relockMs: 10_000 });
    await lock.port.unlock('all');
    await elapse(10_000 - AUTO_LOCK_CHECK_MS);
    expect(car.allLocked).toBe(false);
    await elapse(2 * AUTO_LOCK_CHECK_MS);
    expect(car.allLocked).toBe(true);
    expect(written).toEqual([{ kind: 'auto-relock', fields: { reason: 'no-door-opened', afterMs: 10_000 } }]);
    expect(lock.status()).toEqual({ autoRelock: { armed: false }, walkAway: null });
  });

  it.each([
    ['forward', 3_600_000],
    ['back', -3_600_000],
  ])('the system clock jumping an hour %s neither fires it early nor postpones it', async (_name, jump) => {
    const lock = start({ relockMs: 10_000 });
    await lock.port.unlock('all');
    vi.setSystemTime(Date.now() + jump);
    await elapse(5000);
    expect(car.allLocked).toBe(false);
    await elapse(5000 + AUTO_LOCK_CHECK_MS);
    expect(car.allLocked).toBe(true);
  });

  it('a door opening (hardware event) cancels the relock, even if it is shut again before the deadline', async () => {
    const lock = start({ relockMs: 10_000 });
    await lock.port.unlock('all');
    car.door('rear-left', 'open');
    car.door('rear-left', 'closed');
    await elapse(20_000);
    expect(car.allLocked).toBe(false);
    expect(written).toEqual([]);
  });

  it('a lock, or drive ready, through its port cancels it', async () => {
    const lock = start({ relockMs: 10_000 });
    await lock.port.unlock('all');
    await lock.port.setDrive(true);
    await lock.port.setDrive(false);
    await elapse(20_000);
    expect(car.lockCalls).toBe(0);
    await lock.port.unlock('all');
    await lock.port.lock('all');
    await car.unlock();
    await elapse(20_000);
    expect(car.lockCalls).toBe(1);
    expect(written).toEqual([]);
  });

  it('a controller without door sensing: never locks by itself', async () => {
    car.positions = undefined;
    const lock = start({ relockMs: 10_000 });
    await lock.port.unlock('all');
    await elapse(20_000);
    expect(car.lockCalls).toBe(0);
    expect(written).toEqual([]);
  });

  it('a hardware failure while locking is audited with the error code', async () => {
    car.lockFails = true;
    const lock = start({ relockMs: 10_000 });
    await lock.port.unlock('all');
    await elapse(11_000);
    expect(written).toEqual([{ kind: 'auto-relock', fields: { reason: 'no-door-opened', afterMs: 10_000, failed: 'CK_HW_TIMEOUT' } }]);
  });

  it('walk-away: the unlocking link fades below leaveRssi → locked, audited with key and reason', async () => {
    const lock = start({ walkAway: true });
    const link = new FakeLink('l1');
    await lock.port.unlock('all');
    lock.bleUnlocked('k1', link);
    expect(lock.status()).toEqual({ autoRelock: null, walkAway: { watchingKey: 'k1', triggered: false } });
    await elapse(1000);
    link.rssiValue = -90;
    await elapse(1999);
    expect(car.allLocked).toBe(false);
    await elapse(2 * AUTO_LOCK_CHECK_MS);
    expect(car.allLocked).toBe(true);
    expect(written).toEqual([{ kind: 'walk-away', fields: { key: 'k1', reason: 'rssi', rssi: -90, leaveRssi: -80, graceMs: 2000, waitedMs: 0 } }]);
  });

  it('walk-away: not while another key is near; locks once it leaves (within doorWaitMs)', async () => {
    const lock = start({ walkAway: true });
    const link = new FakeLink('l1');
    await lock.port.unlock('all');
    lock.bleUnlocked('k1', link);
    others = [{ key: 'k1', rssi: -95 }, { key: 'k2', rssi: -60 }];
    link.end('link-lost');
    await elapse(10_000);
    expect(car.allLocked).toBe(false);
    others = [{ key: 'k2', rssi: -90 }];
    await elapse(AUTO_LOCK_CHECK_MS * 2);
    expect(car.allLocked).toBe(true);
    expect(written[0]).toMatchObject({ kind: 'walk-away', fields: { key: 'k1', reason: 'link-lost' } });
  });

  it('walk-away: a door open → waits, locks on the door-closed event', async () => {
    const lock = start({ walkAway: true });
    const link = new FakeLink('l1');
    await lock.port.unlock('all');
    lock.bleUnlocked('k1', link);
    car.door('front-left', 'open');
    link.end('link-lost');
    await elapse(10_000);
    expect(car.allLocked).toBe(false);
    car.door('front-left', 'closed');
    await elapse(0);
    expect(car.allLocked).toBe(true);
    expect(written).toHaveLength(1);
  });

  it('walk-away: the same key back on a new link, then a clean disconnect: no lock', async () => {
    const lock = start({ walkAway: true });
    const first = new FakeLink('l1');
    await lock.port.unlock('all');
    lock.bleUnlocked('k1', first);
    first.end('link-lost');
    await elapse(500);
    const second = new FakeLink('l2');
    lock.authenticated('k1', second);
    second.end('remote');
    await elapse(60_000);
    expect(car.lockCalls).toBe(0);
  });
});
