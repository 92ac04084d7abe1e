/**
 * Crypto entry point: pick a backend by name. `node` (OpenSSL) is the default
 * where node:crypto exists; `tweetnacl` is the portable one. Both produce
 * byte-identical results under the same policy (`policy.ts`).
 */
import type { BackendName } from './backend.js';
import { nodeBackend } from './node-backend.js';
import { Crypto } from './policy.js';
import { tweetnaclBackend } from './tweetnacl-backend.js';

export { Crypto } from './policy.js';
export type { BackendName, Clock, CryptoBackend, RandomSource } from './backend.js';

export function createCrypto(backend: BackendName = 'node'): Crypto {
  return new Crypto(backend === 'node' ? nodeBackend : tweetnaclBackend);
}
