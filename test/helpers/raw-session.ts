/**
 * A phone session over the sim radio that stays open: the REQUEST's outcome,
 * then further COMMANDs on the same link until the test (or the car) ends
 * it. For tests of how long the car lets a link live (idle time, expired
 * credentials, one link per key) from outside the car process.
 */
import { randomBytes } from 'node:crypto';
import type { Crypto } from '../../src/core/crypto/policy.js';
import { isCarkeyError } from '../../src/core/errors.js';
import { PhoneSession, type PhoneCredential } from '../../src/core/phone-session.js';
import type { CommandName } from '../../src/core/roles.js';
import { MessageChannel, centralChunks } from '../../src/transport/channel.js';
import { createSimCentral } from '../../src/transport/sim.js';
import type { CloseReason } from '../../src/transport/types.js';
import type { RawOutcome } from './raw-phone.js';

export interface RawSession {
  /** The answer to the REQUEST. */
  readonly first: RawOutcome;
  /** ms from starting the scan to the REQUEST's answer. */
  readonly elapsedMs: number;
  /** Resolves when the link closes, with who closed it. */
  readonly closed: Promise<CloseReason>;
  isClosed(): boolean;
  /** Send a COMMAND and await its answer (a closed link comes back as `refused` with the transport's code). */
  command(command: CommandName, args?: Uint8Array): Promise<RawOutcome>;
  close(): Promise<void>;
}

export async function openRawSession(options: {
  readonly crypto: Crypto;
  readonly radio: string;
  readonly carIdentityKey: Uint8Array;
  readonly identitySeed: Uint8Array;
  readonly credential: PhoneCredential;
  readonly command: CommandName;
  readonly args?: Uint8Array;
  readonly name?: string;
}): Promise<RawSession> {
  const started = performance.now();
  const central = createSimCentral({ socketPath: options.radio, name: options.name ?? `raw-${randomBytes(3).toString('hex')}` });
  let closedFlag = false;
  try {
    const scan = await central.scan({ timeoutMs: 5000, accept: () => true });
    if (scan.match === undefined) throw new Error('no car advertising');
    const link = await central.connect(scan.match, { timeoutMs: 5000, mtu: 185 });
    const closed = new Promise<CloseReason>((resolve) =>
      link.onClose((reason) => {
        closedFlag = true;
        resolve(reason);
      }),
    );
    const channel = new MessageChannel(centralChunks(link));
    const session = new PhoneSession({
      crypto: options.crypto,
      random: (n) => new Uint8Array(randomBytes(n)),
      identitySeed: options.identitySeed,
      carIdentityKey: options.carIdentityKey,
    });
    const answer = async (message: Uint8Array): Promise<RawOutcome> => {
      try {
        await channel.send(message);
        const result = session.onResult(await channel.next(5000));
        return result.ok ? { kind: 'result', result: result.value } : { kind: 'refused', code: result.error.code };
      } catch (error) {
        if (isCarkeyError(error)) return { kind: 'refused', code: error.code };
        throw error;
      }
    };
    let first: RawOutcome;
    try {
      await channel.send(session.start());
      const challenge = session.onChallenge(await channel.next(5000));
      first = challenge.ok ? await answer(session.request(options.credential, options.command, options.args)) : { kind: 'refused', code: challenge.error.code };
    } catch (error) {
      if (!isCarkeyError(error)) throw error;
      first = { kind: 'refused', code: error.code };
    }
    const elapsedMs = performance.now() - started;
    const close = async (): Promise<void> => {
      channel.close();
      await link.disconnect().catch(() => undefined);
      await central.close().catch(() => undefined);
    };
    return {
      first,
      elapsedMs,
      closed,
      isClosed: () => closedFlag,
      command: async (command, args) => {
        if (closedFlag) return { kind: 'refused', code: 'CK_TRANSPORT_DISCONNECTED' };
        try {
          return await answer(session.command(command, args));
        } catch (error) {
          if (isCarkeyError(error)) return { kind: 'refused', code: error.code };
          throw error;
        }
      },
      close,
    };
  } catch (error) {
    await central.close().catch(() => undefined);
    throw error;
  }
}
