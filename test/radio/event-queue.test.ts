/** The simulation event queue runs events in (time, insertion) order with their logical time. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../firmware-sim/radio/event-queue.js';

describe('EventQueue', () => {
  it('runs due events in time order, ties in insertion order, passing the scheduled time', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 200 }), fc.integer({ min: 0, max: 60 }), (times, now) => {
        const queue = new EventQueue();
        const ran: [number, number][] = [];
        times.forEach((at, index) => queue.schedule(at, (t) => ran.push([t, index])));
        const count = queue.runDue(now);
        const expected = times
          .map((at, index) => [at, index] as [number, number])
          .filter(([at]) => at <= now)
          .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        expect(ran).toEqual(expected);
        expect(count).toBe(expected.length);
        expect(queue.size).toBe(times.length - expected.length);
        const rest = times.filter((at) => at > now);
        expect(queue.nextAt()).toBe(rest.length === 0 ? undefined : Math.min(...rest));
      }),
    );
  });

  it('runs events scheduled by due events when they are due too', () => {
    const queue = new EventQueue();
    const ran: number[] = [];
    queue.schedule(1, (t) => {
      ran.push(t);
      queue.schedule(t + 1, (u) => ran.push(u));
      queue.schedule(t + 10, (u) => ran.push(u));
    });
    queue.runDue(5);
    expect(ran).toEqual([1, 2]);
    expect(queue.nextAt()).toBe(11);
  });
});
