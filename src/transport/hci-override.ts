/**
 * Swaps `@abandonware/bluetooth-hci-socket` (the kernel AF_BLUETOOTH socket
 * used by noble and bleno) for the H4-over-UNIX-socket stand-in in
 * `./h4-hci-socket.ts`, so unmodified noble/bleno drive a BlueZ
 * `btvirt` emulated controller.
 *
 * Guarantees:
 * - Hooks CommonJS resolution (`Module._resolveFilename`) for exactly the
 *   request '@abandonware/bluetooth-hci-socket'; every other request resolves
 *   as before. The stand-in is served from the require cache under a virtual id,
 *   so no file is written and the socket path is bound in a closure.
 * - Takes effect only for noble/bleno modules required after installation;
 *   refuses (CK_CONFIG_INVALID) if the real native module is already loaded in
 *   this process or if an override for a different socket path is installed.
 *   Installing again for the same path returns the same class.
 */
import Module, { createRequire } from 'node:module';
import { createH4HciSocketClass, type H4HciSocketClass } from './h4-hci-socket.js';
import { CarkeyError } from '../core/errors.js';

export const HCI_SOCKET_REQUEST = '@abandonware/bluetooth-hci-socket';
const VIRTUAL_ID = 'carkey-virtual:@abandonware/bluetooth-hci-socket';

type ResolveFilename = (this: unknown, request: string, ...rest: unknown[]) => string;

interface ModuleInternals {
  _resolveFilename?: unknown;
}

const require = createRequire(import.meta.url);

let installed: H4HciSocketClass | undefined;

/** True if the real native bluetooth-hci-socket has been loaded in this process. */
export function isNativeHciSocketLoaded(): boolean {
  return Object.keys(require.cache).some((file) => file.includes(`/node_modules/${HCI_SOCKET_REQUEST}/`));
}

/** The installed stand-in class, if any. */
export function installedHciSocketOverride(): H4HciSocketClass | undefined {
  return installed;
}

/**
 * Route `require('@abandonware/bluetooth-hci-socket')` to a stand-in that
 * connects to `socketPath` (e.g. `<dir>/bt-server-le`). Call before noble or
 * bleno is first required.
 */
export function installHciSocketOverride(socketPath: string): H4HciSocketClass {
  if (installed !== undefined) {
    if (installed.socketPath === socketPath) return installed;
    throw new CarkeyError('CK_CONFIG_INVALID', `HCI socket already redirected to ${installed.socketPath}; one process cannot use two emulated sockets`);
  }
  if (isNativeHciSocketLoaded()) {
    throw new CarkeyError('CK_CONFIG_INVALID', 'the native bluetooth-hci-socket is already loaded in this process; cannot switch to an emulated HCI socket');
  }
  const internals = Module as unknown as ModuleInternals;
  const original = internals._resolveFilename;
  if (typeof original !== 'function') {
    throw new CarkeyError('CK_INTERNAL', 'this Node.js has no Module._resolveFilename; cannot redirect the HCI socket');
  }
  const resolveOriginal = original as ResolveFilename;
  const socketClass = createH4HciSocketClass(socketPath);

  const virtualModule = new Module(VIRTUAL_ID);
  virtualModule.filename = VIRTUAL_ID;
  virtualModule.exports = socketClass;
  virtualModule.loaded = true;
  require.cache[VIRTUAL_ID] = virtualModule;

  const resolveWithOverride: ResolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
    if (request === HCI_SOCKET_REQUEST) return VIRTUAL_ID;
    return resolveOriginal.call(this, request, ...rest);
  };
  internals._resolveFilename = resolveWithOverride;
  installed = socketClass;
  return socketClass;
}
