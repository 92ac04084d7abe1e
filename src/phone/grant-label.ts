/**
 * Grant labels: the issuer's private note on a grant ("Sam, weekend").
 *
 * A label is never part of the signed grant (protocol.md §8.1 is unchanged)
 * and never reaches the car or the cloud in the clear: the issuing phone
 * keeps it next to the grant in its key store (serial → label), and a share
 * may carry it to the recipient as an unsigned display field
 * (share.ts, format 2), shown there as "label from the sharer" and trusted
 * for nothing.
 *
 * Guarantees (pure, browser-safe):
 * - `checkLabel` accepts exactly: text that, after trimming surrounding
 *   white space and NFC normalisation, is 1..MAX_LABEL_CHARS Unicode code
 *   points with no control characters (C0, DEL, C1), no line or paragraph
 *   separators, no bidirectional embedding/override/isolate characters (they
 *   could make a label reorder the audit line it is printed in) and no lone
 *   surrogates (not encodable as UTF-8). It returns the normalised label, or
 *   CK_PHONE_BAD_LABEL saying why. Its UTF-8 encoding is at most
 *   MAX_LABEL_BYTES bytes.
 * - `auditLabeler` resolves an audit entry's grant serial
 *   (`subject: "grant:SERIAL"`) or key id (`key`, `subject: "key:KEYID"`)
 *   to the label this phone knows, and to nothing when that is ambiguous
 *   (one key, several grants with different labels).
 */
import { toHex } from '../core/bytes.js';
import type { Crypto } from '../core/crypto/index.js';
import { fail, ok, type Result } from '../core/errors.js';
import { keyIdOf } from '../core/identity.js';
import type { IssuedGrant, VehicleRecord } from './vehicle-record.js';

export const MAX_LABEL_CHARS = 64;
/** 64 code points of at most 4 UTF-8 bytes each. */
export const MAX_LABEL_BYTES = MAX_LABEL_CHARS * 4;

const FORBIDDEN: readonly { readonly pattern: RegExp; readonly what: string }[] = [
  { pattern: /\p{Cc}/u, what: 'a control character' },
  { pattern: /[\u2028\u2029]/u, what: 'a line or paragraph separator' },
  { pattern: /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u, what: 'a bidirectional formatting character' },
  { pattern: /\p{Cs}/u, what: 'a lone surrogate (not valid UTF-8)' },
];

/** Length in Unicode code points (what the 64-character limit counts; an emoji sequence counts each of its code points). */
export function codePointLength(text: string): number {
  let count = 0;
  for (const _char of text) count++;
  return count;
}

function codePoint(text: string): string {
  return `U+${(text.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Validate and normalise a label (see the module header). Never throws. */
export function checkLabel(text: string): Result<string> {
  const label = text.trim().normalize('NFC');
  if (label === '') return fail('CK_PHONE_BAD_LABEL', text === '' ? 'it is empty' : 'it is only white space');
  for (const { pattern, what } of FORBIDDEN) {
    const match = pattern.exec(label);
    if (match !== null) return fail('CK_PHONE_BAD_LABEL', `it contains ${what} (${codePoint(match[0])} at character ${codePointLength(label.slice(0, match.index)) + 1})`);
  }
  const chars = codePointLength(label);
  if (chars > MAX_LABEL_CHARS) return fail('CK_PHONE_BAD_LABEL', `it is ${chars} characters long; at most ${MAX_LABEL_CHARS}`);
  return ok(label);
}

/** What an audit entry's key was resolved to, or undefined when this phone knows no (unambiguous) label. */
export interface AuditLabel {
  readonly label: string;
  /** how it was found: the grant serial the car recorded, or the key id (one label for every grant to that key) */
  readonly by: 'serial' | 'key';
  readonly serial: string;
}

/** The label of the grant this phone issued with `serialHex`, if it has one. */
export function labelOfSerial(record: Pick<VehicleRecord, 'issued'>, serialHex: string): string | undefined {
  return record.issued.find((entry) => toHex(entry.grant.serial) === serialHex)?.label;
}

/**
 * A resolver for one vehicle's audit entries. The car records `subject`
 * ("grant:SERIAL" for a grant holder, "key:KEYID" for an owner) and `key`
 * (the key id of the phone). A serial is exact (a grant without a label
 * resolves to nothing, never to another grant's label); a bare key id only
 * resolves when every labelled grant this phone issued to that key carries
 * the same label.
 */
export function auditLabeler(crypto: Crypto, record: Pick<VehicleRecord, 'issued'>): (fields: Readonly<Record<string, unknown>>) => AuditLabel | undefined {
  const bySerial = new Map<string, IssuedGrant>();
  const byKey = new Map<string, IssuedGrant[]>();
  for (const entry of record.issued) {
    if (entry.label === undefined) continue;
    bySerial.set(toHex(entry.grant.serial), entry);
    const keyId = keyIdOf(crypto, entry.grant.subject);
    byKey.set(keyId, [...(byKey.get(keyId) ?? []), entry]);
  }
  return (fields) => {
    const subject = typeof fields.subject === 'string' ? fields.subject : undefined;
    if (subject?.startsWith('grant:') === true) {
      const serial = subject.slice('grant:'.length);
      const label = bySerial.get(serial)?.label;
      return label === undefined ? undefined : { label, by: 'serial', serial };
    }
    const keyId = typeof fields.key === 'string' ? fields.key : subject?.startsWith('key:') === true ? subject.slice('key:'.length) : undefined;
    const matches = keyId === undefined ? [] : (byKey.get(keyId) ?? []);
    const [first] = matches;
    if (first?.label === undefined || matches.some((entry) => entry.label !== first.label)) return undefined;
    return { label: first.label, by: 'key', serial: toHex(first.grant.serial) };
  };
}
