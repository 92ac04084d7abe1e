/**
 * Known-answer tests of the crypto layer on BOTH backends: every Wycheproof
 * Ed25519 and X25519 case and the RFC 8032 section 7.1 vectors
 * (test/vectors/, provenance in test/vectors/SOURCES.md).
 *
 * Guarantees: each vector is one test per backend; the number of cases read
 * is asserted against the file header and the counts in SOURCES.md, so an
 * empty or truncated file cannot pass. The raw-library behaviour the policy
 * exists to correct (tweetnacl accepting S >= L, throwing on wrong lengths) is
 * pinned by Wycheproof tcId.
 */
import { readFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { fromHex, isAllZero, toHex } from '../../src/core/bytes.js';
import type { CryptoBackend } from '../../src/core/crypto/backend.js';
import { nodeBackend } from '../../src/core/crypto/node-backend.js';
import { Crypto } from '../../src/core/crypto/policy.js';
import { tweetnaclBackend } from '../../src/core/crypto/tweetnacl-backend.js';
import type { ErrorCode, Result } from '../../src/core/errors.js';

const BACKENDS: readonly CryptoBackend[] = [nodeBackend, tweetnaclBackend];

// --- vector loading (shape-checked, no `any`) --------------------------------

function readJson(name: string): unknown {
  return JSON.parse(readFileSync(new URL(`../vectors/${name}`, import.meta.url), 'utf8')) as unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(record: Record<string, unknown>, key: string): unknown {
  if (!(key in record)) throw new Error(`vector field missing: ${key}`);
  return record[key];
}

function stringField(record: Record<string, unknown>, key: string): string {
  const value = field(record, key);
  if (typeof value !== 'string') throw new Error(`vector field ${key} is not a string`);
  return value;
}

function arrayField(record: Record<string, unknown>, key: string): unknown[] {
  const value = field(record, key);
  if (!Array.isArray(value)) throw new Error(`vector field ${key} is not an array`);
  return value as unknown[];
}

function recordField(record: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = field(record, key);
  if (!isRecord(value)) throw new Error(`vector field ${key} is not an object`);
  return value;
}

function hexField(record: Record<string, unknown>, key: string): Uint8Array {
  const bytes = fromHex(stringField(record, key));
  if (bytes === undefined) throw new Error(`vector field ${key} is not hex`);
  return bytes;
}

function asRecord(value: unknown): Record<string, unknown> {
  if (!isRecord(value)) throw new Error('vector entry is not an object');
  return value;
}

type WycheproofResult = 'valid' | 'invalid' | 'acceptable';

function resultField(record: Record<string, unknown>): WycheproofResult {
  const value = stringField(record, 'result');
  if (value !== 'valid' && value !== 'invalid' && value !== 'acceptable') throw new Error(`unknown result ${value}`);
  return value;
}

interface WycheproofFile {
  readonly numberOfTests: number;
  readonly groups: Record<string, unknown>[];
}

function readWycheproof(name: string): WycheproofFile {
  const root = asRecord(readJson(name));
  const numberOfTests = field(root, 'numberOfTests');
  if (typeof numberOfTests !== 'number') throw new Error('numberOfTests missing');
  return { numberOfTests, groups: arrayField(root, 'testGroups').map(asRecord) };
}

interface Ed25519Case {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: string;
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  readonly result: WycheproofResult;
}

interface X25519Case {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: string;
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
  readonly shared: Uint8Array;
  readonly result: WycheproofResult;
}

interface Rfc8032Vector {
  readonly name: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
}

function tcIdOf(test: Record<string, unknown>): number {
  const tcId = field(test, 'tcId');
  if (typeof tcId !== 'number') throw new Error('tcId missing');
  return tcId;
}

function flagsOf(test: Record<string, unknown>): string {
  return arrayField(test, 'flags').map(String).join(',');
}

const ed25519File = readWycheproof('wycheproof-c2sp-ed25519_test.json');
const ed25519Cases: Ed25519Case[] = ed25519File.groups.flatMap((group) => {
  const publicKey = hexField(recordField(group, 'publicKey'), 'pk');
  return arrayField(group, 'tests').map((raw): Ed25519Case => {
    const test = asRecord(raw);
    return {
      tcId: tcIdOf(test),
      comment: stringField(test, 'comment'),
      flags: flagsOf(test),
      publicKey,
      message: hexField(test, 'msg'),
      signature: hexField(test, 'sig'),
      result: resultField(test),
    };
  });
});

const x25519File = readWycheproof('wycheproof-c2sp-x25519_test.json');
const x25519Cases: X25519Case[] = x25519File.groups.flatMap((group) =>
  arrayField(group, 'tests').map((raw): X25519Case => {
    const test = asRecord(raw);
    return {
      tcId: tcIdOf(test),
      comment: stringField(test, 'comment'),
      flags: flagsOf(test),
      publicKey: hexField(test, 'public'),
      privateKey: hexField(test, 'private'),
      shared: hexField(test, 'shared'),
      result: resultField(test),
    };
  }),
);

const rfc8032Vectors: Rfc8032Vector[] = (() => {
  const root = readJson('rfc8032-ed25519.json');
  if (!Array.isArray(root)) throw new Error('rfc8032 vectors: not an array');
  return (root as unknown[]).map((raw) => {
    const entry = asRecord(raw);
    return {
      name: stringField(entry, 'name'),
      seed: hexField(entry, 'secretKey'),
      publicKey: hexField(entry, 'publicKey'),
      message: hexField(entry, 'message'),
      signature: hexField(entry, 'signature'),
    };
  });
})();

// --- helpers -----------------------------------------------------------------

/** The error code of a failed Result, or 'ok'. */
function codeOf<T>(result: Result<T>): ErrorCode | 'ok' {
  return result.ok ? 'ok' : result.error.code;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function ed25519Case(tcId: number): Ed25519Case {
  const found = ed25519Cases.find((c) => c.tcId === tcId);
  if (found === undefined) throw new Error(`no Wycheproof Ed25519 tcId ${tcId}`);
  return found;
}

/** tweetnacl's own detached verify, without our wrapper: true, false or 'throws'. */
function rawTweetnaclVerify(c: Ed25519Case): boolean | 'throws' {
  try {
    return nacl.sign.detached.verify(c.message, c.signature, c.publicKey);
  } catch {
    return 'throws';
  }
}

/** The S >= L cases (s + kL, and "S just above the bound"). */
const MALLEABLE_S_TCIDS = [63, 64, 65, 66, 85];
/** Signatures of the wrong length (0, 32, 62, 66, 96, 65 and 63 bytes). */
const WRONG_LENGTH_TCIDS = range(30, 41);

// --- Wycheproof Ed25519 --------------------------------------------------------

describe('Wycheproof Ed25519 vector file', () => {
  it('holds 151 cases (88 valid, 63 invalid), as its header and SOURCES.md say', () => {
    expect(ed25519Cases).toHaveLength(151);
    expect(ed25519File.numberOfTests).toBe(151);
    expect(ed25519Cases.filter((c) => c.result === 'valid')).toHaveLength(88);
    expect(ed25519Cases.filter((c) => c.result === 'invalid')).toHaveLength(63);
    expect(new Set(ed25519Cases.map((c) => c.tcId)).size).toBe(151);
  });

  it('has exactly tcId 30-41 as the wrong-length signatures', () => {
    expect(ed25519Cases.filter((c) => c.signature.length !== 64).map((c) => c.tcId)).toEqual(WRONG_LENGTH_TCIDS);
  });
});

describe.each(BACKENDS)('Wycheproof Ed25519 through Crypto.verify on $name', (backend) => {
  const crypto = new Crypto(backend);

  it.each(ed25519Cases)('tcId $tcId ($result) [$flags] $comment', (c) => {
    let result: Result<true> | undefined;
    expect(() => {
      result = crypto.verify(c.publicKey, c.message, c.signature);
    }).not.toThrow();
    if (result === undefined) throw new Error('verify returned nothing');
    if (c.result === 'valid') {
      expect(codeOf(result)).toBe('ok');
    } else {
      expect(codeOf(result)).toBe(c.signature.length === 64 ? 'CK_CRYPTO_BAD_SIGNATURE' : 'CK_CRYPTO_BAD_LENGTH');
    }
  });
});

describe('what the policy adds over raw tweetnacl, by Wycheproof tcId', () => {
  it('raw tweetnacl ACCEPTS the S >= L malleability cases 63-66 and 85', () => {
    for (const tcId of MALLEABLE_S_TCIDS) {
      const c = ed25519Case(tcId);
      expect(c.result, `tcId ${tcId}`).toBe('invalid');
      expect(rawTweetnaclVerify(c), `tcId ${tcId}`).toBe(true);
    }
  });

  it('raw tweetnacl THROWS on the wrong-length signatures 30-41', () => {
    for (const tcId of WRONG_LENGTH_TCIDS) expect(rawTweetnaclVerify(ed25519Case(tcId)), `tcId ${tcId}`).toBe('throws');
  });

  it('raw tweetnacl agrees with Wycheproof on every other case', () => {
    const disagreeing = ed25519Cases
      .filter((c) => rawTweetnaclVerify(c) !== (c.result === 'valid'))
      .map((c) => c.tcId)
      .sort((a, b) => a - b);
    expect(disagreeing).toEqual([...WRONG_LENGTH_TCIDS, ...MALLEABLE_S_TCIDS]);
  });

  it.each(BACKENDS)('the policy on $name rejects 63-66 and 85 as S >= L, before the backend is asked', (backend) => {
    const crypto = new Crypto(backend);
    for (const tcId of MALLEABLE_S_TCIDS) {
      const c = ed25519Case(tcId);
      const result = crypto.verify(c.publicKey, c.message, c.signature);
      expect(codeOf(result), `tcId ${tcId}`).toBe('CK_CRYPTO_BAD_SIGNATURE');
      expect(result.ok ? '' : result.error.message, `tcId ${tcId}`).toContain('S >= L');
    }
  });

  it.each(BACKENDS)('the policy on $name returns CK_CRYPTO_BAD_LENGTH for 30-41', (backend) => {
    const crypto = new Crypto(backend);
    for (const tcId of WRONG_LENGTH_TCIDS) {
      const c = ed25519Case(tcId);
      expect(codeOf(crypto.verify(c.publicKey, c.message, c.signature)), `tcId ${tcId}`).toBe('CK_CRYPTO_BAD_LENGTH');
    }
  });

  it('the OpenSSL backend alone (no policy) already agrees with every case', () => {
    const disagreeing = ed25519Cases.filter(
      (c) => nodeBackend.ed25519Verify(c.publicKey, c.message, c.signature) !== (c.result === 'valid'),
    );
    expect(disagreeing.map((c) => c.tcId)).toEqual([]);
  });
});

// --- Wycheproof X25519 ---------------------------------------------------------

describe('Wycheproof X25519 vector file', () => {
  it('holds 518 cases (264 valid, 254 acceptable), 31 with an all-zero shared secret', () => {
    expect(x25519Cases).toHaveLength(518);
    expect(x25519File.numberOfTests).toBe(518);
    expect(x25519Cases.filter((c) => c.result === 'valid')).toHaveLength(264);
    expect(x25519Cases.filter((c) => c.result === 'acceptable')).toHaveLength(254);
    expect(x25519Cases.filter((c) => isAllZero(c.shared))).toHaveLength(31);
    expect(new Set(x25519Cases.map((c) => c.tcId)).size).toBe(518);
  });

  it('flags ZeroSharedSecret on exactly the all-zero cases, and has 19 non-canonical public keys', () => {
    for (const c of x25519Cases) expect(c.flags.split(',').includes('ZeroSharedSecret'), `tcId ${c.tcId}`).toBe(isAllZero(c.shared));
    expect(x25519Cases.filter((c) => c.flags.split(',').includes('NonCanonicalPublic'))).toHaveLength(19);
  });
});

describe.each(BACKENDS)('Wycheproof X25519 through Crypto.sharedSecret on $name', (backend) => {
  const crypto = new Crypto(backend);

  it.each(x25519Cases)('tcId $tcId ($result) [$flags] $comment', (c) => {
    let result: Result<Uint8Array> | undefined;
    expect(() => {
      result = crypto.sharedSecret(c.privateKey, c.publicKey);
    }).not.toThrow();
    if (result === undefined) throw new Error('sharedSecret returned nothing');
    if (isAllZero(c.shared)) {
      expect(codeOf(result)).toBe('CK_CRYPTO_ZERO_SHARED_SECRET');
    } else {
      expect(result.ok ? toHex(result.value) : result.error.code).toBe(toHex(c.shared));
    }
  });
});

// --- RFC 8032 ------------------------------------------------------------------

describe('RFC 8032 vector file', () => {
  it('holds the five section 7.1 vectors', () => {
    expect(rfc8032Vectors.map((v) => v.name)).toEqual(['1', '2', '3', '1024', 'SHA(abc)']);
    expect(rfc8032Vectors.find((v) => v.name === '1024')?.message).toHaveLength(1023);
  });
});

describe.each(BACKENDS)('RFC 8032 Ed25519 on $name', (backend) => {
  const crypto = new Crypto(backend);

  it.each(rfc8032Vectors)('TEST $name: public key, exact signature, verify', (v) => {
    expect(toHex(crypto.publicKeyFromSeed(v.seed))).toBe(toHex(v.publicKey));
    expect(toHex(crypto.sign(v.seed, v.message))).toBe(toHex(v.signature));
    expect(codeOf(crypto.verify(v.publicKey, v.message, v.signature))).toBe('ok');
    expect(crypto.checkPublicKey(v.publicKey).ok).toBe(true);
  });

  it.each(rfc8032Vectors)('TEST $name: one flipped message bit fails to verify', (v) => {
    const message = v.message.length === 0 ? Uint8Array.of(0) : Uint8Array.from(v.message);
    if (v.message.length > 0) message[0] = (message[0] ?? 0) ^ 0x01;
    expect(codeOf(crypto.verify(v.publicKey, message, v.signature))).toBe('CK_CRYPTO_BAD_SIGNATURE');
  });
});
