import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, journaldLine, stderrIsJournal } from '../../src/common/logger.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, lines: () => chunks.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logger redaction', () => {
  it.each(['seed', 'secret', 'signature', 'pin', 'startPin', 'code', 'pairingCode', 'passphrase', 'advSecret', 'key'])('redacts %s at the top level and one level down', (field) => {
    const out = capture();
    const logger = createLogger({ name: 'test', level: 'info', destination: out.stream });
    logger.info({ [field]: 'SENSITIVE', nested: { [field]: 'SENSITIVE' }, keyId: 'abcd' }, 'event');
    const [line] = out.lines();
    expect(JSON.stringify(line)).not.toContain('SENSITIVE');
    expect(line).toMatchObject({ [field]: '[redacted]', nested: { [field]: '[redacted]' }, keyId: 'abcd', msg: 'event' });
  });
});

describe('logger keeps what operators need', () => {
  it('error codes (errorCode) and key ids stay readable', () => {
    const out = capture();
    createLogger({ name: 'test', level: 'info', destination: out.stream }).warn({ errorCode: 'CK_HW_TIMEOUT', keyId: '81b6e17919d22381' }, 'x');
    expect(out.lines()[0]).toMatchObject({ errorCode: 'CK_HW_TIMEOUT', keyId: '81b6e17919d22381' });
  });
});

describe('level names and the journald mapping', () => {
  it('logs "level":"error" (a name, not 50), first in the line', () => {
    const out = capture();
    const logger = createLogger({ name: 'test', level: 'info', destination: out.stream });
    logger.error({ errorCode: 'CK_HW_UNAVAILABLE' }, 'x');
    logger.info('y');
    expect(out.lines().map((line) => line.level)).toEqual(['error', 'info']);
  });
  it('under the journal each line carries its syslog priority prefix', () => {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ name: 'test', level: 'trace', destination: stream, journald: true });
    logger.fatal('f');
    logger.error('e');
    logger.warn('w');
    logger.info('i');
    logger.debug('d');
    expect(chunks.map((line) => /^<(\d)>\{"level":"(\w+)"/.exec(line)?.slice(1, 3))).toEqual([['2', 'fatal'], ['3', 'error'], ['4', 'warn'], ['6', 'info'], ['7', 'debug']]);
    expect(JSON.parse(chunks[1]?.slice(3) ?? '')).toMatchObject({ level: 'error', msg: 'e' });
  });
  it('stderr is the journal only when JOURNAL_STREAM names its device and inode', () => {
    const stat = (): { dev: number; ino: number } => ({ dev: 64769, ino: 123456 });
    expect(stderrIsJournal({ JOURNAL_STREAM: '64769:123456' }, stat)).toBe(true);
    expect(stderrIsJournal({ JOURNAL_STREAM: '64769:999' }, stat)).toBe(false);
    expect(stderrIsJournal({}, stat)).toBe(false);
    expect(stderrIsJournal({ JOURNAL_STREAM: 'junk' }, stat)).toBe(false);
  });
  it('a line without a known level passes unchanged', () => {
    expect(journaldLine('{"msg":"x"}\n')).toBe('{"msg":"x"}\n');
    expect(journaldLine('{"level":"warn","msg":"x"}\n')).toBe('<4>{"level":"warn","msg":"x"}\n');
  });
});
