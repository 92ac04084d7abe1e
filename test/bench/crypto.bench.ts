/**
 * Crypto benchmarks, for each backend (node = OpenSSL, tweetnacl = pure JS),
 * measured through the strict `Crypto` policy layer because that is what the
 * protocol code calls (its length, S < L and key checks cost well under a
 * microsecond next to the primitives).
 *
 * Guarantees: inputs are fixed (derived from SHA-512 of labels), so runs are
 * comparable; each setup checks its op gives the right answer once before it
 * is timed, so a benchmark never measures a failing path.
 */
import { utf8 } from '../../src/core/bytes.js';
import { createCrypto, type BackendName, type Crypto } from '../../src/core/crypto/index.js';
import { registerBench, type BenchOp } from './harness.js';

const BACKENDS: readonly BackendName[] = ['node', 'tweetnacl'];
const crypto: Record<BackendName, Crypto> = { node: createCrypto('node'), tweetnacl: createCrypto('tweetnacl') };

/** Deterministic bytes: SHA-512 of the label, stretched by counter. */
function fixedBytes(label: string, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let block = 0, offset = 0; offset < length; block++, offset += 64) {
    out.set(crypto.node.hash(utf8(`carkey-bench/${label}/${block}`)).subarray(0, Math.min(64, length - offset)), offset);
  }
  return out;
}

function checked(what: string, condition: boolean): void {
  if (!condition) throw new Error(`benchmark setup: ${what} gave a wrong answer`);
}

const seed = fixedBytes('ed25519-seed', 32);
/** A challenge-sized message: the protocol signs 64-byte transcript hashes. */
const message = fixedBytes('message', 64);
const publicKey = crypto.node.publicKeyFromSeed(seed);
const signature = crypto.node.sign(seed, message);
const xSecret = fixedBytes('x25519-secret', 32);
const xPeer = crypto.node.x25519KeyPair(fixedBytes('x25519-peer', 32)).publicKey;
const data1KiB = fixedBytes('sha512-input', 1024);
const boxKey = fixedBytes('secretbox-key', 32);
const boxNonce = fixedBytes('secretbox-nonce', 24);
const plaintext256 = fixedBytes('secretbox-plaintext', 256);
const sealed256 = crypto.node.seal(plaintext256, boxNonce, boxKey);

for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`ed25519-sign/${name}`, () => c.sign(seed, message));
}
for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`ed25519-verify/${name}`, {
    setup: (): BenchOp => {
      checked('verify', c.verify(publicKey, message, signature).ok);
      return () => c.verify(publicKey, message, signature);
    },
  });
}

/**
 * The node backend caches the last 256 verify keys as KeyObjects. Rotating
 * through 1024 distinct keys defeats the cache: this is the cost of verifying
 * under a key the car has not seen recently (e.g. a freshly shared key).
 */
registerBench('ed25519-verify-uncached-key/node', {
  setup: (): BenchOp => {
    const c = crypto.node;
    const keys = Array.from({ length: 1024 }, (_, i) => {
      const s = fixedBytes(`uncached-seed-${i}`, 32);
      return { publicKey: c.publicKeyFromSeed(s), signature: c.sign(s, message) };
    });
    for (const k of keys) checked('verify (uncached)', c.verify(k.publicKey, message, k.signature).ok);
    let next = 0;
    return () => {
      const k = keys[next] ?? keys[0];
      next = (next + 1) % keys.length;
      return k === undefined ? undefined : c.verify(k.publicKey, message, k.signature);
    };
  },
});

for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`x25519-keypair/${name}`, () => c.x25519KeyPair(xSecret));
}
for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`x25519-shared-secret/${name}`, {
    setup: (): BenchOp => {
      checked('X25519', c.sharedSecret(xSecret, xPeer).ok);
      return () => c.sharedSecret(xSecret, xPeer);
    },
  });
}
for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`sha512-1KiB/${name}`, () => c.hash(data1KiB));
}
for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`secretbox-seal-256B/${name}`, () => c.seal(plaintext256, boxNonce, boxKey));
}
for (const name of BACKENDS) {
  const c = crypto[name];
  registerBench(`secretbox-open-256B/${name}`, {
    setup: (): BenchOp => {
      checked('secretbox open', c.open(sealed256, boxNonce, boxKey).ok);
      return () => c.open(sealed256, boxNonce, boxKey);
    },
  });
}
