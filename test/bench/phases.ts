/**
 * Pure helpers for the `carkey unlock` phase benchmarks: read the
 * `CARKEY_TRACE=1` marks a run wrote on stderr (src/common/phase-trace.ts),
 * split the run into phases, count the GATT traffic and the connection
 * events from connect to RESULT, and compute the floor a run is compared
 * with.
 *
 * Guarantees: no I/O, no clock. `parseTrace` ignores every line that is not
 * a well-formed mark (progress and warnings share stderr). `splitPhases`
 * returns undefined when a mark it needs is missing, never a made-up figure.
 */
import { TRACE_PREFIX } from '../../src/common/phase-trace.js';

export interface TraceMark {
  readonly phase: string;
  /** ms since the process started */
  readonly t: number;
  readonly detail: Readonly<Record<string, number | string>>;
}

export function parseTrace(stderr: string): TraceMark[] {
  const marks: TraceMark[] = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith(TRACE_PREFIX)) continue;
    let value: unknown;
    try {
      value = JSON.parse(line.slice(TRACE_PREFIX.length));
    } catch {
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    const { phase, t, ...rest } = value as Record<string, unknown>;
    if (typeof phase !== 'string' || typeof t !== 'number' || !Number.isFinite(t)) continue;
    const detail: Record<string, number | string> = {};
    for (const [key, item] of Object.entries(rest)) if (typeof item === 'number' || typeof item === 'string') detail[key] = item;
    marks.push({ phase, t, detail });
  }
  return marks;
}

/** Where one `carkey unlock` run's time went, ms. */
export interface PhaseSplit {
  /** process start → the entry module's body runs (every static import loaded) */
  readonly load: number;
  /** module loaded → scan started (key store, seed, radio connection) */
  readonly prepare: number;
  /** scan started → the car's advertisement accepted */
  readonly scan: number;
  /** advertisement → link up (the initiator waits for the car's next advertising event) */
  readonly connect: number;
  /** link up → MTU exchanged → discovery → subscribed */
  readonly setup: number;
  /** HELLO written → CHALLENGE received */
  readonly challenge: number;
  /** CHALLENGE received → REQUEST handed to the radio (phone CPU: verify, derive, sign, seal) */
  readonly think: number;
  /** REQUEST → RESULT */
  readonly result: number;
  /** RESULT → the process's last mark (disconnect, store, output) */
  readonly finish: number;
  /** the first write → RESULT */
  readonly firstWriteToResult: number;
  /** process start → RESULT */
  readonly toResult: number;
  /** process start → exit mark */
  readonly total: number;
}

function first(marks: readonly TraceMark[], phase: string): TraceMark | undefined {
  return marks.find((m) => m.phase === phase);
}

export function splitPhases(marks: readonly TraceMark[]): PhaseSplit | undefined {
  const t = (phase: string): number | undefined => first(marks, phase)?.t;
  const loaded = t('main-loaded');
  const scan = t('scan-start');
  const adv = t('adv-seen');
  const linkOpen = t('link-open');
  const subscribed = t('subscribed');
  const hello = t('hello');
  const challenge = t('challenge');
  const request = t('request');
  const result = t('result');
  const firstWrite = t('write');
  const end = marks.length === 0 ? undefined : marks[marks.length - 1]?.t;
  const all = [loaded, scan, adv, linkOpen, subscribed, hello, challenge, request, result, firstWrite, end];
  if (all.some((value) => value === undefined)) return undefined;
  const [l, s, a, o, sub, h, c, r, res, w, e] = all as number[] as [number, number, number, number, number, number, number, number, number, number, number];
  return {
    load: l,
    prepare: s - l,
    scan: a - s,
    connect: o - a,
    setup: sub - o,
    challenge: c - h,
    think: r - c,
    result: res - r,
    finish: e - res,
    firstWriteToResult: res - w,
    toResult: res,
    total: e,
  };
}

/** GATT traffic of one run (what the phone's transport did). */
export interface GattCount {
  readonly writes: number;
  readonly notifications: number;
  /** ATT request/response pairs: MTU exchange, discovery, CCCD write, each write with response */
  readonly roundTrips: number;
}

export function countGatt(marks: readonly TraceMark[]): GattCount {
  const writes = marks.filter((m) => m.phase === 'write');
  const withResponse = writes.filter((m) => m.detail.withResponse === 1).length;
  const setup = ['mtu', 'discovered', 'subscribed'].filter((phase) => first(marks, phase) !== undefined).length;
  return { writes: writes.length, notifications: marks.filter((m) => m.phase === 'notification').length, roundTrips: setup + withResponse };
}

/**
 * Connection events from the link's first event (the anchor) to the RESULT's
 * notification, from broker times: notifications carry their event's time
 * (+ host jitter ≤ `jitterMs`), and `brokerNow` is read just after the link
 * came up, so the anchor is the last event time at or before it, on the
 * grid the notifications sit on. Undefined without the marks (not the sim
 * radio, or no trace). Exact when less time passed between the anchor and
 * the time read than the interval minus `jitterMs`.
 */
export function connectionEvents(marks: readonly TraceMark[], intervalMs: number, jitterMs: number): number | undefined {
  const brokerNow = first(marks, 'broker-time')?.detail.brokerNow;
  const notes = marks.filter((m) => m.phase === 'notification').map((m) => m.detail.at);
  const resultAt = notes[notes.length - 1];
  if (typeof brokerNow !== 'number' || typeof resultAt !== 'number') return undefined;
  // resultAt = anchor + k·interval + j with j in [0, jitterMs], and brokerNow = anchor + d with
  // d in [0, interval − jitterMs): (resultAt − jitterMs − brokerNow) / interval = k + (j − jitterMs − d) / interval
  // is then in (k − 1, k], and its ceiling is k.
  const x = (resultAt - jitterMs - brokerNow) / intervalMs;
  return Math.max(0, Math.ceil(x - 1e-6));
}

/**
 * The fewest connection events from the anchor to the RESULT for an owner
 * unlock on the protocol as specified (docs/protocol.md §4, §9): ATT allows
 * one outstanding request, and every PDU leaves at the first event after it
 * was handed over, so each request/response pair costs two events: MTU
 * exchange, discovery (one service, two characteristics: one round trip on
 * the sim radio), the CCCD write, HELLO → write response + CHALLENGE,
 * REQUEST → write response + RESULT. 5 round trips, 10 events.
 */
export const MIN_EVENTS_OWNER_UNLOCK = 10;

export interface FloorInput {
  /** the radio's advertising interval, ms */
  readonly advertisingIntervalMs: number;
  /** the mean advDelay added to each advertising event (0..10 ms: 5) */
  readonly advDelayMeanMs: number;
  readonly connectionIntervalMs: number;
  readonly events: number;
  /** a bare `node` process started and exited on this machine, ms */
  readonly processStartMs: number;
}

/**
 * The p50 floor of `carkey unlock`: a bare process start, the median wait for
 * the car's advertising event (half an advertising interval plus advDelay),
 * the transmit window (1.25 ms) and the minimum connection events.
 */
export function unlockFloorMs(input: FloorInput): number {
  const advWait = (input.advertisingIntervalMs + input.advDelayMeanMs) / 2;
  return input.processStartMs + advWait + 1.25 + input.events * input.connectionIntervalMs;
}
