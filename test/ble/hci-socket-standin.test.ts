/**
 * The bluetooth-hci-socket stand-in against a fake H4 server on a UNIX socket,
 * and its injection through CommonJS resolution.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createH4HciSocketClass, type HciSocketLike } from '../../src/transport/h4-hci-socket.js';
import { HCI_SOCKET_REQUEST, installHciSocketOverride } from '../../src/transport/hci-override.js';

let dir: string;
let server: net.Server;
let socketPath: string;
const accepted: net.Socket[] = [];
const received: Buffer[] = [];

function nextConnection(): Promise<net.Socket> {
  const existing = accepted.shift();
  if (existing !== undefined) return Promise.resolve(existing);
  return new Promise((resolve) => server.once('connection', () => resolve(accepted.shift() as net.Socket)));
}

function collect(socket: HciSocketLike): Buffer[] {
  const packets: Buffer[] = [];
  socket.on('data', (packet: Buffer) => packets.push(packet));
  return packets;
}

/** Poll until `condition` holds; fails the test (instead of hanging) after 2 s. */
async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited += 5) {
    if (waited > 2000) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const classes: { closeAll(): void }[] = [];
function socketClass(file: string): ReturnType<typeof createH4HciSocketClass> {
  const created = createH4HciSocketClass(file);
  classes.push(created);
  return created;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'carkey-h4-'));
  socketPath = path.join(dir, 'bt-server-le');
  received.length = 0;
  server = net.createServer((socket) => {
    accepted.push(socket);
    socket.on('data', (data) => received.push(data));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

afterEach(async () => {
  for (const created of classes.splice(0)) created.closeAll();
  for (const socket of accepted.splice(0)) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

describe('H4 stand-in for bluetooth-hci-socket', () => {
  it('does no I/O until bound, then carries commands out and whole packets in', async () => {
    const Socket = socketClass(socketPath);
    const socket = new Socket();
    expect(socket.isDevUp()).toBe(false);
    expect(socket.bindRaw(0)).toBe(0);
    socket.start();
    const packets = collect(socket);
    const peer = await nextConnection();
    expect(socket.isDevUp()).toBe(true);

    socket.write(Buffer.from('01030c00', 'hex'));
    await until(() => Buffer.concat(received).length === 4);
    expect(Buffer.concat(received).toString('hex')).toBe('01030c00');

    // one event and one ACL packet, cut mid-header and mid-payload
    const stream = Buffer.from('040e0401030c00' + '024000070003000400aabbcc', 'hex');
    peer.write(stream.subarray(0, 1));
    await new Promise((resolve) => setTimeout(resolve, 10));
    peer.write(stream.subarray(1, 9));
    await new Promise((resolve) => setTimeout(resolve, 10));
    peer.write(stream.subarray(9));
    await until(() => packets.length === 2);
    expect(packets.map((p) => p.toString('hex'))).toEqual(['040e0401030c00', '024000070003000400aabbcc']);
    expect(Buffer.isBuffer(packets[0])).toBe(true);

    Socket.closeAll();
    await until(() => !socket.isDevUp());
  });

  it('applies the raw-socket filter once set', async () => {
    const Socket = socketClass(socketPath);
    const socket = new Socket();
    socket.bindRaw();
    const filter = Buffer.alloc(16);
    filter.writeUInt32LE(1 << 4, 0); // events only
    filter.writeUInt32LE(1 << 0x0e, 4); // Command Complete only
    socket.setFilter(filter);
    socket.start();
    const packets = collect(socket);
    const peer = await nextConnection();
    peer.write(Buffer.from('043e0401020304' + '0240000000' + '040e0401030c00', 'hex'));
    await until(() => packets.length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(packets.map((p) => p.toString('hex'))).toEqual(['040e0401030c00']);
    Socket.closeAll();
  });

  it('bindControl opens no connection and drops writes (bleno mgmt socket)', async () => {
    const Socket = socketClass(socketPath);
    const control = new Socket();
    let connections = 0;
    server.on('connection', () => connections++);
    control.bindControl();
    control.start();
    control.write(Buffer.from('0100', 'hex'));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(connections).toBe(0);
    expect(control.isDevUp()).toBe(false);
  });

  it('reports the controller gone when the server closes the connection', async () => {
    const Socket = socketClass(socketPath);
    const socket = new Socket();
    socket.bindRaw();
    socket.start();
    const peer = await nextConnection();
    expect(socket.isDevUp()).toBe(true);
    peer.destroy();
    await until(() => !socket.isDevUp());
    expect(socket.getDeviceList()).toEqual([{ devId: 0, devUp: false, idVendor: null, idProduct: null, busNumber: null, deviceAddress: null }]);
  });

  it('capture() names the sockets made during a call, so one owner closes only its own', async () => {
    const Socket = socketClass(socketPath);
    const outside = new Socket();
    const { result, sockets } = Socket.capture(() => {
      const a = new Socket();
      const b = new Socket();
      return [a, b];
    });
    expect(sockets).toEqual(result);
    expect(sockets).not.toContain(outside);
    outside.bindRaw();
    for (const socket of sockets) socket.bindRaw();
    await until(() => accepted.length === 3);
    for (const socket of sockets) socket.close();
    await until(() => !sockets.some((socket) => socket.isDevUp()));
    // the other owner's socket still carries traffic
    expect(outside.isDevUp()).toBe(true);
    outside.write(Buffer.from('01030c00', 'hex'));
    await until(() => Buffer.concat(received).toString('hex') === '01030c00');
  });

  it('emits an error and closes on an unknown H4 packet type', async () => {
    const Socket = socketClass(socketPath);
    const socket = new Socket();
    const errors: Error[] = [];
    socket.on('error', (error: Error) => errors.push(error));
    socket.bindRaw();
    socket.start();
    const peer = await nextConnection();
    peer.write(Buffer.from('07000000', 'hex'));
    await until(() => errors.length === 1);
    expect(errors[0]?.message).toMatch(/unknown packet type 0x7/);
    await until(() => !socket.isDevUp());
  });

  it('is what CommonJS code gets for @abandonware/bluetooth-hci-socket once the override is installed', () => {
    const installed = installHciSocketOverride(socketPath);
    const require = createRequire(import.meta.url);
    const loaded: unknown = require(HCI_SOCKET_REQUEST);
    expect(loaded).toBe(installed);
    expect(installed.socketPath).toBe(socketPath);
    // other modules still resolve normally
    expect(require.resolve('debug')).toMatch(/node_modules/);
    // same path again: same class; another path: refused
    expect(installHciSocketOverride(socketPath)).toBe(installed);
    expect(() => installHciSocketOverride(path.join(dir, 'other'))).toThrow(expect.objectContaining({ code: 'CK_CONFIG_INVALID' }));
  });
});
