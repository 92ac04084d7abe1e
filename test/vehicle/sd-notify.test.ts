import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createSdNotifier, watchdogPeriodMs } from '../../src/vehicle/sd-notify.js';

const silent = pino({ level: 'silent' });
afterEach(() => vi.useRealTimers());

describe('sd_notify through systemd-notify', () => {
  it('without NOTIFY_SOCKET nothing is run', () => {
    const calls: (readonly string[])[] = [];
    const notifier = createSdNotifier({ env: { WATCHDOG_USEC: '1000000' }, pid: 42, logger: silent, run: (args) => (calls.push(args), Promise.resolve(0)) });
    notifier.ready('x');
    notifier.stopping();
    expect(notifier.enabled).toBe(false);
    expect(calls).toEqual([]);
  });
  it('READY with the main pid and a status, WATCHDOG=1 every half WATCHDOG_USEC, STOPPING at the end', () => {
    vi.useFakeTimers();
    const calls: (readonly string[])[] = [];
    const notifier = createSdNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000' }, pid: 42, logger: silent, run: (args) => (calls.push(args), Promise.resolve(0)) });
    notifier.ready('advertising as abcd');
    expect(calls).toEqual([['--pid=42', '--ready', '--status=advertising as abcd']]);
    vi.advanceTimersByTime(15_000 * 2);
    expect(calls.slice(1)).toEqual([['--pid=42', 'WATCHDOG=1'], ['--pid=42', 'WATCHDOG=1']]);
    notifier.stopping();
    vi.advanceTimersByTime(60_000);
    expect(calls.slice(3)).toEqual([['--pid=42', 'STOPPING=1']]);
  });
  it('a missing systemd-notify never throws', async () => {
    const notifier = createSdNotifier({ env: { NOTIFY_SOCKET: '/x' }, pid: 1, logger: silent, run: () => Promise.reject(new Error('ENOENT')) });
    expect(() => notifier.ready('x')).not.toThrow();
    await Promise.resolve();
  });
  it('the watchdog period: half of WATCHDOG_USEC, only for this pid', () => {
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000' }, 7)).toBe(15_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 7)).toBe(15_000);
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '8' }, 7)).toBeUndefined();
    expect(watchdogPeriodMs({}, 7)).toBeUndefined();
    expect(watchdogPeriodMs({ WATCHDOG_USEC: 'soon' }, 7)).toBeUndefined();
  });
});
