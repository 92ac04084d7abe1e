/**
 * The running body-controller simulator: the pure model behind two UNIX sockets.
 *
 * Guarantees:
 * - Host socket: one host at a time, like one UART wire. A second host is
 *   refused with `0 ERR BUSY ...` and disconnected; the first keeps working.
 *   Every host line gets exactly one reply (ERR for anything malformed), then
 *   any events the command caused. Events that happen while no host is
 *   connected are dropped, as bytes sent into an unplugged UART would be.
 * - Control socket: any number of people/tests (up to MAX_CONTROL_CLIENTS)
 *   press the button, tap cards, close the trunk, open and close doors and
 *   read state/display. An action the model refuses (opening a locked door)
 *   is answered `ERR <code>` and changes nothing.
 * - No input can crash the process: every socket has an error handler, every
 *   line is handled inside a guard that answers `ERR INTERNAL` on a bug, and a
 *   peer that stops reading is dropped once MAX_OUTPUT_BACKLOG bytes queue up.
 * - `close()` disconnects everyone, stops the pty bridge, and removes the
 *   socket files it created. A stale socket file left by a crashed run is
 *   replaced; a live one (another sim listening) or a non-socket file is not.
 */

import net from 'node:net';
import { lstat, unlink } from 'node:fs/promises';
import { CarkeyError } from '../../src/core/errors.js';
import { applyAction, applyCommand, identityReport, initialState, stateReport } from './model.js';
import type { ActionOutcome, BodyState, DoorCount, PhysicalAction } from './model.js';
import { doorPositionKey, formatErr, formatEvent, formatOk, LineSplitter, parseRequest } from '../../src/vehicle/body-protocol.js';
import type { SplitItem, WireEvent } from '../../src/vehicle/body-protocol.js';
import { parseControlRequest } from './control.js';
import type { ControlCommand } from './control.js';
import { startPtyBridge } from './pty.js';
import type { PtyBridge } from './pty.js';
import type { SimLogger } from './sim-log.js';

export interface HardwareSimOptions {
  readonly socketPath: string;
  readonly controlPath: string;
  readonly doorCount: DoorCount;
  /** Also expose the host protocol on a pty symlinked here (needs socat). */
  readonly ptyPath?: string;
  readonly logger: SimLogger;
}

export interface RunningHardwareSim {
  readonly socketPath: string;
  readonly controlPath: string;
  readonly ptyPath: string | undefined;
  close(): Promise<void>;
}

const MAX_CONTROL_CLIENTS = 16;
const MAX_OUTPUT_BACKLOG = 64 * 1024;

/** Make `path` free for a listening socket, or explain why it cannot be. */
async function prepareSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch {
    return; // does not exist
  }
  if (!isSocket) throw new CarkeyError('CK_CONFIG_INVALID', `${path} exists and is not a socket; refusing to replace it`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new CarkeyError('CK_CONFIG_INVALID', `${path} is in use by another running simulator`);
  await unlink(path);
}

function listen(server: net.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function hostStatus(connected: boolean): string {
  return `host=${connected ? 'connected' : 'none'}`;
}

class HardwareSim implements RunningHardwareSim {
  private state: BodyState;
  private host: net.Socket | undefined;
  private readonly controlClients = new Set<net.Socket>();
  private readonly hostServer = net.createServer((socket) => this.acceptHost(socket));
  private readonly controlServer = net.createServer((socket) => this.acceptControl(socket));
  private pty: PtyBridge | undefined;
  private closing: Promise<void> | undefined;
  /** Socket files this process created (and so removes on close). */
  private readonly ownedPaths: string[] = [];

  constructor(private readonly options: HardwareSimOptions) {
    this.state = initialState(options.doorCount);
    this.hostServer.on('error', (err) => options.logger.error('host socket error', { error: err.message }));
    this.controlServer.on('error', (err) => options.logger.error('control socket error', { error: err.message }));
  }

  get socketPath(): string {
    return this.options.socketPath;
  }
  get controlPath(): string {
    return this.options.controlPath;
  }
  get ptyPath(): string | undefined {
    return this.pty?.linkPath;
  }

  async start(): Promise<void> {
    const { socketPath, controlPath, ptyPath, logger } = this.options;
    await prepareSocketPath(socketPath);
    await prepareSocketPath(controlPath);
    try {
      await listen(this.hostServer, socketPath);
      this.ownedPaths.push(socketPath);
      await listen(this.controlServer, controlPath);
      this.ownedPaths.push(controlPath);
      if (ptyPath !== undefined) this.pty = await startPtyBridge({ linkPath: ptyPath, socketPath, logger });
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  // --- host link ---------------------------------------------------------------

  private acceptHost(socket: net.Socket): void {
    const { logger } = this.options;
    socket.on('error', (err) => logger.warn('host connection error', { error: err.message }));
    if (this.host !== undefined || this.closing !== undefined) {
      logger.warn('refused a second host: one host at a time');
      socket.end(formatErr(0, 'BUSY', 'another host is connected'));
      return;
    }
    this.host = socket;
    logger.info('host connected');
    const splitter = new LineSplitter();
    socket.on('data', (chunk: Buffer) => {
      for (const item of splitter.push(chunk)) this.guard(socket, () => this.handleHostLine(socket, item));
    });
    socket.on('close', () => {
      if (this.host === socket) this.host = undefined;
      logger.info('host disconnected');
    });
  }

  private handleHostLine(socket: net.Socket, item: SplitItem): void {
    const { logger } = this.options;
    if (!item.ok) {
      this.send(socket, formatErr(0, item.error.code, item.error.text));
      return;
    }
    logger.debug('host>', { line: item.line });
    const request = parseRequest(item.line, 'required');
    if (!request.ok) {
      // A line with a bad checksum may carry a corrupted id: answer id 0 so no request is wrongly blamed.
      const id = request.error.code === 'CRC' ? 0 : request.error.id;
      this.send(socket, formatErr(id, request.error.code, request.error.text));
      return;
    }
    const { id, command } = request.value;
    const outcome = applyCommand(this.state, command);
    this.state = outcome.state;
    this.send(socket, outcome.reply.ok ? formatOk(id, outcome.reply.data) : formatErr(id, outcome.reply.code, outcome.reply.text));
    this.emitEvents(outcome.events);
  }

  private emitEvents(events: readonly WireEvent[]): void {
    for (const event of events) {
      const line = formatEvent(event);
      if (this.host === undefined) {
        this.options.logger.info('event dropped: no host connected', { line: line.trimEnd() });
      } else {
        this.send(this.host, line);
      }
    }
  }

  // --- control socket -------------------------------------------------------------

  private acceptControl(socket: net.Socket): void {
    const { logger } = this.options;
    socket.on('error', (err) => logger.warn('control connection error', { error: err.message }));
    if (this.controlClients.size >= MAX_CONTROL_CLIENTS || this.closing !== undefined) {
      socket.end(formatErr(0, 'BUSY', 'too many control clients'));
      return;
    }
    this.controlClients.add(socket);
    const splitter = new LineSplitter();
    socket.on('data', (chunk: Buffer) => {
      for (const item of splitter.push(chunk)) this.guard(socket, () => this.handleControlLine(socket, item));
    });
    socket.on('close', () => this.controlClients.delete(socket));
  }

  private handleControlLine(socket: net.Socket, item: SplitItem): void {
    if (!item.ok) {
      this.send(socket, formatErr(0, item.error.code, item.error.text));
      return;
    }
    this.options.logger.debug('ctl>', { line: item.line });
    const request = parseControlRequest(item.line);
    if (!request.ok) {
      const id = request.error.code === 'CRC' ? 0 : request.error.id;
      this.send(socket, formatErr(id, request.error.code, request.error.text));
      return;
    }
    const { id, command } = request.value;
    const result = this.runControl(command);
    this.send(socket, 'refused' in result ? formatErr(id, result.refused.code, result.refused.text) : formatOk(id, result));
  }

  /** Carry out a person's action; undefined when done, else why it could not be done (nothing changed). */
  private act(action: PhysicalAction): ActionOutcome['refused'] {
    const outcome = applyAction(this.state, action);
    if (outcome.refused !== undefined) {
      this.options.logger.info('a person could not do that', { action, code: outcome.refused.code });
      return outcome.refused;
    }
    this.state = outcome.state;
    this.options.logger.info('person acted on the car', { action });
    this.emitEvents(outcome.events);
    return undefined;
  }

  /** Carry out a control command and return the reply data, or why the action was refused. */
  private runControl(command: ControlCommand): readonly string[] | { readonly refused: NonNullable<ActionOutcome['refused']> } {
    const connected = hostStatus(this.host !== undefined);
    switch (command.verb) {
      case 'PING':
        return [...identityReport(this.state), connected];
      case 'STATE':
        return [...stateReport(this.state), connected];
      case 'DISPLAY':
        return this.state.display.map((row, i) => `display${i + 1}=${row}`);
      case 'BUTTON':
        this.act({ kind: 'button', press: command.press });
        return [connected];
      case 'KEYCARD':
        this.act({ kind: 'keycard', cardId: command.cardId });
        return [connected];
      case 'TRUNK':
        this.act({ kind: 'close-trunk' });
        return [`trunk=${this.state.trunk}`, connected];
      case 'DOOR': {
        const refused = this.act({ kind: command.action === 'open' ? 'open-door' : 'close-door', door: command.door });
        if (refused !== undefined) return { refused };
        return [`${doorPositionKey(command.door)}=${this.state.positions[command.door] ?? 'closed'}`, connected];
      }
    }
  }

  // --- plumbing ---------------------------------------------------------------------

  private send(socket: net.Socket, line: string): void {
    if (socket.destroyed || !socket.writable) return;
    if (socket.writableLength > MAX_OUTPUT_BACKLOG) {
      this.options.logger.warn('peer is not reading; dropping it', { backlog: socket.writableLength });
      socket.destroy();
      return;
    }
    if (socket === this.host) this.options.logger.debug('host<', { line: line.trimEnd() });
    socket.write(line);
  }

  /** Run a line handler; a bug answers ERR INTERNAL instead of crashing the simulator. */
  private guard(socket: net.Socket, handle: () => void): void {
    try {
      handle();
    } catch (err) {
      this.options.logger.error('internal error handling a line', { error: err instanceof Error ? err.message : String(err) });
      this.send(socket, formatErr(0, 'INTERNAL', 'the controller failed to handle the line'));
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    await this.pty?.close();
    this.host?.destroy();
    for (const socket of this.controlClients) socket.destroy();
    const stop = (server: net.Server): Promise<void> =>
      new Promise((resolve) => {
        if (!server.listening) {
          resolve();
          return;
        }
        server.close(() => resolve());
      });
    await Promise.all([stop(this.hostServer), stop(this.controlServer)]);
    for (const path of this.ownedPaths) {
      try {
        if ((await lstat(path)).isSocket()) await unlink(path);
      } catch {
        // already removed (node unlinks a listening socket's file on close)
      }
    }
  }
}

/** Start listening; resolves once the sockets (and the pty, if asked) are ready. */
export async function startHardwareSim(options: HardwareSimOptions): Promise<RunningHardwareSim> {
  const sim = new HardwareSim(options);
  await sim.start();
  return sim;
}
