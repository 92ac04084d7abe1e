/**
 * Attackers and a recording phone on the sim radio, for the radio fuzz and
 * DoS suites (test/integration/radio-fuzz.test.ts, dos.test.ts) against a
 * real carkeyd process.
 *
 * `recordSession` runs a genuine phone session (core `PhoneSession`) and
 * returns every message it sent and received, so the fuzz can replay
 * mutations of frames a real car accepted. `AttackLink` is one connection
 * that writes whatever chunks it is given and reassembles everything the
 * car notifies (core `Reassembler`), so a test can check what the car said
 * to it. Guarantees: nothing here throws for a link the car drops (writes on
 * a closed link are swallowed and counted); every central is closed by
 * `closeAll`.
 */
import { randomBytes } from 'node:crypto';
import type { Crypto } from '../../src/core/crypto/policy.js';
import { Reassembler, splitMessage } from '../../src/core/framing.js';
import { PhoneSession, type PhoneCredential } from '../../src/core/phone-session.js';
import type { CommandName } from '../../src/core/roles.js';
import { MessageChannel, centralChunks } from '../../src/transport/channel.js';
import { createSimCentral, type SimCentralTransport } from '../../src/transport/sim.js';
import type { CentralLink, CloseReason } from '../../src/transport/types.js';

export interface RecordedSession {
  /** what the phone sent: HELLO, REQUEST, then each COMMAND */
  readonly sent: readonly Uint8Array[];
  /** what the car answered, in order */
  readonly received: readonly Uint8Array[];
  /** status of each answer the phone opened ('ok', 'denied', …) */
  readonly statuses: readonly string[];
}

/** A genuine session over the sim radio: REQUEST `commands[0]`, then COMMANDs for the rest; every message recorded. */
export async function recordSession(options: {
  readonly crypto: Crypto;
  readonly radio: string;
  readonly carIdentityKey: Uint8Array;
  readonly identitySeed: Uint8Array;
  readonly credential: PhoneCredential;
  readonly commands: readonly CommandName[];
}): Promise<RecordedSession> {
  const central = createSimCentral({ socketPath: options.radio, name: `recorder-${randomBytes(3).toString('hex')}` });
  try {
    const scan = await central.scan({ timeoutMs: 5000, accept: () => true });
    if (scan.match === undefined) throw new Error('no car advertising');
    const link = await central.connect(scan.match, { timeoutMs: 5000, mtu: 185 });
    const channel = new MessageChannel(centralChunks(link));
    const sent: Uint8Array[] = [];
    const received: Uint8Array[] = [];
    const statuses: string[] = [];
    const exchange = async (message: Uint8Array): Promise<Uint8Array> => {
      sent.push(message);
      await channel.send(message);
      const answer = await channel.next(5000);
      received.push(answer);
      return answer;
    };
    try {
      const session = new PhoneSession({ crypto: options.crypto, random: (n) => new Uint8Array(randomBytes(n)), identitySeed: options.identitySeed, carIdentityKey: options.carIdentityKey });
      const checked = session.onChallenge(await exchange(session.start()));
      if (!checked.ok) throw checked.error;
      const [first, ...rest] = options.commands;
      if (first === undefined) throw new Error('no command to record');
      for (const [i, command] of [first, ...rest].entries()) {
        const result = session.onResult(await exchange(i === 0 ? session.request(options.credential, command) : session.command(command)));
        if (!result.ok) throw result.error;
        statuses.push(result.value.status);
      }
      return { sent, received, statuses };
    } finally {
      channel.close();
      await link.disconnect().catch(() => undefined);
    }
  } finally {
    await central.close().catch(() => undefined);
  }
}

/** One attacker connection: raw chunk writes out, reassembled car messages in. */
export class AttackLink {
  readonly fromCar: Uint8Array[] = [];
  readonly closed: Promise<CloseReason>;
  failedWrites = 0;
  private closedFlag = false;
  private readonly reassembler = new Reassembler();

  constructor(readonly link: CentralLink) {
    this.closed = new Promise<CloseReason>((resolve) =>
      link.onClose((reason) => {
        this.closedFlag = true;
        resolve(reason);
      }),
    );
    link.onChunk((chunk) => {
      const outcome = this.reassembler.push(chunk, performance.now());
      if (outcome.message !== undefined) this.fromCar.push(outcome.message);
    });
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  /** Write raw chunks; a write the car refuses (link gone) is counted, never thrown. */
  async writeChunks(chunks: readonly Uint8Array[]): Promise<void> {
    for (const chunk of chunks) {
      if (this.closedFlag) {
        this.failedWrites++;
        continue;
      }
      await this.link.write(chunk).catch(() => {
        this.failedWrites++;
      });
    }
  }

  /** Frame `message` to this link's MTU (messages above the framing cap go out as one raw START chunk). */
  chunksOf(message: Uint8Array): Uint8Array[] {
    try {
      return splitMessage(message, this.link.mtu());
    } catch {
      return [Uint8Array.of(0x80, 0xff, 0xff, ...message.subarray(0, this.link.mtu() - 6))];
    }
  }

  /** Resolves with how it ended: closed by the car ('remote'), or 'timeout' after `ms`. */
  async waitClosed(ms: number): Promise<CloseReason | 'timeout'> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.link.disconnect().catch(() => undefined);
  }
}

/** A pool of attacker radios (one sim central each) that `closeAll` releases. */
export class Attackers {
  private readonly centrals: SimCentralTransport[] = [];

  constructor(private readonly radio: string) {}

  /** A new central (its own name on the air). */
  central(): SimCentralTransport {
    const central = createSimCentral({ socketPath: this.radio, name: `mallory-${randomBytes(3).toString('hex')}` });
    this.centrals.push(central);
    return central;
  }

  /** Scan and connect on `central`; undefined when the car could not be reached (slots full, evicted first). */
  async connect(central: SimCentralTransport, mtu?: number): Promise<AttackLink | undefined> {
    try {
      const scan = await central.scan({ timeoutMs: 5000, accept: () => true });
      if (scan.match === undefined) return undefined;
      const link = await central.connect(scan.match, { timeoutMs: 5000, ...(mtu === undefined ? {} : { mtu }) });
      return new AttackLink(link);
    } catch {
      return undefined;
    }
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.centrals.splice(0).map((c) => c.close().catch(() => undefined)));
  }
}
