/**
 * `node dist/firmware-sim/hardware/ctl.js --socket PATH <command> [--json]`
 *
 * Acts on the simulated car as a person would: press the pairing button, tap a
 * keycard, close the trunk, open or close a door, read the display and the locks. Guarantees:
 * - One command per run; output on stdout (text, or one JSON object with
 *   --json); errors on stderr (and as `{"ok":false,...}` on stdout with --json).
 * - Exit codes follow the error catalog: 0 ok, 2 bad usage, 5 timeout,
 *   6 simulator not running, 1 rejected or malformed reply.
 */

import { parseArgs } from 'node:util';
import { versionLine, wantsVersion } from '../../src/common/version.js';
import { CarkeyError, ExitCode, toCarkeyError } from '../../src/core/errors.js';
import { sendControl } from './control-client.js';
import type { ControlCommand } from './control.js';
import { doorPositionKey, isCardId, isWireDoor, parseKeyValues, sealLine, WIRE_DOORS } from '../../src/vehicle/body-protocol.js';

const HELP = `Act on the simulated car like a person would.

usage: node dist/firmware-sim/hardware/ctl.js --socket PATH <command> [--json]

commands:
  press-button        short press of the pairing button   (host sees: ! BUTTON short)
  long-press          hold the pairing button              (host sees: ! BUTTON long)
  tap-keycard ID      hold keycard ID to the reader        (host sees: ! KEYCARD ID)
  close-trunk         shut the trunk lid                   (host sees: ! TRUNK closed)
  open-door DOOR      open an unlocked door from outside   (host sees: ! DOOR DOOR open)
  close-door DOOR     shut a door                          (host sees: ! DOOR DOOR closed)
                      (DOOR: front-left front-right rear-left rear-right; a locked door does not open)
  display             show what the car's display shows
  state               show locks, doors open/closed, drive, trunk, display, beeps/flashes
  ping                check that the simulator is running
  frame "LINE"        print LINE with its checksum appended, e.g. frame "1 PING"
                      (for typing host requests by hand; needs no simulator)

options:
  --socket PATH   the simulator's host socket; the control socket is PATH.ctl
  --ctl PATH      the control socket, when it is not <socket>.ctl
  --json          print one JSON object
  -V, --version   print the version
  -h, --help      show this help`;

interface Output {
  readonly text: string;
  readonly json: Readonly<Record<string, unknown>>;
}

function usage(detail: string): CarkeyError {
  return new CarkeyError('CK_USAGE', `${detail} (see --help)`);
}

function hostText(host: string | undefined): string {
  return host === 'connected' ? 'host connected, event delivered' : 'no host connected: the event went nowhere';
}

function displayText(rows: readonly string[]): string {
  const border = `+${'-'.repeat(20)}+`;
  return [border, ...rows.map((r) => `|${r.padEnd(20)}|`), border].join('\n');
}

function rowsOf(kv: ReadonlyMap<string, string>): string[] {
  const rows: string[] = [];
  for (let i = 1; kv.has(`display${i}`); i++) rows.push(kv.get(`display${i}`) ?? '');
  return rows;
}

function toNumber(value: string | undefined): number | null {
  return value !== undefined && /^[0-9]+$/.test(value) ? Number(value) : null;
}

function keyValues(data: readonly string[]): ReadonlyMap<string, string> {
  const kv = parseKeyValues(data);
  if (kv === undefined) throw new CarkeyError('CK_HW_BAD_REPLY', `expected key=value data, got: ${data.join(' ')}`);
  return kv;
}

async function run(controlPath: string, name: string, arg: string | undefined): Promise<Output> {
  const act = async (command: ControlCommand, done: string): Promise<Output> => {
    const kv = keyValues(await sendControl(controlPath, command));
    const host = kv.get('host');
    return { text: `${done}; ${hostText(host)}`, json: { ok: true, action: name, host: host ?? null } };
  };
  switch (name) {
    case 'press-button':
      return act({ verb: 'BUTTON', press: 'short' }, 'pressed the pairing button (short)');
    case 'long-press':
      return act({ verb: 'BUTTON', press: 'long' }, 'held the pairing button (long press)');
    case 'tap-keycard':
      if (arg === undefined || !isCardId(arg)) throw usage('tap-keycard needs a card id: 1-32 of A-Z a-z 0-9 _ -');
      return act({ verb: 'KEYCARD', cardId: arg }, `tapped keycard ${arg}`);
    case 'close-trunk':
      return act({ verb: 'TRUNK' }, 'closed the trunk');
    case 'open-door':
    case 'close-door': {
      if (arg === undefined || !isWireDoor(arg)) throw usage(`${name} needs a door: ${WIRE_DOORS.join(' ')}`);
      const action = name === 'open-door' ? 'open' : 'close';
      return act({ verb: 'DOOR', door: arg, action }, `${action === 'open' ? 'opened' : 'closed'} the ${arg} door`);
    }
    case 'ping': {
      const kv = keyValues(await sendControl(controlPath, { verb: 'PING' }));
      return { text: `simulator up: ${kv.get('firmware') ?? '?'}, ${kv.get('doors') ?? '?'} doors, host ${kv.get('host') ?? '?'}`, json: { ok: true, firmware: kv.get('firmware') ?? null, doors: toNumber(kv.get('doors')), host: kv.get('host') ?? null } };
    }
    case 'display': {
      const rows = rowsOf(keyValues(await sendControl(controlPath, { verb: 'DISPLAY' })));
      return { text: displayText(rows), json: { ok: true, display: rows } };
    }
    case 'state': {
      const kv = keyValues(await sendControl(controlPath, { verb: 'STATE' }));
      const locks: Record<string, string> = {};
      const positions: Record<string, string> = {};
      for (const door of WIRE_DOORS) {
        const lock = kv.get(door);
        if (lock !== undefined) locks[door] = lock;
        const position = kv.get(doorPositionKey(door));
        if (position !== undefined) positions[door] = position;
      }
      const rows = rowsOf(kv);
      const json = {
        ok: true,
        doors: toNumber(kv.get('doors')),
        locks,
        positions,
        drive: kv.get('drive') ?? null,
        trunk: kv.get('trunk') ?? null,
        display: rows,
        beeps: toNumber(kv.get('beeps')),
        flashes: toNumber(kv.get('flashes')),
        host: kv.get('host') ?? null,
      };
      const text = [
        ...Object.entries(locks).map(([door, lock]) => `${door.padEnd(12)} ${lock}${positions[door] === undefined ? '' : `, ${positions[door]}`}`),
        `${'drive'.padEnd(12)} ${json.drive ?? '?'}`,
        `${'trunk'.padEnd(12)} ${json.trunk ?? '?'}`,
        `${'beeps'.padEnd(12)} ${json.beeps ?? '?'}`,
        `${'flashes'.padEnd(12)} ${json.flashes ?? '?'}`,
        `${'host'.padEnd(12)} ${json.host ?? '?'}`,
        displayText(rows),
      ].join('\n');
      return { text, json };
    }
    default:
      throw usage(`unknown command ${name}`);
  }
}

async function main(): Promise<number> {
  if (wantsVersion(process.argv.slice(2))) {
    process.stdout.write(versionLine('sim-hardware-ctl'));
    return ExitCode.ok;
  }
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        socket: { type: 'string' },
        ctl: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    process.stdout.write(`${HELP}\n`);
    return values.help ? ExitCode.ok : ExitCode.badInput;
  }
  const [name, arg, ...extra] = positionals;
  if (name === undefined) throw usage('missing command');
  if (name === 'frame') {
    if (arg === undefined || extra.length > 0) throw usage('frame takes one quoted line, e.g. frame "1 PING"');
    if (arg.includes('*') || !/^[\x20-\x7e]+$/.test(arg)) throw usage('the line must be printable ASCII without "*"');
    const line = sealLine(arg);
    process.stdout.write(values.json ? `${JSON.stringify({ ok: true, line: line.trimEnd() })}\n` : line);
    return ExitCode.ok;
  }
  const maxArgs = name === 'tap-keycard' || name === 'open-door' || name === 'close-door' ? 1 : 0;
  if ((arg === undefined ? 0 : 1) + extra.length > maxArgs) throw usage(`too many arguments for ${name}`);
  const controlPath = values.ctl ?? (values.socket === undefined ? undefined : `${values.socket}.ctl`);
  if (controlPath === undefined) throw usage('--socket PATH (or --ctl PATH) is required');
  const output = await run(controlPath, name, arg);
  process.stdout.write(values.json ? `${JSON.stringify(output.json)}\n` : `${output.text}\n`);
  return ExitCode.ok;
}

const wantsJson = process.argv.includes('--json');
main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const error = toCarkeyError(err);
    if (wantsJson) process.stdout.write(`${JSON.stringify({ ok: false, error: error.toJSON() })}\n`);
    process.stderr.write(`ctl: ${error.message}\n`);
    process.exitCode = error.exitCode;
  },
);
