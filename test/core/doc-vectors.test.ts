/**
 * The audit and cloud vectors (docs/protocol.md §17, §18), re-derived from
 * raw primitives (node's SHA-512, tweetnacl) and the byte layouts the spec
 * gives, never from carkey's own code: the audit link hashes and checkpoint,
 * the request signature, the sealed box (opened by hand), the vehicle
 * statement and the remote command/result signatures.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { DEFAULT_VECTORS_PATH } from '../../scripts/gen-vectors.js';

const vectors = JSON.parse(readFileSync(new URL(`../../${DEFAULT_VECTORS_PATH}`, import.meta.url), 'utf8')) as {
  parties: Record<string, Record<string, string>>;
  audit: { genesisHash: string; entries: { seq: number; canonicalUtf8: string; canonicalHex: string; previousHash: string; hash: string }[]; checkpoint: { seq: number; payloadHex: string; hash: string; signature: string }; pageUtf8: string };
  cloud: {
    request: { method: string; path: string; query: string; bodyUtf8: string; bodySha512: string; time: number; nonce: string; signingInput: string; headers: Record<string, string> };
    sealedBox: { recipientEd25519: string; recipientX25519: string; recipientX25519Secret: string; ephemeralSecret: string; plaintextUtf8: string; box: string };
    vehicleStatement: { hex: string };
    remoteCommand: { commandId: string; signed: string; box: string };
    remoteResult: { signed: string; box: string };
  };
};

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const bin = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const label = (text: string): Uint8Array => new Uint8Array([...Buffer.from(text, 'ascii'), 0]);
const sha512 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha512');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
};
const u64 = (value: number): Uint8Array => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
};
const vbytes = (bytes: Uint8Array): Uint8Array => new Uint8Array([bytes.length >> 8, bytes.length & 0xff, ...bytes]);
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(parts.flatMap((p) => [...p]));
const carKey = (): Uint8Array => bin(vectors.parties.car?.publicKey ?? '');
const ownerKey = (): Uint8Array => bin(vectors.parties.owner?.publicKey ?? '');

describe('audit vectors (§18), re-derived', () => {
  it('canonical records are JCS of {fields,kind,seq,time}; link hashes chain from 64 zero bytes; the checkpoint verifies', () => {
    let previous = bin(vectors.audit.genesisHash);
    expect(hex(previous)).toBe('00'.repeat(64));
    for (const entry of vectors.audit.entries) {
      const parsed = JSON.parse(entry.canonicalUtf8) as Record<string, unknown>;
      expect(Object.keys(parsed)).toEqual(['fields', 'kind', 'seq', 'time']);
      expect(Buffer.from(entry.canonicalUtf8, 'utf8').toString('hex')).toBe(entry.canonicalHex);
      expect(entry.previousHash).toBe(hex(previous));
      const hash = sha512(label('carkey/v1/audit-entry'), previous, bin(entry.canonicalHex));
      expect(hex(hash)).toBe(entry.hash);
      previous = hash;
    }
    const { checkpoint } = vectors.audit;
    expect(checkpoint.payloadHex).toBe(hex(cat(label('carkey/v1/audit-checkpoint'), u64(checkpoint.seq), bin(checkpoint.hash))));
    expect(nacl.sign.detached.verify(bin(checkpoint.payloadHex), bin(checkpoint.signature), carKey())).toBe(true);
    const page = JSON.parse(vectors.audit.pageUtf8) as { entries: { hash: string }[]; checkpoints: { signature: string }[]; last: number };
    expect(page.entries.map((e) => e.hash)).toEqual(vectors.audit.entries.map((e) => e.hash));
    expect(page.checkpoints[0]?.signature).toBe(checkpoint.signature);
    expect(page.last).toBe(3);
  });
});

describe('cloud vectors (§17), re-derived', () => {
  it('request signature: label ‖ vbytes(method) ‖ vbytes(path) ‖ vbytes(query) ‖ SHA-512(body) ‖ u64(time) ‖ nonce', () => {
    const r = vectors.cloud.request;
    const body = new Uint8Array(Buffer.from(r.bodyUtf8, 'utf8'));
    expect(hex(sha512(body))).toBe(r.bodySha512);
    const input = cat(label('carkey/v1/cloud-request'), vbytes(Buffer.from(r.method)), vbytes(Buffer.from(r.path)), vbytes(Buffer.from(r.query)), sha512(body), u64(r.time), bin(r.nonce));
    expect(hex(input)).toBe(r.signingInput);
    expect(r.headers['x-carkey-key']).toBe(hex(ownerKey()));
    expect(r.headers['x-carkey-time']).toBe(String(r.time));
    expect(r.headers['x-carkey-nonce']).toBe(r.nonce);
    expect(nacl.sign.detached.verify(input, bin(r.headers['x-carkey-signature'] ?? ''), ownerKey())).toBe(true);
  });

  it('sealed box: Montgomery form of the Ed25519 key, X25519, SHA-512 key derivation, secretbox', () => {
    const s = vectors.cloud.sealedBox;
    const secret = bin(s.recipientX25519Secret);
    expect(hex(nacl.scalarMult.base(secret))).toBe(s.recipientX25519);
    const box = bin(s.box);
    const ephemeral = box.subarray(0, 32);
    expect(hex(nacl.scalarMult.base(bin(s.ephemeralSecret)))).toBe(hex(ephemeral));
    const shared = nacl.scalarMult(secret, ephemeral);
    const okm = sha512(label('carkey/v1/sealed-box'), shared, ephemeral, bin(s.recipientEd25519));
    const opened = nacl.secretbox.open(box.subarray(32), okm.subarray(32, 56), okm.subarray(0, 32));
    expect(opened === null ? null : Buffer.from(opened).toString('utf8')).toBe(s.plaintextUtf8);
  });

  it('vehicle statement: format ‖ car key ‖ issuedAt ‖ vbytes(key list) ‖ signature', () => {
    const bytes = bin(vectors.cloud.vehicleStatement.hex);
    expect(bytes[0]).toBe(1);
    expect(hex(bytes.subarray(1, 33))).toBe(hex(carKey()));
    const listLength = ((bytes[41] ?? 0) << 8) | (bytes[42] ?? 0);
    expect(bytes.length).toBe(43 + listLength + 64);
    expect(nacl.sign.detached.verify(cat(label('carkey/v1/vehicle-statement'), bytes.subarray(0, bytes.length - 64)), bytes.subarray(bytes.length - 64), carKey())).toBe(true);
  });

  it('remote command signed by the owner, result signed by the car; both sealed', () => {
    const command = bin(vectors.cloud.remoteCommand.signed);
    expect(hex(command.subarray(17, 33))).toBe(vectors.cloud.remoteCommand.commandId);
    expect(hex(command.subarray(49, 81))).toBe(hex(ownerKey()));
    expect(nacl.sign.detached.verify(cat(label('carkey/v1/remote-command'), command.subarray(0, command.length - 64)), command.subarray(command.length - 64), ownerKey())).toBe(true);
    const result = bin(vectors.cloud.remoteResult.signed);
    expect(hex(result.subarray(17, 33))).toBe(vectors.cloud.remoteCommand.commandId);
    expect(nacl.sign.detached.verify(cat(label('carkey/v1/remote-result'), result.subarray(0, result.length - 64)), result.subarray(result.length - 64), carKey())).toBe(true);
    expect(bin(vectors.cloud.remoteCommand.box).length).toBe(32 + 16 + command.length);
    expect(bin(vectors.cloud.remoteResult.box).length).toBe(32 + 16 + result.length);
  });
});
