// src/cli/common.ts: output separation (result on stdout, progress on
// stderr, one JSON object with --json), error reports with hints and exit
// codes, and the argument parsers shared by the CLIs.
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { CarkeyError } from '../../src/core/errors.js';
import { configureCommander, errorReport, formatErrorText, integerOption, Output, parseTimeArgument, runProgram, type CliIo } from '../../src/cli/common.js';

function fakeIo(): { io: CliIo; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { io: { stdout, stderr, stdin: new PassThrough(), env: {}, interactive: false }, out: () => out, err: () => err };
}

describe('Output', () => {
  it('keeps progress and warnings off stdout, and prints one JSON object with --json', () => {
    const { io, out, err } = fakeIo();
    const json = new Output(io, true, false);
    json.progress('scanning…');
    json.warn('careful');
    json.text('a QR code');
    json.result({ vehicle: 'van' }, 'unlocked van');
    expect(JSON.parse(out())).toEqual({ ok: true, vehicle: 'van' });
    expect(err()).toBe('scanning…\nwarning: careful\n');

    const human = fakeIo();
    const text = new Output(human.io, false, true);
    text.progress('hidden by --quiet');
    text.result({ vehicle: 'van' }, ['unlocked van', 'second line']);
    expect(human.out()).toBe('unlocked van\nsecond line\n');
    expect(human.err()).toBe('');
  });

  it('reports errors with their exit code and a hint (fixed or computed)', () => {
    const error = new CarkeyError('CK_DENIED', 'start: pin', { category: 'pin' });
    const report = errorReport(error, { CK_DENIED: (e) => `category ${String(e.details?.category)}` });
    expect(report).toEqual({ code: 'CK_DENIED', message: 'the car denied the command: start: pin', exitCode: 3, hint: 'category pin', details: { category: 'pin' } });
    expect(formatErrorText('carkey', report)).toBe('carkey: the car denied the command: start: pin [CK_DENIED]\n  next: category pin\n');
    expect(errorReport(new CarkeyError('CK_TRANSPORT_NOT_FOUND'), {}).hint).toContain('closer');
  });
});

describe('runProgram', () => {
  it('returns the CarkeyError exit code, 2 for usage errors and 0 for help', async () => {
    const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
      const { io, out, err } = fakeIo();
      const program = configureCommander(new Command('t'), io).option('--json');
      program.command('fail').action(() => {
        throw new CarkeyError('CK_TRANSPORT_TIMEOUT');
      });
      program.command('ok').action(() => undefined);
      const output = new Output(io, argv.includes('--json'), false);
      const code = await runProgram({ name: 't', io, argv, program, hints: {}, output: () => output });
      return { code, out: out(), err: err() };
    };
    expect((await run(['ok'])).code).toBe(0);
    expect((await run(['--help'])).code).toBe(0);
    const failed = await run(['--json', 'fail']);
    expect(failed.code).toBe(5);
    expect(JSON.parse(failed.out)).toMatchObject({ ok: false, error: { code: 'CK_TRANSPORT_TIMEOUT', exitCode: 5 } });
    expect(failed.err).toContain('[CK_TRANSPORT_TIMEOUT]');
    const usage = await run(['--json', '--nope']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.out)).toMatchObject({ ok: false, error: { code: 'CK_USAGE' } });
  });
});

describe('argument parsers', () => {
  const now = Date.parse('2025-06-01T12:00:00Z');

  it('parses ISO times, dates, now and relative times', () => {
    expect(parseTimeArgument('now', now, 't')).toBe(now);
    expect(parseTimeArgument('+90m', now, 't')).toBe(now + 90 * 60_000);
    expect(parseTimeArgument('+2d', now, 't')).toBe(now + 2 * 86_400_000);
    expect(parseTimeArgument('2025-07-01', now, 't')).toBe(Date.parse('2025-07-01T00:00:00Z'));
    expect(parseTimeArgument('2025-07-01T18:30+02:00', now, 't')).toBe(Date.parse('2025-07-01T16:30:00Z'));
    for (const bad of ['tomorrow', '2025-07-01T18:30', '+2y', '2025-13-45', '']) {
      expect(() => parseTimeArgument(bad, now, '--until'), bad).toThrow(CarkeyError);
    }
  });

  it('parses bounded integers', () => {
    const parse = integerOption('--timeout', 100, 1000);
    expect(parse('250')).toBe(250);
    for (const bad of ['99', '1001', '1e3', '-5', 'abc', '']) expect(() => parse(bad), bad).toThrow(CarkeyError);
  });
});
