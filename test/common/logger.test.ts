import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/logger.js';

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
