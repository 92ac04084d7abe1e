/**
 * The body-controller line protocol, shared by the simulator and the daemon's driver.
 *
 * Guarantees:
 * - Pure: no I/O, no clock, no randomness. Every function is deterministic.
 * - Total: no parser in this module throws, whatever bytes or string it is
 *   given; bad input yields a typed `WireError` (code + text + the request id
 *   the line claims, 0 when it claims none).
 * - Bounded: a line is at most `MAX_LINE_BYTES` bytes of printable ASCII
 *   before its LF; `LineSplitter` never buffers more than that per line.
 * - Every formatter emits exactly what the matching parser accepts, with a
 *   CRC-16/CCITT-FALSE checksum (`*XXXX`) before the LF, as long as the
 *   caller's data fits in MAX_LINE_BYTES (formatters do not truncate; every
 *   reply the controller model produces fits, which a test checks).
 *
 * The byte-level specification, with examples, is docs/firmware-sim.md.
 */

/** Longest line content accepted, in bytes, excluding the terminating CR/LF. */
export const MAX_LINE_BYTES = 512;

/** Request ids are 1..MAX_REQUEST_ID; 0 marks a reply to a line whose id could not be read. */
export const MAX_REQUEST_ID = 65535;

/** Door names exactly as they appear on the wire, in report order. */
export const WIRE_DOORS = ['front-left', 'front-right', 'rear-left', 'rear-right'] as const;
export type WireDoor = (typeof WIRE_DOORS)[number];

export type LockState = 'locked' | 'unlocked';
export type DriveState = 'off' | 'ready';
export type TrunkState = 'open' | 'closed';
/** Whether a door stands open (ajar) or is shut; reported by controllers that sense it. */
export type DoorPosition = 'open' | 'closed';
export type ButtonPress = 'short' | 'long';

/** Error codes carried by `ERR` replies (and by parse failures on either side). */
export const WIRE_ERROR_CODES = [
  'SYNTAX', // line does not follow the grammar
  'CRC', // checksum missing (where required) or wrong
  'TOOLONG', // line longer than MAX_LINE_BYTES
  'BADCHAR', // byte outside printable ASCII
  'UNKNOWN', // unknown verb or event
  'ARGS', // wrong number or shape of arguments
  'NODOOR', // door not fitted on this car
  'RANGE', // value outside what the hardware supports (display text, counts)
  'LOCKED', // (control socket) a locked door cannot be opened from outside
  'BUSY', // another host already holds the link
  'INTERNAL', // the controller failed; the command was not applied
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

/** A typed protocol failure. `id` is the id the offending line claims (0 if none). */
export interface WireError {
  readonly code: WireErrorCode;
  readonly text: string;
  readonly id: number;
}

export type WireResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: WireError };

function wireOk<T>(value: T): WireResult<T> {
  return { ok: true, value };
}

function wireFail<T = never>(code: WireErrorCode, text: string, id = 0): WireResult<T> {
  return { ok: false, error: { code, text, id } };
}

/** Which doors a LOCK/UNLOCK applies to. */
export type DoorTarget = 'all' | readonly WireDoor[];

/** A host → controller command, after parsing. */
export type HostCommand =
  | { readonly verb: 'PING' }
  | { readonly verb: 'STATE' }
  | { readonly verb: 'LOCK'; readonly doors: DoorTarget }
  | { readonly verb: 'UNLOCK'; readonly doors: DoorTarget }
  | { readonly verb: 'DRIVE'; readonly on: boolean }
  | { readonly verb: 'TRUNK' }
  | { readonly verb: 'DISPLAY'; readonly op: 'show'; readonly rows: readonly string[] }
  | { readonly verb: 'DISPLAY'; readonly op: 'clear' }
  | { readonly verb: 'BEEP'; readonly count: number }
  | { readonly verb: 'FLASH'; readonly count: number };

/** Largest BEEP/FLASH repeat count. */
export const MAX_SIGNAL_COUNT = 9;

/** An unsolicited controller → host event. */
export type WireEvent =
  | { readonly event: 'BUTTON'; readonly press: ButtonPress }
  | { readonly event: 'KEYCARD'; readonly cardId: string }
  | { readonly event: 'TRUNK'; readonly state: TrunkState }
  | { readonly event: 'DOOR'; readonly door: WireDoor; readonly position: DoorPosition };

/** The STATE key that reports a door's position: `front-left` → `front-left-door`. */
export function doorPositionKey(door: WireDoor): string {
  return `${door}-door`;
}

/** A controller → host reply. `data` tokens are already percent-decoded. */
export type WireReply =
  | { readonly kind: 'ok'; readonly id: number; readonly data: readonly string[] }
  | { readonly kind: 'err'; readonly id: number; readonly code: string; readonly text: string };

/** Anything the controller sends. */
export type ControllerMessage = WireReply | { readonly kind: 'event'; readonly event: WireEvent };

/** A request line split into id, verb and decoded argument tokens (verb not yet interpreted). */
export interface RequestFrame {
  readonly id: number;
  readonly verb: string;
  readonly args: readonly string[];
}

/** Whether a line must carry a `*XXXX` checksum. The host link requires it; the sim's control socket does not. */
export type ChecksumPolicy = 'required' | 'optional';

// --- checksum ---------------------------------------------------------------

/** CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final xor) of the string's char codes. */
export function crc16(text: string): number {
  let crc = 0xffff;
  for (let i = 0; i < text.length; i++) {
    crc ^= (text.charCodeAt(i) & 0xff) << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

function crcHex(body: string): string {
  return crc16(body).toString(16).toUpperCase().padStart(4, '0');
}

/** Append the checksum and the LF: `body` → `body*XXXX\n`. `body` must be printable ASCII without `*`. */
export function sealLine(body: string): string {
  return `${body}*${crcHex(body)}\n`;
}

function isPrintableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

const CHECKSUM_RE = /^[0-9A-F]{4}$/;
const ID_RE = /^(0|[1-9][0-9]{0,4})$/;

/** The id a line claims in its first token, or 0. Used only to address error replies. */
function claimedId(text: string): number {
  const first = text.split(' ', 1)[0] ?? '';
  if (!ID_RE.test(first)) return 0;
  const id = Number(first);
  return id <= MAX_REQUEST_ID ? id : 0;
}

/**
 * Check a line's charset, length and checksum and return its body (the part before `*XXXX`).
 * `line` excludes the LF (a trailing CR is tolerated and ignored).
 */
export function openLine(line: string, policy: ChecksumPolicy): WireResult<string> {
  const content = line.endsWith('\r') ? line.slice(0, -1) : line;
  if (content.length > MAX_LINE_BYTES) return wireFail('TOOLONG', `line longer than ${MAX_LINE_BYTES} bytes`);
  if (!isPrintableAscii(content)) return wireFail('BADCHAR', 'line contains a byte outside printable ASCII');
  const star = content.indexOf('*');
  if (star < 0) {
    if (policy === 'required') return wireFail('CRC', 'checksum missing', claimedId(content));
    return wireOk(content);
  }
  const body = content.slice(0, star);
  const sum = content.slice(star + 1);
  if (!CHECKSUM_RE.test(sum)) return wireFail('CRC', 'checksum must be 4 uppercase hex digits at the end of the line', claimedId(body));
  if (sum !== crcHex(body)) return wireFail('CRC', 'checksum mismatch', claimedId(body));
  return wireOk(body);
}

// --- tokens -------------------------------------------------------------------

const HEX = '0123456789ABCDEF';
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Percent-encode one token: bytes of the UTF-8 encoding outside 0x21..0x7E, and
 * `%` and `*`, become `%XX` (uppercase hex). The empty string encodes to the
 * empty string, which is not a valid token: formatters never emit one.
 */
export function encodeToken(value: string): string {
  const bytes = utf8Encoder.encode(value);
  let out = '';
  for (const b of bytes) {
    if (b >= 0x21 && b <= 0x7e && b !== 0x25 && b !== 0x2a) {
      out += String.fromCharCode(b);
    } else {
      out += `%${HEX[b >> 4] ?? '0'}${HEX[b & 0x0f] ?? '0'}`;
    }
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/** Decode a percent-encoded token; undefined if an escape is malformed or the bytes are not UTF-8. */
export function decodeToken(token: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(token.charCodeAt(i + 1));
      const lo = hexValue(token.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      bytes.push((hi << 4) | lo);
      i += 2;
    } else if (c >= 0x21 && c <= 0x7e && c !== 0x2a) {
      bytes.push(c);
    } else {
      return undefined;
    }
  }
  try {
    return utf8Decoder.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

/** Split a body on single spaces; undefined if any token is empty (leading, trailing or double space). */
function splitTokens(body: string): string[] | undefined {
  const tokens = body.split(' ');
  return tokens.every((t) => t.length > 0) ? tokens : undefined;
}

function decodeAll(tokens: readonly string[]): string[] | undefined {
  const out: string[] = [];
  for (const t of tokens) {
    const d = decodeToken(t);
    if (d === undefined) return undefined;
    out.push(d);
  }
  return out;
}

/** Parse `key=value` data tokens (already decoded); undefined if a token has no `=`. Later keys win. */
export function parseKeyValues(data: readonly string[]): ReadonlyMap<string, string> | undefined {
  const map = new Map<string, string>();
  for (const token of data) {
    const eq = token.indexOf('=');
    if (eq <= 0) return undefined;
    map.set(token.slice(0, eq), token.slice(eq + 1));
  }
  return map;
}

// --- requests (host → controller) -----------------------------------------------

const VERB_RE = /^[A-Z][A-Z-]{0,15}$/;

function parseId(token: string): number | undefined {
  if (!ID_RE.test(token)) return undefined;
  const id = Number(token);
  return id >= 1 && id <= MAX_REQUEST_ID ? id : undefined;
}

/** Parse a request line into id, verb and decoded args, checking charset, length and checksum. */
export function parseRequestFrame(line: string, policy: ChecksumPolicy = 'required'): WireResult<RequestFrame> {
  const opened = openLine(line, policy);
  if (!opened.ok) return opened;
  const tokens = splitTokens(opened.value);
  const idToken = opened.value.split(' ', 1)[0] ?? '';
  const id = parseId(idToken) ?? 0;
  if (tokens === undefined) return wireFail('SYNTAX', 'tokens are separated by exactly one space', id);
  const [first, verb, ...rawArgs] = tokens;
  if (first === undefined || id === 0) return wireFail('SYNTAX', 'a request starts with an id 1..65535', 0);
  if (verb === undefined || !VERB_RE.test(verb)) return wireFail('SYNTAX', 'expected an uppercase verb after the id', id);
  const args = decodeAll(rawArgs);
  if (args === undefined) return wireFail('SYNTAX', 'malformed %-escape or non-UTF-8 argument', id);
  return wireOk({ id, verb, args });
}

export function isWireDoor(value: string): value is WireDoor {
  return (WIRE_DOORS as readonly string[]).includes(value);
}

function parseDoorTarget(args: readonly string[]): DoorTarget | undefined {
  if (args.length === 1 && args[0] === 'all') return 'all';
  if (args.length === 0 || args.length > WIRE_DOORS.length) return undefined;
  const doors: WireDoor[] = [];
  for (const a of args) {
    if (!isWireDoor(a) || doors.includes(a)) return undefined;
    doors.push(a);
  }
  return doors;
}

function parseCount(args: readonly string[]): number | undefined {
  if (args.length === 0) return 1;
  const [only] = args;
  if (args.length !== 1 || only === undefined || !/^[1-9]$/.test(only)) return undefined;
  return Number(only);
}

/** Interpret a frame's verb and args as a host command. */
export function toHostCommand(frame: RequestFrame): WireResult<HostCommand> {
  const { id, verb, args } = frame;
  const bad = (usage: string): WireResult<HostCommand> => wireFail('ARGS', `usage: ${usage}`, id);
  switch (verb) {
    case 'PING':
      return args.length === 0 ? wireOk({ verb }) : bad('PING');
    case 'STATE':
      return args.length === 0 ? wireOk({ verb }) : bad('STATE');
    case 'LOCK':
    case 'UNLOCK': {
      const doors = parseDoorTarget(args);
      return doors === undefined ? bad(`${verb} all | ${verb} <door> [<door>...] (doors: ${WIRE_DOORS.join(' ')}, no repeats)`) : wireOk({ verb, doors });
    }
    case 'DRIVE':
      if (args.length === 1 && (args[0] === 'on' || args[0] === 'off')) return wireOk({ verb, on: args[0] === 'on' });
      return bad('DRIVE on|off');
    case 'TRUNK':
      return args.length === 1 && args[0] === 'open' ? wireOk({ verb }) : bad('TRUNK open');
    case 'DISPLAY': {
      const [op, ...rows] = args;
      if (op === 'CLEAR' && rows.length === 0) return wireOk({ verb, op: 'clear' });
      if (op === 'SHOW' && rows.length >= 1) return wireOk({ verb, op: 'show', rows });
      return bad('DISPLAY SHOW <row> [<row>...] | DISPLAY CLEAR');
    }
    case 'BEEP':
    case 'FLASH': {
      const count = parseCount(args);
      return count === undefined ? bad(`${verb} [1-${MAX_SIGNAL_COUNT}]`) : wireOk({ verb, count });
    }
    default:
      return wireFail('UNKNOWN', `unknown verb ${verb}`, id);
  }
}

/** Parse one host request line (LF already removed). */
export function parseRequest(line: string, policy: ChecksumPolicy = 'required'): WireResult<{ readonly id: number; readonly command: HostCommand }> {
  const frame = parseRequestFrame(line, policy);
  if (!frame.ok) return frame;
  const command = toHostCommand(frame.value);
  if (!command.ok) return command;
  return wireOk({ id: frame.value.id, command: command.value });
}

/** Display rows travel as tokens; an empty row is sent as a single (insignificant) space. */
function displayRowToken(row: string): string {
  return encodeToken(row.length === 0 ? ' ' : row);
}

function commandArgs(command: HostCommand): string[] {
  switch (command.verb) {
    case 'PING':
    case 'STATE':
      return [];
    case 'LOCK':
    case 'UNLOCK':
      return command.doors === 'all' ? ['all'] : command.doors.map(encodeToken);
    case 'DRIVE':
      return [command.on ? 'on' : 'off'];
    case 'TRUNK':
      return ['open'];
    case 'DISPLAY':
      return command.op === 'clear' ? ['CLEAR'] : ['SHOW', ...command.rows.map(displayRowToken)];
    case 'BEEP':
    case 'FLASH':
      return [String(command.count)];
  }
}

/** Format a host request line: `<id> <VERB> [args]*XXXX\n`. */
export function formatRequest(id: number, command: HostCommand): string {
  return sealLine([String(id), command.verb, ...commandArgs(command)].join(' '));
}

/** Format any request frame (args are percent-encoded here); used for the sim's control socket. */
export function formatRequestFrame(frame: RequestFrame): string {
  return sealLine([String(frame.id), frame.verb, ...frame.args.map(encodeToken)].join(' '));
}

// --- replies and events (controller → host) -----------------------------------

/**
 * Error text is free printable text: `*` (the checksum marker) and anything
 * outside printable ASCII become `?`, runs of spaces become one space (tokens
 * are single-space separated), and it is cut to 160 characters.
 */
function sanitizeText(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += c >= 0x20 && c <= 0x7e && ch !== '*' && ch.length === 1 ? ch : '?';
  }
  return out.replace(/ +/g, ' ').trim().slice(0, 160).trim();
}

/** `<id> OK [data...]*XXXX\n`; data tokens are percent-encoded here. */
export function formatOk(id: number, data: readonly string[] = []): string {
  return sealLine([String(id), 'OK', ...data.map(encodeToken)].join(' '));
}

/** `<id> ERR <CODE> <text>*XXXX\n`. */
export function formatErr(id: number, code: WireErrorCode, text: string): string {
  const clean = sanitizeText(text);
  return sealLine(clean.length > 0 ? `${id} ERR ${code} ${clean}` : `${id} ERR ${code}`);
}

/** `! <EVENT> <arg>*XXXX\n`. */
export function formatEvent(event: WireEvent): string {
  switch (event.event) {
    case 'BUTTON':
      return sealLine(`! BUTTON ${event.press}`);
    case 'KEYCARD':
      return sealLine(`! KEYCARD ${encodeToken(event.cardId)}`);
    case 'TRUNK':
      return sealLine(`! TRUNK ${event.state}`);
    case 'DOOR':
      return sealLine(`! DOOR ${event.door} ${event.position}`);
  }
}

const CARD_ID_RE = /^[A-Za-z0-9_-]{1,32}$/;

/** Keycard ids: 1..32 characters of A-Z a-z 0-9 _ - (an NFC UID in hex fits). */
export function isCardId(value: string): boolean {
  return CARD_ID_RE.test(value);
}

function parseEvent(tokens: readonly string[]): WireResult<WireEvent> {
  const [name, ...raw] = tokens;
  const args = decodeAll(raw);
  if (args === undefined) return wireFail('SYNTAX', 'malformed %-escape in event');
  const [arg] = args;
  switch (name) {
    case 'BUTTON':
      if (args.length === 1 && (arg === 'short' || arg === 'long')) return wireOk({ event: name, press: arg });
      return wireFail('ARGS', 'usage: ! BUTTON short|long');
    case 'KEYCARD':
      if (args.length === 1 && arg !== undefined && isCardId(arg)) return wireOk({ event: name, cardId: arg });
      return wireFail('ARGS', 'usage: ! KEYCARD <card-id>');
    case 'TRUNK':
      if (args.length === 1 && (arg === 'open' || arg === 'closed')) return wireOk({ event: name, state: arg });
      return wireFail('ARGS', 'usage: ! TRUNK open|closed');
    case 'DOOR': {
      const [door, position] = args;
      if (args.length === 2 && door !== undefined && isWireDoor(door) && (position === 'open' || position === 'closed')) return wireOk({ event: name, door, position });
      return wireFail('ARGS', `usage: ! DOOR <door> open|closed (doors: ${WIRE_DOORS.join(' ')})`);
    }
    default:
      return wireFail('UNKNOWN', `unknown event ${name ?? ''}`);
  }
}

const CODE_RE = /^[A-Z][A-Z0-9_]{0,15}$/;

/** Parse one controller line (reply or event; LF already removed). The checksum is always required. */
export function parseControllerLine(line: string): WireResult<ControllerMessage> {
  const opened = openLine(line, 'required');
  if (!opened.ok) return opened;
  const body = opened.value;
  const tokens = splitTokens(body);
  if (tokens === undefined) return wireFail('SYNTAX', 'tokens are separated by exactly one space', claimedId(body));
  if (tokens[0] === '!') {
    const event = parseEvent(tokens.slice(1));
    return event.ok ? wireOk({ kind: 'event', event: event.value }) : event;
  }
  const [idToken, status, ...rest] = tokens;
  const id = idToken !== undefined && ID_RE.test(idToken) && Number(idToken) <= MAX_REQUEST_ID ? Number(idToken) : undefined;
  if (id === undefined) return wireFail('SYNTAX', 'a reply starts with an id 0..65535 or "!"');
  if (status === 'OK') {
    if (id === 0) return wireFail('SYNTAX', 'OK reply with id 0');
    const data = decodeAll(rest);
    if (data === undefined) return wireFail('SYNTAX', 'malformed %-escape in reply data', id);
    return wireOk({ kind: 'ok', id, data });
  }
  if (status === 'ERR') {
    const [code, ...text] = rest;
    if (code === undefined || !CODE_RE.test(code)) return wireFail('SYNTAX', 'ERR reply needs an uppercase code', id);
    return wireOk({ kind: 'err', id, code, text: text.join(' ') });
  }
  return wireFail('SYNTAX', 'expected OK or ERR after the id', id);
}

// --- byte stream → lines -----------------------------------------------------------

/** One item out of the splitter: a complete line (without CR/LF) or a framing error. */
export type SplitItem = { readonly ok: true; readonly line: string } | { readonly ok: false; readonly error: WireError };

/**
 * Cuts a byte stream into LF-terminated lines. Holds at most MAX_LINE_BYTES + 1
 * bytes; a longer line is discarded up to its LF and reported once as TOOLONG.
 * Lines with bytes outside printable ASCII are reported as BADCHAR. Empty lines
 * are skipped (a host may send a bare LF to flush a partial line).
 */
export class LineSplitter {
  private readonly buffer = new Uint8Array(MAX_LINE_BYTES + 1);
  private length = 0;
  private overflow = false;

  push(chunk: Uint8Array): SplitItem[] {
    const out: SplitItem[] = [];
    for (const byte of chunk) {
      if (byte === 0x0a) {
        const item = this.finishLine();
        if (item !== undefined) out.push(item);
      } else if (!this.overflow) {
        if (this.length < this.buffer.length) {
          this.buffer[this.length++] = byte;
        } else {
          this.overflow = true;
        }
      }
    }
    return out;
  }

  /** Bytes of the unfinished line currently buffered. */
  get pendingBytes(): number {
    return this.length;
  }

  private finishLine(): SplitItem | undefined {
    const overflowed = this.overflow;
    let end = this.length;
    this.length = 0;
    this.overflow = false;
    if (overflowed) return { ok: false, error: { code: 'TOOLONG', text: `line longer than ${MAX_LINE_BYTES} bytes`, id: 0 } };
    if (end > 0 && this.buffer[end - 1] === 0x0d) end--;
    if (end === 0) return undefined;
    if (end > MAX_LINE_BYTES) return { ok: false, error: { code: 'TOOLONG', text: `line longer than ${MAX_LINE_BYTES} bytes`, id: 0 } };
    let line = '';
    for (let i = 0; i < end; i++) {
      const b = this.buffer[i] ?? 0;
      if (b < 0x20 || b > 0x7e) return { ok: false, error: { code: 'BADCHAR', text: 'line contains a byte outside printable ASCII', id: 0 } };
      line += String.fromCharCode(b);
    }
    return { ok: true, line };
  }
}
