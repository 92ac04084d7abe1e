/**
 * A deliberately misbehaving phone for end-to-end tests: speaks the protocol
 * with the core PhoneSession over the sim radio but lets the test choose any
 * credential (a grant for another car, someone else's grant), so the car's
 * refusals can be checked from outside the car process.
 */
import { randomBytes } from 'node:crypto';
import type { Crypto } from '../../src/core/crypto/policy.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { PhoneSession, type CommandResult, type PhoneCredential } from '../../src/core/phone-session.js';
import type { CommandName } from '../../src/core/roles.js';
import { MessageChannel, centralChunks } from '../../src/transport/channel.js';
import { createSimCentral } from '../../src/transport/sim.js';

export type RawOutcome = { readonly kind: 'result'; readonly result: CommandResult } | { readonly kind: 'refused'; readonly code: string };

export async function rawRequest(options: {
  readonly crypto: Crypto;
  readonly radio: string;
  readonly carIdentityKey: Uint8Array;
  readonly identitySeed: Uint8Array;
  readonly credential: PhoneCredential;
  readonly command: CommandName;
}): Promise<RawOutcome> {
  const central = createSimCentral({ socketPath: options.radio, name: `raw-${randomBytes(3).toString('hex')}` });
  try {
    const scan = await central.scan({ timeoutMs: 5000, accept: () => true });
    if (scan.match === undefined) throw new Error('no car advertising');
    const link = await central.connect(scan.match, { timeoutMs: 5000, mtu: 185 });
    const channel = new MessageChannel(centralChunks(link));
    try {
      const session = new PhoneSession({
        crypto: options.crypto,
        random: (n) => new Uint8Array(randomBytes(n)),
        identitySeed: options.identitySeed,
        carIdentityKey: options.carIdentityKey,
      });
      await channel.send(session.start());
      const challenge = session.onChallenge(await channel.next(5000));
      if (!challenge.ok) return { kind: 'refused', code: challenge.error.code };
      await channel.send(session.request(options.credential, options.command));
      const result = session.onResult(await channel.next(5000));
      return result.ok ? { kind: 'result', result: result.value } : { kind: 'refused', code: result.error.code };
    } catch (error) {
      if (isCarkeyError(error)) return { kind: 'refused', code: error.code };
      throw error;
    } finally {
      channel.close();
      await link.disconnect().catch(() => undefined);
    }
  } finally {
    await central.close();
  }
}
