/**
 * ActuatorPort over a byte stream to the body controller: a UART (serial tty),
 * a pseudo-terminal, or the simulator's UNIX socket. Same code for all three.
 *
 * Guarantees:
 * - Speaks the line protocol of ./body-protocol.ts (specified in
 *   docs/firmware-sim.md): every request has an id 1..65535 unique among the
 *   requests in flight and its own timeout; every line received is checksum-
 *   and length-checked before it is believed.
 * - Error mapping: no link / link lost / driver closed → CK_HW_UNAVAILABLE;
 *   no reply within `timeoutMs` → CK_HW_TIMEOUT; `ERR` reply → CK_HW_REJECTED
 *   (details carry the controller's code); unparseable or inconsistent reply →
 *   CK_HW_BAD_REPLY. Lines that answer no pending request are logged and dropped.
 * - `openHardware` resolves only after the controller answered PING, so a
 *   wrong path, a busy controller or a silent device fail at open time.
 * - Reconnection: when the link drops, pending requests reject with
 *   CK_HW_UNAVAILABLE and a `{kind:'link',state:'down'}` event is sent. With
 *   `reconnect` (default on) the driver retries in the background (backoff
 *   100 ms doubling to 5 s), and a call made while the link is down makes one
 *   immediate attempt before failing; calls are never queued for later.
 *   A successful reconnect sends `{kind:'link',state:'up'}`. Handlers stay
 *   registered across reconnects.
 * - `close()` is idempotent, stops retries, rejects anything pending and
 *   releases the socket or tty. It also aborts a connection attempt in
 *   flight (the background retry or a call's immediate attempt): a socket
 *   being connected is destroyed and a PING being waited for fails at once,
 *   so `close()` never waits for the reply timeout of a controller that
 *   vanished or went silent; it waits at most CLOSE_WAIT_MS for an attempt
 *   stuck in the OS (e.g. opening a wedged serial device), then returns.
 * - No native modules: a tty is opened with node:fs and driven through
 *   node:tty streams in raw mode (set the UART's baud rate with stty).
 */

import net from 'node:net';
import tty from 'node:tty';
import { close as closeFd, constants as fsConstants, open as openFd } from 'node:fs';
import { stat } from 'node:fs/promises';
import { CarkeyError } from '../core/errors.js';
import { DOORS } from './actuator.js';
import type { ActuatorPort, Door, DoorPosition, DoorSelection, HardwareEvent, LockState, SignalKind, VehicleState } from './actuator.js';
import { doorPositionKey, formatRequest, LineSplitter, MAX_REQUEST_ID, parseControllerLine, parseKeyValues } from './body-protocol.js';
import type { HostCommand, WireDoor, WireEvent } from './body-protocol.js';

/** The port's door names and the wire's door names must stay identical. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _doorNamesAgree: Same<Door, WireDoor> = true;

/** Structured logger; pino's logger satisfies it. */
export interface HwLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface HardwareOptions {
  /** How long to wait for each reply, in ms (default 2000). */
  readonly timeoutMs?: number;
  /** Reconnect after the link drops (default true). */
  readonly reconnect?: boolean;
  readonly logger?: HwLogger;
}

export const DEFAULT_HW_TIMEOUT_MS = 2000;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;
/** Longest `close()` waits for a connection attempt it aborted to unwind. */
export const CLOSE_WAIT_MS = 500;

const silentLogger: HwLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// --- byte streams ---------------------------------------------------------------------

/** Receives what a byte stream delivers. `closed` is called at most once. */
interface ByteSink {
  data(chunk: Uint8Array): void;
  closed(reason: string): void;
}

interface ByteStream {
  write(text: string): void;
  destroy(): void;
}

function unavailable(path: string, detail: string): CarkeyError {
  return new CarkeyError('CK_HW_UNAVAILABLE', `${path}: ${detail}`, { path });
}

function closedError(path: string): CarkeyError {
  return unavailable(path, 'the hardware driver was closed');
}

function openSocketStream(path: string, sink: ByteSink, signal: AbortSignal): Promise<ByteStream> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(closedError(path));
      return;
    }
    const socket = net.createConnection({ path });
    let connected = false;
    let reason = 'the controller closed the link';
    const onAbort = (): void => {
      socket.destroy();
      reject(closedError(path));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      connected = true;
      signal.removeEventListener('abort', onAbort);
      resolve({ write: (text) => socket.write(text), destroy: () => socket.destroy() });
    });
    socket.on('error', (err) => {
      if (connected) reason = err.message;
      else reject(unavailable(path, `cannot connect: ${err.message}`));
    });
    socket.on('data', (chunk: Buffer) => sink.data(chunk));
    socket.on('close', () => {
      if (connected) sink.closed(reason);
    });
  });
}

async function openTtyStream(path: string, sink: ByteSink, signal: AbortSignal): Promise<ByteStream> {
  const flags = fsConstants.O_RDWR | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK;
  const fd = await new Promise<number>((resolve, reject) => {
    openFd(path, flags, (err, opened) => (err === null ? resolve(opened) : reject(unavailable(path, `cannot open: ${err.message}`))));
  });
  const releaseFd = (): void => closeFd(fd, () => undefined);
  if (signal.aborted) {
    releaseFd();
    throw closedError(path);
  }
  if (!tty.isatty(fd)) {
    releaseFd();
    throw unavailable(path, 'is a character device but not a terminal (serial port or pty expected)');
  }
  let input: tty.ReadStream | undefined;
  let output: tty.WriteStream;
  try {
    input = new tty.ReadStream(fd);
    input.setRawMode(true);
    output = new tty.WriteStream(fd);
  } catch (err) {
    input?.destroy();
    releaseFd();
    throw unavailable(path, `cannot use as a terminal: ${messageOf(err)}`);
  }
  const reader = input;
  let finished = false;
  const finish = (reason: string): void => {
    if (finished) return;
    finished = true;
    reader.destroy();
    output.destroy();
    releaseFd();
    sink.closed(reason);
  };
  reader.on('data', (chunk: Buffer) => sink.data(chunk));
  reader.on('end', () => finish('the device hung up'));
  reader.on('error', (err) => finish(err.message));
  output.on('error', (err: Error) => finish(err.message));
  return {
    write: (text) => {
      if (!finished) output.write(text);
    },
    destroy: () => finish('closed by the driver'),
  };
}

/** Socket → UNIX socket connection; character device → tty. */
async function openByteStream(path: string, sink: ByteSink, signal: AbortSignal): Promise<ByteStream> {
  let kind: 'socket' | 'tty';
  try {
    const st = await stat(path);
    if (st.isSocket()) kind = 'socket';
    else if (st.isCharacterDevice()) kind = 'tty';
    else throw unavailable(path, 'is neither a UNIX socket nor a serial/pty device');
  } catch (err) {
    if (err instanceof CarkeyError) throw err;
    throw unavailable(path, messageOf(err));
  }
  if (signal.aborted) throw closedError(path);
  return kind === 'socket' ? openSocketStream(path, sink, signal) : openTtyStream(path, sink, signal);
}

// --- one connection to the controller --------------------------------------------------

interface PendingRequest {
  readonly verb: string;
  readonly resolve: (data: readonly string[]) => void;
  readonly reject: (error: CarkeyError) => void;
  readonly timer: NodeJS.Timeout;
}

interface LinkConfig {
  readonly path: string;
  readonly timeoutMs: number;
  readonly logger: HwLogger;
  readonly onEvent: (event: WireEvent) => void;
  readonly onDown: (link: ControllerLink, reason: string) => void;
}

/** Request/reply matching and event dispatch over one byte stream; dead once down. */
class ControllerLink implements ByteSink {
  private readonly splitter = new LineSplitter();
  private readonly pending = new Map<number, PendingRequest>();
  private lastId = 0;
  private stream: ByteStream | undefined;
  private downReason: string | undefined;
  /** Last `0 ERR ...` line (e.g. BUSY), reported when the link then drops. */
  private unaddressedError: string | undefined;

  constructor(private readonly config: LinkConfig) {}

  attach(stream: ByteStream): void {
    this.stream = stream;
  }

  /** Send raw bytes (used once, to flush a partial line in the controller's buffer). */
  writeRaw(text: string): void {
    this.stream?.write(text);
  }

  request(command: HostCommand): Promise<readonly string[]> {
    const stream = this.stream;
    if (this.downReason !== undefined || stream === undefined) {
      return Promise.reject(unavailable(this.config.path, `link is down: ${this.downReason ?? 'not connected'}`));
    }
    const id = this.allocateId();
    if (id === undefined) return Promise.reject(new CarkeyError('CK_INTERNAL', 'too many hardware requests in flight'));
    const { timeoutMs, logger } = this.config;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        logger.warn({ id, verb: command.verb, timeoutMs }, 'hardware request timed out');
        reject(new CarkeyError('CK_HW_TIMEOUT', `${command.verb} got no reply within ${timeoutMs} ms`, { verb: command.verb, id }));
      }, timeoutMs);
      this.pending.set(id, { verb: command.verb, resolve, reject, timer });
      stream.write(formatRequest(id, command));
    });
  }

  data(chunk: Uint8Array): void {
    for (const item of this.splitter.push(chunk)) {
      if (item.ok) this.handleLine(item.line);
      else this.config.logger.warn({ errorCode: item.error.code }, `unreadable line from the body controller: ${item.error.text}`);
    }
  }

  closed(reason: string): void {
    if (this.downReason !== undefined) return;
    const detail = this.unaddressedError === undefined ? reason : `${reason} (controller said: ${this.unaddressedError})`;
    this.downReason = detail;
    this.failAll(unavailable(this.config.path, `link lost: ${detail}`));
    this.config.onDown(this, detail);
  }

  /** Drop the link locally; does not report it as lost. */
  close(): void {
    if (this.downReason !== undefined) return;
    this.downReason = 'closed by the driver';
    this.failAll(unavailable(this.config.path, 'the hardware driver was closed'));
    this.stream?.destroy();
  }

  private allocateId(): number | undefined {
    for (let tries = 0; tries < MAX_REQUEST_ID; tries++) {
      this.lastId = (this.lastId % MAX_REQUEST_ID) + 1;
      if (!this.pending.has(this.lastId)) return this.lastId;
    }
    return undefined;
  }

  private take(id: number): PendingRequest | undefined {
    const request = this.pending.get(id);
    if (request === undefined) return undefined;
    this.pending.delete(id);
    clearTimeout(request.timer);
    return request;
  }

  private failAll(error: CarkeyError): void {
    for (const id of [...this.pending.keys()]) this.take(id)?.reject(error);
  }

  private handleLine(line: string): void {
    const { logger } = this.config;
    const parsed = parseControllerLine(line);
    if (!parsed.ok) {
      const { code, text, id } = parsed.error;
      const request = id > 0 ? this.take(id) : undefined;
      if (request === undefined) {
        logger.warn({ errorCode: code, line }, `malformed line from the body controller: ${text}`);
      } else {
        request.reject(new CarkeyError('CK_HW_BAD_REPLY', `${request.verb}: ${code} ${text}`, { verb: request.verb, code }));
      }
      return;
    }
    const message = parsed.value;
    if (message.kind === 'event') {
      this.config.onEvent(message.event);
      return;
    }
    if (message.id === 0) {
      // The controller could not tell which request a line was (bad checksum, overlong line, busy).
      if (message.kind === 'err') this.unaddressedError = `${message.code} ${message.text}`.trim();
      logger.warn({ line }, 'body controller reported an error for an unidentified line');
      return;
    }
    const request = this.take(message.id);
    if (request === undefined) {
      logger.debug({ id: message.id }, 'reply to no pending request (late or duplicate); dropped');
      return;
    }
    if (message.kind === 'ok') {
      request.resolve(message.data);
    } else {
      request.reject(new CarkeyError('CK_HW_REJECTED', `${request.verb}: ${message.code} ${message.text}`.trim(), { verb: request.verb, code: message.code, text: message.text }));
    }
  }
}

// --- reply decoding -----------------------------------------------------------------------

function badReply(verb: string, detail: string): CarkeyError {
  return new CarkeyError('CK_HW_BAD_REPLY', `${verb}: ${detail}`, { verb });
}

function replyValues(verb: string, data: readonly string[]): ReadonlyMap<string, string> {
  const kv = parseKeyValues(data);
  if (kv === undefined) throw badReply(verb, 'expected key=value data');
  return kv;
}

interface ControllerIdentity {
  readonly firmware: string;
  readonly doors: number;
}

function parseDoorCount(verb: string, value: string | undefined): number {
  if (value === undefined || !/^[1-4]$/.test(value)) throw badReply(verb, `doors must be 1..4, got ${value ?? 'nothing'}`);
  return Number(value);
}

function parseIdentity(data: readonly string[]): ControllerIdentity {
  const kv = replyValues('PING', data);
  const firmware = kv.get('firmware');
  if (firmware === undefined || firmware.length === 0) throw badReply('PING', 'no firmware id');
  return { firmware, doors: parseDoorCount('PING', kv.get('doors')) };
}

function oneOf<T extends string>(verb: string, key: string, value: string | undefined, allowed: readonly T[]): T {
  const match = allowed.find((a) => a === value);
  if (match === undefined) throw badReply(verb, `${key} must be ${allowed.join('|')}, got ${value ?? 'nothing'}`);
  return match;
}

function parseVehicleState(data: readonly string[]): VehicleState {
  const kv = replyValues('STATE', data);
  const doorCount = parseDoorCount('STATE', kv.get('doors'));
  const doors: Partial<Record<Door, LockState>> = {};
  for (const door of DOORS.slice(0, doorCount)) {
    doors[door] = oneOf('STATE', door, kv.get(door), ['locked', 'unlocked'] as const);
  }
  const display: string[] = [];
  for (let row = 1; kv.has(`display${row}`); row++) display.push(kv.get(`display${row}`) ?? '');
  if (display.length === 0) throw badReply('STATE', 'no display rows');
  // Door positions are optional on the wire (older firmware does not sense doors), but all or none.
  const fitted = DOORS.slice(0, doorCount);
  let positions: Partial<Record<Door, DoorPosition>> | undefined;
  if (fitted.some((door) => kv.has(doorPositionKey(door)))) {
    positions = {};
    for (const door of fitted) positions[door] = oneOf('STATE', doorPositionKey(door), kv.get(doorPositionKey(door)), ['open', 'closed'] as const);
  }
  return {
    doors,
    ...(positions === undefined ? {} : { positions }),
    drive: oneOf('STATE', 'drive', kv.get('drive'), ['off', 'ready'] as const),
    trunk: oneOf('STATE', 'trunk', kv.get('trunk'), ['open', 'closed'] as const),
    display,
  };
}

function toHardwareEvent(event: WireEvent): HardwareEvent {
  switch (event.event) {
    case 'BUTTON':
      return { kind: 'button', press: event.press };
    case 'KEYCARD':
      return { kind: 'keycard', cardId: event.cardId };
    case 'TRUNK':
      return { kind: 'trunk', state: event.state };
    case 'DOOR':
      return { kind: 'door', door: event.door, position: event.position };
  }
}

// --- the port -------------------------------------------------------------------------------

class LineProtocolActuator implements ActuatorPort {
  private link: ControllerLink | undefined;
  private connecting: Promise<ControllerLink> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = RETRY_MIN_MS;
  private closed = false;
  /** Aborted by `close()`: ends any connection attempt in flight. */
  private readonly closing = new AbortController();
  private readonly handlers = new Set<(event: HardwareEvent) => void>();
  private readonly timeoutMs: number;
  private readonly reconnect: boolean;
  private readonly logger: HwLogger;

  constructor(
    private readonly path: string,
    options: HardwareOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_HW_TIMEOUT_MS;
    this.reconnect = options.reconnect ?? true;
    this.logger = options.logger ?? silentLogger;
  }

  /** Connect (or join the connection attempt in flight). */
  connect(): Promise<ControllerLink> {
    this.connecting ??= this.establish().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async establish(): Promise<ControllerLink> {
    const link = new ControllerLink({
      path: this.path,
      timeoutMs: this.timeoutMs,
      logger: this.logger,
      onEvent: (event) => this.dispatch(toHardwareEvent(event)),
      onDown: (lost, reason) => this.linkDown(lost, reason),
    });
    const signal = this.closing.signal;
    link.attach(await openByteStream(this.path, link, signal));
    const abort = (): void => link.close();
    signal.addEventListener('abort', abort, { once: true });
    link.writeRaw('\n');
    let identity: ControllerIdentity;
    try {
      identity = parseIdentity(await link.request({ verb: 'PING' }));
    } catch (err) {
      link.close();
      throw signal.aborted ? closedError(this.path) : err;
    } finally {
      signal.removeEventListener('abort', abort);
    }
    if (this.closed) {
      link.close();
      throw unavailable(this.path, 'the hardware driver was closed');
    }
    this.link = link;
    this.retryDelayMs = RETRY_MIN_MS;
    this.logger.info({ path: this.path, firmware: identity.firmware, doors: identity.doors }, 'body controller connected');
    this.dispatch({ kind: 'link', state: 'up' });
    return link;
  }

  private linkDown(link: ControllerLink, reason: string): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.logger.warn({ path: this.path, reason }, 'body controller link lost');
    this.dispatch({ kind: 'link', state: 'down' });
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || !this.reconnect || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.link !== undefined) return;
      this.connect().catch((err: unknown) => {
        this.logger.debug({ path: this.path, error: messageOf(err), retryInMs: this.retryDelayMs }, 'reconnect failed');
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, RETRY_MAX_MS);
        this.scheduleRetry();
      });
    }, this.retryDelayMs);
    this.retryTimer.unref();
  }

  private dispatch(event: HardwareEvent): void {
    for (const handler of [...this.handlers]) {
      try {
        handler(event);
      } catch (err) {
        this.logger.warn({ event: event.kind, error: messageOf(err) }, 'hardware event handler threw');
      }
    }
  }

  private async call(command: HostCommand): Promise<readonly string[]> {
    if (this.closed) throw unavailable(this.path, 'the hardware driver is closed');
    let link = this.link;
    if (link === undefined) {
      if (!this.reconnect) throw unavailable(this.path, 'link lost and reconnect is off');
      link = await this.connect();
    }
    return link.request(command);
  }

  async unlock(doors: DoorSelection = 'all'): Promise<void> {
    await this.call({ verb: 'UNLOCK', doors });
  }

  async lock(doors: DoorSelection = 'all'): Promise<void> {
    await this.call({ verb: 'LOCK', doors });
  }

  async setDrive(on: boolean): Promise<void> {
    await this.call({ verb: 'DRIVE', on });
  }

  async openTrunk(): Promise<void> {
    await this.call({ verb: 'TRUNK' });
  }

  async display(rows: readonly string[]): Promise<void> {
    await this.call({ verb: 'DISPLAY', op: 'show', rows });
  }

  async clearDisplay(): Promise<void> {
    await this.call({ verb: 'DISPLAY', op: 'clear' });
  }

  async signal(kind: SignalKind, times = 1): Promise<void> {
    await this.call({ verb: kind === 'beep' ? 'BEEP' : 'FLASH', count: times });
  }

  async state(): Promise<VehicleState> {
    return parseVehicleState(await this.call({ verb: 'STATE' }));
  }

  onEvent(handler: (event: HardwareEvent) => void): () => void {
    const registered = (event: HardwareEvent): void => handler(event);
    this.handlers.add(registered);
    return () => {
      this.handlers.delete(registered);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.closing.abort();
    this.link?.close();
    this.link = undefined;
    const inflight = this.connecting;
    if (inflight !== undefined) {
      // aborted above; it settles at once unless the OS holds it (then it is released when it returns)
      const unwound = inflight.then((link) => link.close(), () => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([unwound, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    this.handlers.clear();
  }
}

/**
 * Open the body controller at `path`: a UNIX socket (the simulator) or a
 * serial/pty character device. Resolves once the controller answered PING.
 * Rejects with CK_HW_UNAVAILABLE (nothing there, busy, not a tty),
 * CK_HW_TIMEOUT (no answer) or CK_HW_BAD_REPLY (not speaking the protocol).
 */
export async function openHardware(path: string, options: HardwareOptions = {}): Promise<ActuatorPort> {
  const { timeoutMs } = options;
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new CarkeyError('CK_CONFIG_INVALID', `hardware timeout must be a positive number of ms, got ${timeoutMs}`);
  }
  const actuator = new LineProtocolActuator(path, options);
  await actuator.connect();
  return actuator;
}
