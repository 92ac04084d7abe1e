/**
 * Connection-event timing of one simulated BLE link (the link-layer model).
 *
 * Model: connection events happen at anchor + k·interval. A PDU submitted at
 * time t goes out at the first event strictly after t, after every earlier PDU
 * of the same direction (the link layer is in-order and reliable), and at most
 * `pdusPerEvent` PDUs per direction share one event. Each event fails with
 * probability `lossRate` (a keyed draw per event, so both directions agree);
 * a PDU in a failed event is retransmitted at the next one. If failed events
 * run on for the supervision timeout (at least two intervals) counted from the
 * first failed event, the link is lost. The receiving host sees the PDU after
 * a uniform [0, jitterMs] delay, never before the previous PDU of the same
 * direction. Changing the interval takes effect at the first event after
 * everything already scheduled (like a connection-update instant).
 *
 * Guarantees: pure and deterministic given the KeyedRandom and call sequence;
 * per direction, delivery times never decrease; the number of loop steps is
 * bounded by supervision / interval.
 */

import type { KeyedRandom } from './random.js';

export type Direction = 'c2p' | 'p2c';

const EVENT_EPSILON = 1e-9;

export interface TimingParams {
  readonly intervalMs: number;
  readonly jitterMs: number;
  readonly lossRate: number;
  readonly pdusPerEvent: number;
  readonly supervisionTimeoutMs: number;
}

export type Transfer =
  | { readonly kind: 'delivered'; readonly eventAt: number; readonly deliverAt: number; readonly retries: number }
  | { readonly kind: 'lost'; readonly silentFrom: number; readonly lostAt: number };

interface DirectionState {
  /** Event index of the last PDU scheduled in this epoch, -1 if none. */
  lastEvent: number;
  usedInLastEvent: number;
  lastDeliverAt: number;
  count: number;
}

function freshDirection(): DirectionState {
  return { lastEvent: -1, usedInLastEvent: 0, lastDeliverAt: Number.NEGATIVE_INFINITY, count: 0 };
}

/** The effective supervision timeout: the configured one, but at least two intervals. */
export function effectiveSupervisionMs(params: TimingParams): number {
  return Math.max(params.supervisionTimeoutMs, 2 * params.intervalMs);
}

export class LinkTiming {
  private readonly random: KeyedRandom;
  private params: TimingParams;
  private anchor: number;
  private epoch = 0;
  private readonly directions: Record<Direction, DirectionState> = { c2p: freshDirection(), p2c: freshDirection() };

  /** `openedAt` is the first connection event (event 0). */
  constructor(openedAt: number, params: TimingParams, random: KeyedRandom) {
    this.anchor = openedAt;
    this.params = params;
    this.random = random;
  }

  get current(): TimingParams {
    return this.params;
  }

  /** Time of the first connection event strictly after `t`. */
  nextEventAfter(t: number): number {
    return this.eventTime(this.firstEventIndexAfter(t));
  }

  setParams(now: number, params: TimingParams): void {
    if (params.intervalMs !== this.params.intervalMs) {
      const scheduled = Math.max(now, ...(['c2p', 'p2c'] as const).map((dir) => this.lastEventTime(dir)));
      this.anchor = this.eventTime(this.firstEventIndexAfter(scheduled));
      this.epoch += 1;
      for (const dir of ['c2p', 'p2c'] as const) {
        const state = this.directions[dir];
        state.lastEvent = -1;
        state.usedInLastEvent = 0;
      }
    }
    this.params = params;
  }

  /** Schedule the next PDU of direction `dir`, handed to the link layer at `now`. */
  schedule(dir: Direction, now: number): Transfer {
    const state = this.directions[dir];
    const { pdusPerEvent, jitterMs } = this.params;
    let event = Math.max(this.firstEventIndexAfter(now), state.lastEvent);
    if (event === state.lastEvent && state.usedInLastEvent >= pdusPerEvent) event += 1;
    const firstCandidate = event;
    const supervision = effectiveSupervisionMs(this.params);
    let silentFrom: number | undefined;
    while (this.eventFails(event)) {
      silentFrom ??= this.eventTime(event);
      if (this.eventTime(event + 1) >= silentFrom + supervision) {
        return { kind: 'lost', silentFrom, lostAt: silentFrom + supervision };
      }
      event += 1;
    }
    if (event === state.lastEvent) state.usedInLastEvent += 1;
    else {
      state.lastEvent = event;
      state.usedInLastEvent = 1;
    }
    const eventAt = this.eventTime(event);
    const jitter = jitterMs === 0 ? 0 : jitterMs * this.random.unit('jitter', dir, state.count);
    state.count += 1;
    const deliverAt = Math.max(state.lastDeliverAt, eventAt + jitter);
    state.lastDeliverAt = deliverAt;
    return { kind: 'delivered', eventAt, deliverAt, retries: event - firstCandidate };
  }

  private eventFails(event: number): boolean {
    const { lossRate } = this.params;
    return lossRate > 0 && this.random.unit('event', this.epoch, event) < lossRate;
  }

  private eventTime(event: number): number {
    return this.anchor + event * this.params.intervalMs;
  }

  /** A time within EVENT_EPSILON intervals of an event counts as that event (float noise). */
  private firstEventIndexAfter(t: number): number {
    return Math.max(0, Math.floor((t - this.anchor) / this.params.intervalMs + EVENT_EPSILON) + 1);
  }

  private lastEventTime(dir: Direction): number {
    const { lastEvent } = this.directions[dir];
    return lastEvent < 0 ? Number.NEGATIVE_INFINITY : this.eventTime(lastEvent);
  }
}
