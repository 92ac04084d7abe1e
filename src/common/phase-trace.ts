/**
 * Phase timing for performance work: where the time of a command goes
 * (process start → module loaded → scan → connect → MTU → discovery →
 * HELLO → CHALLENGE → REQUEST → RESULT), as one line per mark on stderr.
 *
 * Guarantees: a `PhaseTrace` is an optional sink; code that marks phases
 * does nothing when none is given (`noTrace`). The stderr sink writes one
 * line per mark, `carkey-trace {"phase":"…","t":ms,…}`, where `t` is the
 * injected clock (the CLI passes performance.now(): ms since the process
 * started). The format is parsed by test/bench/phases.ts. Nothing here
 * reads the environment or the clock by itself: the entry point decides
 * whether to trace (CARKEY_TRACE=1) and which clock to use.
 */

/** Extra numbers or strings for a mark (broker time, byte counts, …). */
export type PhaseDetail = Readonly<Record<string, number | string>>;

export type PhaseTrace = (phase: string, detail?: PhaseDetail) => void;

export const TRACE_PREFIX = 'carkey-trace ';

/** The sink that records nothing. */
export const noTrace: PhaseTrace = () => undefined;

/** One line per mark through `write` (e.g. to stderr), timed by `now`. */
export function lineTrace(write: (line: string) => void, now: () => number): PhaseTrace {
  return (phase, detail) => {
    const t = Math.round(now() * 1000) / 1000;
    write(`${TRACE_PREFIX}${JSON.stringify({ phase, t, ...detail })}\n`);
  };
}
