/**
 * The app's screens: first run (create or import the key), unlock (for a
 * passphrase key), and the main screen with the car's big buttons, pairing,
 * keys, sharing, accepting, revoking, audit, backup and the limits of a web
 * page. Every action shows progress in a live region and ends in a clear
 * result or a reason (the CLI's message and error code).
 *
 * Accessibility: native buttons and inputs with labels; progress in an
 * aria-live region, results in role=status/alert; visible focus; sizes in
 * rem, one column from 360 px.
 */
import { fromHex, toHex } from '../../core/bytes.js';
import type { Crypto } from '../../core/crypto/policy.js';
import type { AuditEntry, AuditVerification } from '../../core/audit.js';
import { CarkeyError, toCarkeyError, type Result } from '../../core/errors.js';
import { keyIdOf } from '../../core/identity.js';
import type { DenyCategoryName } from '../../core/messages.js';
import { decodeStatus, PIN_PATTERN } from '../../core/payloads.js';
import { MAX_GRANT_WINDOW_MS, permissionNames } from '../../core/roles.js';
import { auditLabelSuffix, denialHint, describeProgress, describeStatus, grantView, isRevoked, quoteLabel, sharerLabelOf } from '../../phone/describe.js';
import { auditLabeler } from '../../phone/grant-label.js';
import { latestKnownKeyList, parseRevocationTarget } from '../../phone/key-lists.js';
import type { InboxEntry } from '../../phone/cloud/mailbox.js';
import { isRemoteCommandName, REMOTE_COMMAND_NAMES } from '../../phone/cloud/remote.js';
import type { VehicleRecord } from '../../phone/vehicle-record.js';
import { exportState, importState } from './backup.js';
import { SEALED_NEEDS_SEED, WebCloud } from './cloud.js';
import { browserBluetooth, WebBluetoothTransport } from './bluetooth.js';
import { append, field, h, iso, localInput, replace } from './dom.js';
import { createIdentity, deviceBoundSupported, PROTECTION_TEXT, unlockIdentity, type Protection, type UnlockedKey } from './identity.js';
import { expectOk, WebPhone, type WebProgress } from './phone.js';
import { qrSvg } from './qr.js';
import { SimBluetooth } from './sim-bluetooth.js';
import type { WebStore } from './store.js';

export interface AppDeps {
  readonly crypto: Crypto;
  readonly store: WebStore;
  readonly root: HTMLElement;
  readonly radioBridge: boolean;
  readonly random: (length: number) => Uint8Array;
}

type RadioChoice = 'bluetooth' | 'sim';

const CLOUD_TEXT = 'Optional. Keys shared at a distance, commands sent from afar and the audit log kept in the cloud go through carkey-cloud. Every Bluetooth action works without it and never waits for it.';
const REMOTE_DONE = { unlock: 'unlocked', lock: 'locked', start: 'started', trunk: 'opened the trunk of' } as const;
const WALK_UP_TEXT =
  'Walk-up entry (the car unlocks as you approach) is not possible from a web page: browsers do not scan for Bluetooth in the background, and every connection needs a tap and the browser’s device chooser. For walk-up entry run `carkey unlock --walk-up` (the carkey CLI) on a phone or computer that can scan.';

/** The audit verdict, one text for the log read over Bluetooth and the one read from the cloud. */
function auditVerdict(verification: Result<AuditVerification>): string {
  if (!verification.ok) return `audit chain does NOT verify: ${verification.error.message} [${verification.error.code}]`;
  const { entries, checkpoints, uncovered } = verification.value;
  return `audit chain verified against the car key: ${entries} entries, ${checkpoints} signed checkpoints${uncovered > 0 ? `; the newest ${uncovered} entries are not covered by a checkpoint yet` : ''}`;
}

/** `record`: the car's record on this phone, whose grant labels are shown next to the entries they resolve to (grant-label.ts). */
function auditLines(crypto: Crypto, record: VehicleRecord, entries: readonly AuditEntry[]): string[] {
  const labelOf = auditLabeler(crypto, record);
  return entries.map((entry) => `#${entry.seq} ${iso(entry.time)} ${entry.kind} ${Object.entries(entry.fields).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}${auditLabelSuffix(labelOf(entry.fields)?.label)}`);
}

function errorText(error: CarkeyError): string {
  const category = error.details?.category;
  const hint = error.code === 'CK_DENIED' && typeof category === 'string' ? denialHint(category as DenyCategoryName).replace('add --pin PIN', 'enter the PIN and press Start again') : undefined;
  return `${error.message} [${error.code}]${hint === undefined ? '' : ` — ${hint}`}`;
}

export class App {
  private key: UnlockedKey | undefined;
  private radio: RadioChoice;
  private selected: string | undefined;
  private busy = false;
  private needsPin = false;
  /** the last share made, shown until the next render of another car */
  private lastAudit: { readonly vehicle: string; readonly ok: boolean; readonly verdict: string; readonly lines: readonly string[] } | undefined;
  private lastShare: { readonly vehicle: string; readonly share: string; readonly link: string } | undefined;
  private readonly phone: WebPhone;
  private progressEl: HTMLElement = h('p');
  private resultEl: HTMLElement = h('div');
  private readonly cloud: WebCloud;
  private cloudBusy = false;
  /** kept across re-renders, so a cloud action in flight still reports where the person looks */
  private readonly cloudProgressEl: HTMLElement = h('p', { id: 'cloud-progress', class: 'progress', 'aria-live': 'polite' });
  private readonly cloudResultEl: HTMLElement = h('div', { id: 'cloud-result', class: 'result', role: 'status', 'aria-live': 'polite' });
  private inbox: readonly InboxEntry[] | undefined;
  private lastCloudAudit: { readonly vehicle: string; readonly ok: boolean; readonly verdict: string; readonly lines: readonly string[] } | undefined;

  constructor(private readonly deps: AppDeps) {
    this.radio = deps.radioBridge && browserBluetooth() === undefined ? 'sim' : 'bluetooth';
    this.phone = new WebPhone({
      crypto: deps.crypto,
      random: deps.random,
      clock: () => Date.now(),
      store: deps.store,
      transport: () => new WebBluetoothTransport(this.radio === 'sim' ? new SimBluetooth() : browserBluetooth()),
      signer: () => {
        if (this.key === undefined) return Promise.reject(new CarkeyError('CK_PHONE_NEED_PASSPHRASE', 'unlock the app first'));
        return Promise.resolve(this.key.signer);
      },
      progress: (event) => this.showProgress(event),
    });
    this.cloud = new WebCloud({
      crypto: deps.crypto,
      random: deps.random,
      clock: () => Date.now(),
      store: deps.store,
      phone: this.phone,
      key: () => {
        if (this.key === undefined) throw new CarkeyError('CK_PHONE_NEED_PASSPHRASE', 'unlock the app first');
        return this.key;
      },
      progress: (line) => replace(this.cloudProgressEl, line),
    });
  }

  async start(): Promise<void> {
    // A `carkey1:` link opened while the app is open changes only the fragment.
    window.addEventListener('hashchange', () => {
      if (this.key !== undefined && location.hash.startsWith('#carkey1:')) void this.main();
    });
    const identity = this.deps.store.identity();
    if (identity === undefined) return this.firstRun();
    if (identity.protection === 'device-bound') {
      this.key = await unlockIdentity(this.deps.crypto, identity);
      return this.main();
    }
    return this.unlockScreen();
  }

  // --- first run -------------------------------------------------------------------

  private async firstRun(): Promise<void> {
    const supported = await deviceBoundSupported(this.deps.crypto);
    const choice = (value: Protection, text: string, checked: boolean, disabled = false): HTMLElement =>
      h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'protection', value, checked, disabled }), ` ${text}`);
    const passphrase = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8, id: 'new-passphrase' });
    const again = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8, id: 'new-passphrase-again' });
    const status = h('div', { role: 'alert', class: 'result', id: 'first-run-result' });
    const create = async (): Promise<void> => {
      const selected = this.deps.root.querySelector<HTMLInputElement>('input[name=protection]:checked')?.value === 'passphrase' ? 'passphrase' : 'device-bound';
      try {
        if (selected === 'passphrase' && passphrase.value !== again.value) throw new CarkeyError('CK_USAGE', 'the two passphrases differ');
        const identity = await createIdentity(this.deps.crypto, selected, Date.now(), selected === 'passphrase' ? passphrase.value : undefined);
        await this.deps.store.createIdentity(identity);
        this.key = await unlockIdentity(this.deps.crypto, identity, selected === 'passphrase' ? passphrase.value : undefined);
        passphrase.value = '';
        again.value = '';
        await this.main();
      } catch (error) {
        replace(status, errorText(toCarkeyError(error)));
      }
    };
    const file = h('input', { type: 'file', accept: '.json,application/json', id: 'import-file' });
    const importPass = h('input', { type: 'password', autocomplete: 'current-password', id: 'import-passphrase' });
    const restore = async (): Promise<void> => {
      try {
        const chosen = file.files?.[0];
        if (chosen === undefined) throw new CarkeyError('CK_USAGE', 'choose the export file first');
        this.key = await importState(this.deps.crypto, this.deps.store, await chosen.text(), importPass.value);
        importPass.value = '';
        await this.main();
      } catch (error) {
        replace(status, errorText(toCarkeyError(error)));
      }
    };
    replace(
      this.deps.root,
      h('h1', {}, 'carkey'),
      h('section', { 'aria-labelledby': 'create-title' },
        h('h2', { id: 'create-title' }, 'Create this phone’s key'),
        h('p', {}, 'Your key is made here and never leaves this device unless you export it.'),
        h('fieldset', {},
          h('legend', {}, 'How the key is protected'),
          choice('device-bound', supported ? 'Device-bound (recommended): the browser keeps the key non-extractable' : 'Device-bound: not supported by this browser', supported, !supported),
          choice('passphrase', 'Passphrase: encrypted at rest, can be moved to a new phone', !supported),
        ),
        field('Passphrase (only for a passphrase key, at least 8 characters)', passphrase),
        field('Passphrase again', again),
        h('button', { type: 'button', class: 'big', id: 'create-key', onclick: () => void create() }, 'Create key'),
      ),
      h('section', { 'aria-labelledby': 'import-title' },
        h('h2', { id: 'import-title' }, 'Or move your key from another phone'),
        field('Export file', file),
        field('Its passphrase', importPass),
        h('button', { type: 'button', id: 'import-key', onclick: () => void restore() }, 'Import'),
      ),
      status,
    );
  }

  private unlockScreen(): void {
    const passphrase = h('input', { type: 'password', autocomplete: 'current-password', id: 'unlock-passphrase' });
    const status = h('div', { role: 'alert', class: 'result' });
    const unlock = async (): Promise<void> => {
      const identity = this.deps.store.identity();
      if (identity === undefined) return;
      try {
        this.key = await unlockIdentity(this.deps.crypto, identity, passphrase.value);
        passphrase.value = '';
        await this.main();
      } catch (error) {
        replace(status, errorText(toCarkeyError(error)));
      }
    };
    replace(
      this.deps.root,
      h('h1', {}, 'carkey'),
      h('form', { onsubmit: (event: Event) => { event.preventDefault(); void unlock(); } },
        h('p', {}, PROTECTION_TEXT.passphrase),
        field('Passphrase', passphrase),
        h('button', { type: 'submit', class: 'big', id: 'unlock-app' }, 'Unlock app'),
      ),
      status,
    );
  }

  // --- main screen ---------------------------------------------------------------

  private vehicles(): VehicleRecord[] {
    return this.deps.store.listVehicles();
  }

  private current(): VehicleRecord | undefined {
    const all = this.vehicles();
    return all.find((record) => toHex(record.vehicleId) === this.selected) ?? all[0];
  }

  private main(): Promise<void> {
    const key = this.key;
    if (key === undefined) return Promise.resolve();
    const identity = this.deps.store.identity();
    const crypto = this.deps.crypto;
    const self = key.signer.publicKey;
    this.progressEl = h('p', { id: 'progress', class: 'progress', 'aria-live': 'polite' });
    this.resultEl = h('div', { id: 'result', class: 'result', role: 'status', 'aria-live': 'polite' });
    const vehicles = this.vehicles();
    const current = this.current();
    this.selected = current === undefined ? undefined : toHex(current.vehicleId);

    const radioPicker = h('select', { id: 'radio', onchange: (event: Event) => { this.radio = (event.target as HTMLSelectElement).value === 'sim' ? 'sim' : 'bluetooth'; } },
      h('option', { value: 'bluetooth', selected: this.radio === 'bluetooth' }, browserBluetooth() === undefined ? 'Bluetooth (not available in this browser)' : 'Bluetooth'),
      this.deps.radioBridge ? h('option', { value: 'sim', selected: this.radio === 'sim' }, 'Simulated radio (development)') : undefined,
    );
    const carPicker = h('select', { id: 'car', onchange: (event: Event) => { this.selected = (event.target as HTMLSelectElement).value; void this.main(); } },
      ...vehicles.map((record) => h('option', { value: toHex(record.vehicleId), selected: toHex(record.vehicleId) === this.selected }, `${record.name}${record.owner ? ' (owner)' : ''}`)),
    );
    const pin = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{4,8}', id: 'pin' });
    const pinField = field('PIN for start (this car asks for one)', pin);
    pinField.hidden = !this.needsPin;

    const action = (label: string, id: string, run: (record: VehicleRecord) => Promise<string>): HTMLButtonElement =>
      h('button', { type: 'button', class: 'big', id, disabled: current === undefined, onclick: () => void this.run(label, run) }, label);

    const carSection = h('section', { 'aria-labelledby': 'car-title' },
      h('h2', { id: 'car-title' }, current === undefined ? 'No car yet' : current.name),
      vehicles.length > 1 ? field('Car', carPicker) : undefined,
      current === undefined ? h('p', {}, 'Pair with your car (owners) or accept a key someone shared with you.') : undefined,
      h('div', { class: 'buttons' },
        action('Unlock', 'do-unlock', async (record) => { await this.phone.command(record, 'unlock'); return `unlocked ${record.name}`; }),
        action('Lock', 'do-lock', async (record) => { await this.phone.command(record, 'lock'); return `locked ${record.name}`; }),
        action('Trunk', 'do-trunk', async (record) => { await this.phone.command(record, 'trunk'); return `opened the trunk of ${record.name}`; }),
        action('Start', 'do-start', async (record) => {
          const value = pin.value.trim();
          if (value !== '' && !PIN_PATTERN.test(value)) throw new CarkeyError('CK_USAGE', 'the PIN is 4 to 8 digits');
          try {
            await this.phone.start(record, value === '' ? undefined : value);
          } catch (error) {
            const failure = toCarkeyError(error);
            if (failure.code === 'CK_DENIED' && failure.details?.category === 'pin') this.showPin(pinField);
            throw failure;
          } finally {
            pin.value = '';
          }
          return `started ${record.name}`;
        }),
        action('Status', 'do-status', async (record) => {
          const status = await this.phone.status(record);
          this.needsPin = status.startNeedsPin;
          pinField.hidden = !status.startNeedsPin;
          return describeStatus(status).join('\n');
        }),
      ),
      pinField,
      this.progressEl,
      this.resultEl,
      h('p', { class: 'note' }, WALK_UP_TEXT),
    );

    // Pairing
    const phoneName = h('input', { type: 'text', id: 'phone-name', value: 'my phone', maxlength: 32, autocomplete: 'off' });
    const pairSection = h('section', { 'aria-labelledby': 'pair-title' },
      h('h2', { id: 'pair-title' }, 'Pair with a car (owner)'),
      h('ol', {},
        h('li', {}, 'At the car, open pairing mode: press its pairing button (a car that has owners: tap a registered keycard, then press the button).'),
        h('li', {}, 'Press “Pair” and choose the car. This phone and the car’s display show a 6-digit code.'),
        h('li', {}, 'Compare the two codes. Only if they are the same: confirm here, then HOLD the car’s pairing button.'),
      ),
      field('Name the car shows for this phone', phoneName),
      h('button', { type: 'button', class: 'big', id: 'do-pair', onclick: () => void this.pair(phoneName.value) }, 'Pair'),
      h('div', { id: 'pair-area' }),
    );

    // Keys
    const keysList = h('div', { id: 'keys' });
    for (const record of vehicles) keysList.append(this.vehicleKeys(record));
    const copyKey = h('button', { type: 'button', onclick: () => void navigator.clipboard?.writeText(toHex(self)) }, 'Copy my public key');
    const keysSection = h('section', { 'aria-labelledby': 'keys-title' },
      h('h2', { id: 'keys-title' }, 'Keys'),
      h('p', {}, 'This phone: key id ', h('code', { id: 'my-key-id' }, keyIdOf(crypto, self))),
      h('p', { class: 'wrap' }, 'Public key (give it to an owner who shares a key with you): ', h('code', { id: 'my-public-key' }, toHex(self))),
      copyKey,
      h('p', { id: 'protection', class: 'note' }, identity === undefined ? '' : PROTECTION_TEXT[identity.protection]),
      keysList,
    );

    // Accept
    const shareText = h('textarea', { id: 'share-text', rows: 3, spellcheck: false, autocomplete: 'off' });
    if (location.hash.startsWith('#carkey1:')) shareText.value = decodeURIComponent(location.hash.slice(1));
    const acceptSection = h('section', { 'aria-labelledby': 'accept-title' },
      h('h2', { id: 'accept-title' }, 'Accept a shared key'),
      field('Shared key (carkey1:…), pasted or from a link', shareText),
      h('div', { class: 'buttons' },
        h('button', { type: 'button', id: 'do-accept', onclick: () => void this.run('Accept', async () => {
          const { record, grant } = await this.phone.accept(shareText.value);
          shareText.value = '';
          if (location.hash !== '') history.replaceState(null, '', location.pathname);
          this.selected = toHex(record.vehicleId);
          return `stored a ${grant.role} key for "${record.name}" (${permissionNames(grant.permissions).join(', ')}), valid ${iso(grant.notBefore)} → ${iso(grant.notAfter)}`;
        }, true) }, 'Accept'),
        'BarcodeDetector' in window ? h('button', { type: 'button', id: 'scan-qr', onclick: () => void this.scanQr(shareText) }, 'Scan QR code') : undefined,
      ),
      'BarcodeDetector' in window ? undefined : h('p', { class: 'note' }, 'This browser cannot read QR codes; paste the carkey1: text or open the link instead.'),
      h('div', { id: 'scan-area' }),
    );

    // Share
    const now = Date.now();
    const subject = h('input', { type: 'text', id: 'share-to', autocomplete: 'off', spellcheck: false, placeholder: '64 hex digits' });
    const role = h('select', { id: 'share-role' }, h('option', { value: 'guest' }, 'guest (unlock, lock, start, status)'), h('option', { value: 'driver' }, 'driver (also trunk, walk-up)'), h('option', { value: 'monitor' }, 'monitor (status only)'));
    const from = h('input', { type: 'datetime-local', id: 'share-from', value: localInput(now) });
    const until = h('input', { type: 'datetime-local', id: 'share-until', value: localInput(now + 24 * 3600_000) });
    const shareLabel = h('input', { type: 'text', id: 'share-label', autocomplete: 'off', placeholder: 'e.g. Sam, weekend' });
    const shareOut = h('div', { id: 'share-out' });
    const last = this.lastShare;
    if (last !== undefined && current !== undefined && last.vehicle === toHex(current.vehicleId)) {
      append(shareOut,
        qrSvg(last.share, `QR code of the shared key for ${current.name}`),
        h('p', {}, 'Send this privately (it also lets the holder recognise your car on the air). They open the link, scan the code, or paste the text into “Accept a shared key”.'),
        h('p', { class: 'wrap' }, h('a', { href: last.link, id: 'share-link' }, 'Link to this key')),
        h('p', { class: 'wrap' }, h('code', { id: 'share-string' }, last.share)),
        h('button', { type: 'button', onclick: () => void navigator.clipboard?.writeText(last.share) }, 'Copy'),
      );
    }
    const shareSection = current?.owner === true
      ? h('section', { 'aria-labelledby': 'share-title' },
          h('h2', { id: 'share-title' }, `Share a key to ${current.name}`),
          field('Their public key', subject, 'They find it under Keys in their app, or with `carkey whoami`.'),
          field('Role', role),
          field('Valid from', from),
          field('Valid until', until, `A guest key lasts at most ${MAX_GRANT_WINDOW_MS.guest / 86_400_000} days.`),
          field('Your label (optional)', shareLabel, 'Up to 64 characters. It stays on this phone: shown under Keys and next to their entries in the audit log, never sent to the car, the cloud or them.'),
          h('button', { type: 'button', id: 'do-share', onclick: () => void this.run('Share', async (record) => {
            const key = fromHex(subject.value.trim().toLowerCase());
            if (key === undefined || key.length !== 32) throw new CarkeyError('CK_USAGE', 'their public key is 64 hex digits');
            const chosenRole = role.value === 'driver' ? 'driver' : role.value === 'monitor' ? 'monitor' : 'guest';
            const { share, grant } = await this.phone.share(record, { subject: key, role: chosenRole, notBefore: new Date(from.value).getTime(), notAfter: new Date(until.value).getTime(), label: shareLabel.value.trim() === '' ? undefined : shareLabel.value });
            this.lastShare = { vehicle: toHex(record.vehicleId), share, link: `${location.origin}${location.pathname}#${share}` };
            return `grant ${toHex(grant.serial)}: ${grant.role} for key ${keyIdOf(crypto, grant.subject)}, ${iso(grant.notBefore)} → ${iso(grant.notAfter)}`;
          }, false, true) }, 'Share'),
          shareOut,
        )
      : undefined;

    // Revoke by text, audit
    const revokeText = h('input', { type: 'text', id: 'revoke-target', autocomplete: 'off', spellcheck: false, placeholder: 'grant serial (16 hex) or public key (64 hex)' });
    const auditOut = h('div', { id: 'audit-out' });
    const audit = this.lastAudit;
    if (audit !== undefined && current !== undefined && audit.vehicle === toHex(current.vehicleId)) {
      append(auditOut, h('p', { id: 'audit-verdict', class: audit.ok ? 'good' : 'bad' }, audit.verdict), h('ol', { class: 'audit' }, ...audit.lines.map((line) => h('li', {}, line))));
    }
    const ownerSection = current?.owner === true
      ? h('section', { 'aria-labelledby': 'owner-title' },
          h('h2', { id: 'owner-title' }, `Revoke and audit (${current.name})`),
          field('Revoke a grant serial or a key', revokeText),
          h('button', { type: 'button', id: 'do-revoke', onclick: () => void this.revoke(revokeText.value) }, 'Revoke'),
          h('button', { type: 'button', id: 'do-audit', onclick: () => void this.run('Audit', async (record) => {
            const report = await this.phone.audit(record);
            const verdict = auditVerdict(report.verification);
            this.lastAudit = { vehicle: toHex(record.vehicleId), ok: report.verification.ok, verdict, lines: auditLines(this.deps.crypto, record, report.entries) };
            return verdict;
          }) }, 'Read audit log'),
          auditOut,
        )
      : undefined;

    // Backup
    const exportOut = h('p', { id: 'export-out' });
    const exportPass = h('input', { type: 'password', autocomplete: 'new-password', id: 'export-passphrase' });
    const backupSection = h('section', { 'aria-labelledby': 'backup-title' },
      h('h2', { id: 'backup-title' }, 'Move to a new phone'),
      identity?.protection === 'passphrase'
        ? h('div', {},
            h('p', {}, 'Export this phone’s key and cars as a file encrypted with a passphrase (at least 8 characters); import it on the new phone’s first run.'),
            field('Passphrase for the file', exportPass),
            h('button', { type: 'button', id: 'do-export', onclick: () => void this.run('Export', async () => {
              const seed = key.seed;
              if (seed === undefined || identity.protection !== 'passphrase') throw new CarkeyError('CK_PHONE_NOT_OWNER', 'a device-bound key cannot be exported');
              const text = await exportState(crypto, this.deps.store, identity, seed, exportPass.value);
              exportPass.value = '';
              const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
              const link = h('a', { href: url, download: 'carkey-export.json', id: 'export-link' }, 'Download carkey-export.json');
              replace(exportOut, link);
              link.click();
              return 'export ready: carkey-export.json';
            }, true, false) }, 'Export'),
            exportOut,
          )
        : h('p', {}, 'This key is device-bound: the browser will not let it leave this phone. To move, pair the new phone as another owner at the car (or ask an owner for a new key), then revoke this one.'),
    );

    const header = h('header', {},
      h('h1', {}, 'carkey'),
      field('Radio', radioPicker),
      h('p', { class: 'note', id: 'online' }, navigator.onLine ? 'Online (not needed)' : 'Offline: everything over Bluetooth still works'),
      identity?.protection === 'passphrase' ? h('button', { type: 'button', id: 'lock-app', onclick: () => { this.key?.seed?.fill(0); this.key = undefined; this.unlockScreen(); } }, 'Lock app') : undefined,
    );
    replace(this.deps.root, header, carSection, pairSection, keysSection, acceptSection, shareSection, ownerSection, backupSection, this.cloudSection(current, key));
    return Promise.resolve();
  }

  // --- cloud (optional; never on a Bluetooth action's path) ------------------------

  private cloudSection(current: VehicleRecord | undefined, key: UnlockedKey): HTMLElement {
    const url = this.cloud.url();
    const sealedOk = key.seed !== undefined;
    const urlInput = h('input', { type: 'url', id: 'cloud-url', value: url ?? '', placeholder: 'https://cloud.example.net', autocomplete: 'off', spellcheck: false });
    const use = (): void => void this.cloudRun('Cloud', () => {
      const stored = this.cloud.use(urlInput.value);
      return Promise.resolve(`cloud set to ${stored}`);
    }, true);
    const forget = (): void => void this.cloudRun('Cloud', () => {
      this.cloud.forget();
      this.inbox = undefined;
      return Promise.resolve('no cloud set; everything over Bluetooth works as before');
    }, true);
    const settings = h('form', { onsubmit: (event: Event) => { event.preventDefault(); use(); } },
      field('Cloud URL', urlInput, 'carkey-cloud’s address, e.g. the one this app was opened from. Requests are signed with this phone’s key; there is no account or password.'),
      h('div', { class: 'buttons' },
        h('button', { type: 'submit', id: 'cloud-use' }, 'Use this cloud'),
        url === undefined ? undefined : h('button', { type: 'button', id: 'cloud-forget', onclick: forget }, 'Forget it'),
        url === undefined ? undefined : h('button', { type: 'button', id: 'cloud-check', onclick: () => void this.cloudRun('Check', async () => {
          const checked = await this.cloud.check();
          return `${checked.url} answers (${checked.roundTripMs} ms); this phone’s clock is ${Math.abs(checked.skewMs)} ms ${checked.skewMs > 0 ? 'behind' : 'ahead of'} the cloud’s`;
        }) }, 'Check'),
      ),
    );
    const parts: (HTMLElement | undefined)[] = [
      h('h2', { id: 'cloud-title' }, 'Cloud'),
      h('p', { id: 'cloud-about', class: 'note' }, CLOUD_TEXT),
      settings,
      h('p', { id: 'cloud-state' }, url === undefined ? 'No cloud set: nothing here uses the network.' : `Cloud: ${url}`),
    ];
    if (url !== undefined) {
      parts.push(sealedOk ? undefined : h('p', { id: 'cloud-seed-note', class: 'note' }, `Inbox and remote commands: ${SEALED_NEEDS_SEED}. The cloud audit and registration work with this key.`));
      parts.push(h('h3', {}, 'Inbox: keys shared with you at a distance'),
        h('button', { type: 'button', id: 'cloud-inbox', disabled: !sealedOk, onclick: () => void this.cloudRun('Inbox', async () => {
          this.inbox = await this.cloud.inbox();
          const usable = this.inbox.filter((entry) => entry.bundle !== undefined).length;
          return this.inbox.length === 0 ? 'the cloud mailbox is empty' : `${this.inbox.length} item${this.inbox.length === 1 ? '' : 's'}, ${usable} usable`;
        }, true) }, 'Check inbox'),
        this.inboxList());
      if (current !== undefined) {
        const command = h('select', { id: 'remote-command' }, ...REMOTE_COMMAND_NAMES.map((name) => h('option', { value: name }, name)));
        const remotePin = h('input', { type: 'password', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{4,8}', id: 'remote-pin' });
        parts.push(h('h3', {}, `Remote command to ${current.name}`),
          h('p', { class: 'note' }, 'The car carries out only the commands its owner enabled for remote use (carkeyd’s cloud.remote setting), with the same rules as over Bluetooth.'),
          field('Command', command),
          field('PIN (remote start, when the car asks for one)', remotePin),
          h('button', { type: 'button', id: 'do-remote', disabled: !sealedOk, onclick: () => void this.cloudRun('Remote', async () => {
            const name = command.value;
            if (!isRemoteCommandName(name)) throw new CarkeyError('CK_USAGE', `"${name}" cannot be sent remotely`);
            const pin = remotePin.value.trim();
            remotePin.value = '';
            if (pin !== '' && !PIN_PATTERN.test(pin)) throw new CarkeyError('CK_USAGE', 'the PIN is 4 to 8 digits');
            const answer = await this.cloud.remote(current, name, pin === '' ? undefined : pin);
            const outcome = answer.outcome;
            if (outcome.status === 'denied' && outcome.category === 'not-permitted') {
              // Over the cloud this also means the car does not take this command remotely: say both.
              throw new CarkeyError('CK_DENIED', `${name}: not-permitted — either the car does not carry out "${name}" through the cloud (its owner chooses that in carkeyd's cloud.remote setting) or your key does not allow it`, { command: name });
            }
            const payload = expectOk(outcome, name);
            if (name === 'status') {
              const decoded = decodeStatus(payload);
              if (!decoded.ok) throw new CarkeyError('CK_CLOUD_BAD_RESPONSE', `the car's status does not decode: ${decoded.error.message}`);
              return [`${current.name} (through the cloud, as of ${iso(answer.carTime)}):`, ...describeStatus(decoded.value)].join('\n');
            }
            return `${REMOTE_DONE[name]} ${current.name} through the cloud (the car answered at ${iso(answer.carTime)})`;
          }) }, 'Send through the cloud'));
      }
      if (current?.owner === true) {
        const auditOut = h('div', { id: 'cloud-audit-out' });
        const audit = this.lastCloudAudit;
        if (audit !== undefined && audit.vehicle === toHex(current.vehicleId)) {
          append(auditOut, h('p', { id: 'cloud-audit-verdict', class: audit.ok ? 'good' : 'bad' }, audit.verdict), h('ol', { class: 'audit' }, ...audit.lines.map((line) => h('li', {}, line))));
        }
        parts.push(h('h3', {}, `${current.name} and the cloud (owner)`),
          h('div', { class: 'buttons' },
            h('button', { type: 'button', id: 'cloud-audit', onclick: () => void this.cloudRun('Cloud audit', async () => {
              const report = await this.cloud.audit(current);
              const verdict = auditVerdict(report.verification);
              this.lastCloudAudit = { vehicle: toHex(current.vehicleId), ok: report.verification.ok, verdict, lines: auditLines(this.deps.crypto, current, report.entries) };
              return verdict;
            }, true) }, 'Audit log from the cloud'),
            h('button', { type: 'button', id: 'cloud-register', onclick: () => void this.cloudRun('Register', async () => {
              const registered = await this.cloud.register(current, (record) => this.withRadio(() => this.phone.vehicleStatement(record)));
              return `registered ${registered.record.name}: the cloud follows key list version ${registered.version} (signed by the car)`;
            }, true) }, 'Register this car with the cloud'),
          ),
          auditOut);
      }
    }
    parts.push(this.cloudProgressEl, this.cloudResultEl);
    return h('section', { 'aria-labelledby': 'cloud-title', id: 'cloud' }, ...parts);
  }

  private inboxList(): HTMLElement {
    const list = h('ul', { id: 'inbox' });
    const crypto = this.deps.crypto;
    for (const entry of this.inbox ?? []) {
      const from = keyIdOf(crypto, entry.item.sender);
      const bundle = entry.bundle;
      if (bundle === undefined) {
        list.append(h('li', { class: 'bad' }, `from ${from}: cannot be used: ${entry.error === undefined ? 'unusable' : errorText(entry.error)}`));
        continue;
      }
      const grant = bundle.grant;
      const accept = h('button', { type: 'button', id: `inbox-accept-${entry.item.id}`, 'aria-label': `Accept the key for ${bundle.vehicleName} from ${from}`, onclick: () => void this.cloudRun('Accept', async () => {
        const { record, acknowledged } = await this.cloud.accept(entry);
        this.inbox = this.inbox?.filter((other) => other.item.id !== entry.item.id);
        this.selected = toHex(record.vehicleId);
        return `stored a ${grant.role} key for "${record.name}" (${permissionNames(grant.permissions).join(', ')}), valid ${iso(grant.notBefore)} → ${iso(grant.notAfter)}${acknowledged === undefined ? '' : `; the mailbox item stays until it expires (${acknowledged})`}`;
      }, true) }, 'Accept');
      list.append(h('li', {}, `from ${from}: ${bundle.vehicleName}, ${grant.role} (${permissionNames(grant.permissions).join(', ')}), ${iso(grant.notBefore)} → ${iso(grant.notAfter)} `, accept));
    }
    return list;
  }

  /** Run a Bluetooth step of a cloud action under the radio's busy flag (one GATT link at a time). */
  private async withRadio<T>(task: () => Promise<T>): Promise<T> {
    if (this.busy) throw new CarkeyError('CK_USAGE', 'a Bluetooth action is running; try again when it is done');
    this.busy = true;
    try {
      return await task();
    } finally {
      this.busy = false;
      replace(this.progressEl, '');
    }
  }

  private cloudButtons(): HTMLButtonElement[] {
    return [...this.deps.root.querySelectorAll<HTMLButtonElement>('#cloud button')];
  }

  /** Like `run`, for the cloud section: its own busy flag, progress and result; Bluetooth buttons stay usable. */
  private async cloudRun(label: string, task: () => Promise<string>, rerender = false): Promise<void> {
    if (this.cloudBusy) return;
    this.cloudBusy = true;
    const enabled = this.cloudButtons().filter((button) => !button.disabled);
    for (const button of enabled) button.disabled = true;
    this.cloudResultEl.className = 'result';
    replace(this.cloudResultEl, '');
    replace(this.cloudProgressEl, `${label}…`);
    let outcome: { ok: boolean; text: string };
    try {
      outcome = { ok: true, text: await task() };
    } catch (error) {
      outcome = { ok: false, text: errorText(toCarkeyError(error)) };
    }
    this.cloudBusy = false;
    // Never re-render under a Bluetooth action in flight (it re-renders when it ends).
    if (rerender && !this.busy) await this.main();
    for (const button of enabled) button.disabled = false;
    replace(this.cloudProgressEl, '');
    this.cloudResultEl.className = `result ${outcome.ok ? 'good' : 'bad'}`;
    this.cloudResultEl.setAttribute('role', outcome.ok ? 'status' : 'alert');
    replace(this.cloudResultEl, `${label}: ${outcome.ok ? 'done' : 'failed'}`, h('br'), ...outcome.text.split('\n').flatMap((line, i) => (i === 0 ? [line] : [h('br'), line])));
  }

  private showPin(pinField: HTMLElement): void {
    this.needsPin = true;
    pinField.hidden = false;
    pinField.querySelector('input')?.focus();
  }

  private vehicleKeys(record: VehicleRecord): HTMLElement {
    const crypto = this.deps.crypto;
    const now = Date.now();
    const newest = latestKnownKeyList(record);
    const items: HTMLElement[] = [];
    if (record.owner) items.push(h('li', {}, `you are an owner; key list version ${record.keyList?.version ?? 'unknown'}${record.keyList === undefined ? '' : ` (${record.keyList.owners.length} owner${record.keyList.owners.length === 1 ? '' : 's'})`}`));
    for (const pending of record.pending) items.push(h('li', { class: 'queued' }, `queued: key list version ${pending.version}, goes to the car at the next connection`));
    for (const grant of record.grants) {
      const view = grantView(crypto, grant, record.keyList, now);
      const sharerLabel = sharerLabelOf(record, grant);
      items.push(h('li', {}, `held: ${grant.role} (${permissionNames(grant.permissions).join(', ')}), ${String(view.notBefore)} → ${String(view.notAfter)} [${String(view.state)}]${sharerLabel === undefined ? '' : ` (label from the sharer: ${quoteLabel(sharerLabel)})`}`));
    }
    for (const issued of record.issued) {
      const view = grantView(crypto, issued.grant, newest, now);
      const serial = toHex(issued.grant.serial);
      items.push(h('li', {},
        `issued ${serial}: ${issued.grant.role} to ${keyIdOf(crypto, issued.grant.subject)}${issued.label === undefined ? '' : ` ${quoteLabel(issued.label)}`}, ${String(view.notBefore)} → ${String(view.notAfter)} [${String(view.state)}] `,
        record.owner && !isRevoked(newest, issued.grant) ? h('button', { type: 'button', 'aria-label': `Revoke grant ${serial}`, onclick: () => void this.revoke(serial, record) }, 'Revoke') : undefined,
      ));
    }
    return h('article', { class: 'vehicle' }, h('h3', {}, `${record.name} (${record.vehicleName}), car key id ${keyIdOf(crypto, record.carIdentityKey)}`), h('ul', {}, ...items));
  }

  private showProgress(event: WebProgress): void {
    let text: string | undefined;
    switch (event.kind) {
      case 'choosing':
        text = this.radio === 'sim' ? 'looking for the car on the simulated radio…' : 'choose your car in the browser’s list…';
        break;
      case 'signing':
        text = 'signing…';
        break;
      case 'sending':
        text = `waiting for the car (${event.command})…`;
        break;
      default:
        text = describeProgress(event);
    }
    if (text !== undefined) replace(this.progressEl, text);
  }

  private async run(label: string, task: (record: VehicleRecord) => Promise<string>, noCar = false, rerender = true): Promise<void> {
    if (this.busy) return;
    const record = this.current();
    if (record === undefined && !noCar) return;
    this.busy = true;
    // The cloud section has its own busy state: a Bluetooth action neither waits for it nor blocks it.
    const buttons = [...this.deps.root.querySelectorAll('button')].filter((button) => button.closest('#cloud') === null);
    for (const button of buttons) button.disabled = true;
    this.resultEl.className = 'result';
    replace(this.resultEl, '');
    replace(this.progressEl, `${label}…`);
    let outcome: { ok: boolean; text: string };
    try {
      outcome = { ok: true, text: await task(record ?? (undefined as unknown as VehicleRecord)) };
    } catch (error) {
      outcome = { ok: false, text: errorText(toCarkeyError(error)) };
    }
    this.busy = false;
    if (rerender && outcome.ok) await this.main();
    for (const button of this.deps.root.querySelectorAll('button')) if (button.isConnected && button.closest('#cloud') === null) button.disabled = this.current() === undefined && button.classList.contains('big') && button.id.startsWith('do-') && button.id !== 'do-pair';
    replace(this.progressEl, '');
    this.resultEl.className = `result ${outcome.ok ? 'good' : 'bad'}`;
    this.resultEl.setAttribute('role', outcome.ok ? 'status' : 'alert');
    replace(this.resultEl, `${label}: ${outcome.ok ? 'done' : 'failed'}`, h('br'), ...outcome.text.split('\n').flatMap((line, i) => (i === 0 ? [line] : [h('br'), line])));
  }

  private async revoke(text: string, record = this.current()): Promise<void> {
    if (record === undefined) return;
    const parsed = parseRevocationTarget(text);
    this.selected = toHex(record.vehicleId);
    await this.run('Revoke', async (current) => {
      if (!parsed.ok) throw parsed.error;
      const outcome = await this.phone.revoke(current, parsed.value);
      return outcome.delivered
        ? `revoked: key list version ${outcome.version} is in force on ${current.name}`
        : `revoked in key list version ${outcome.version}; the car is not reachable (${outcome.reason ?? ''}), so it is queued and goes out at the next connection (any button, e.g. Status)`;
    });
  }

  private async pair(phoneName: string): Promise<void> {
    const area = this.deps.root.querySelector('#pair-area');
    if (area === null) return;
    await this.run('Pair', async () => {
      const record = await this.phone.pair(phoneName, (code) => new Promise<boolean>((resolve) => {
        const yes = h('button', { type: 'button', class: 'big', id: 'codes-match', onclick: () => { replace(area, h('p', { class: 'instruction' }, 'Now HOLD the car’s pairing button until it shows “Paired”.')); resolve(true); } }, 'Same code: confirm');
        const no = h('button', { type: 'button', id: 'codes-differ', onclick: () => { replace(area); resolve(false); } }, 'Codes differ: cancel');
        replace(area,
          h('p', {}, 'Pairing code on this phone:'),
          h('p', { class: 'code', id: 'pair-code', 'aria-label': `pairing code ${code.split('').join(' ')}` }, `${code.slice(0, 3)} ${code.slice(3)}`),
          h('p', { class: 'instruction' }, 'Does the car’s display show exactly this code? If yes, confirm, then HOLD the car’s pairing button. If not, cancel: someone may be interfering.'),
          h('div', { class: 'buttons' }, yes, no),
        );
        yes.disabled = false;
        no.disabled = false;
        yes.focus();
      }));
      this.selected = toHex(record.vehicleId);
      return `paired with ${record.name}; this phone is an owner`;
    }, true);
  }

  private async scanQr(target: HTMLTextAreaElement): Promise<void> {
    const area = this.deps.root.querySelector('#scan-area');
    if (area === null) return;
    type Detector = { detect(source: HTMLVideoElement): Promise<{ rawValue: string }[]> };
    const Ctor = (window as unknown as { BarcodeDetector: new (options: { formats: string[] }) => Detector }).BarcodeDetector;
    let stream: MediaStream | undefined;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
      const video = h('video', { autoplay: true, playsinline: true, muted: true, 'aria-label': 'camera view for the QR code' });
      video.srcObject = stream;
      replace(area, video);
      const detector = new Ctor({ formats: ['qr_code'] });
      for (let i = 0; i < 600; i++) {
        const found = (await detector.detect(video)).find((code) => code.rawValue.includes('carkey1:'));
        if (found !== undefined) {
          target.value = found.rawValue.slice(found.rawValue.indexOf('carkey1:'));
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } catch (error) {
      append(area, h('p', { role: 'alert' }, `camera: ${error instanceof Error ? error.message : String(error)}`));
    } finally {
      for (const track of stream?.getTracks() ?? []) track.stop();
      area.querySelector('video')?.remove();
    }
  }
}
