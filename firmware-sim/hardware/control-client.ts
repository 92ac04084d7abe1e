/**
 * Client for the simulator's control socket: send one control command, get the
 * reply data.
 *
 * Guarantees: exactly one request per connection; the promise settles once,
 * with the decoded reply tokens or a CarkeyError (CK_HW_UNAVAILABLE when the
 * simulator is not listening, CK_HW_REJECTED for an ERR reply, CK_HW_BAD_REPLY
 * for a malformed one, CK_HW_TIMEOUT when no reply arrives in time); the
 * connection is always closed afterwards.
 */

import net from 'node:net';
import { CarkeyError } from '../../src/core/errors.js';
import { LineSplitter, parseControllerLine } from '../../src/vehicle/body-protocol.js';
import { formatControlRequest } from './control.js';
import type { ControlCommand } from './control.js';

const REQUEST_ID = 1;

export function sendControl(controlPath: string, command: ControlCommand, timeoutMs = 5000): Promise<readonly string[]> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ path: controlPath });
    const splitter = new LineSplitter();
    let settled = false;
    const finish = (outcome: { data: readonly string[] } | { error: CarkeyError }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if ('data' in outcome) resolve(outcome.data);
      else reject(outcome.error);
    };
    const timer = setTimeout(() => finish({ error: new CarkeyError('CK_HW_TIMEOUT', `no reply from the simulator's control socket within ${timeoutMs} ms`) }), timeoutMs);
    socket.on('connect', () => socket.write(formatControlRequest(REQUEST_ID, command)));
    socket.on('error', (err) => finish({ error: new CarkeyError('CK_HW_UNAVAILABLE', `simulator control socket ${controlPath} (is the simulator running?): ${err.message}`) }));
    socket.on('close', () => finish({ error: new CarkeyError('CK_HW_UNAVAILABLE', 'the simulator closed the control connection without replying') }));
    socket.on('data', (chunk: Buffer) => {
      for (const item of splitter.push(chunk)) {
        if (!item.ok) {
          finish({ error: new CarkeyError('CK_HW_BAD_REPLY', `${item.error.code}: ${item.error.text}`) });
          return;
        }
        const message = parseControllerLine(item.line);
        if (!message.ok) {
          finish({ error: new CarkeyError('CK_HW_BAD_REPLY', `${message.error.code}: ${message.error.text}`) });
          return;
        }
        const reply = message.value;
        if (reply.kind === 'event' || (reply.id !== REQUEST_ID && reply.id !== 0)) continue;
        if (reply.kind === 'ok') finish({ data: reply.data });
        else finish({ error: new CarkeyError('CK_HW_REJECTED', `${reply.code} ${reply.text}`.trim(), { code: reply.code }) });
        return;
      }
    });
  });
}
