/**
 * Control client of the simulated radio: change link profiles and radio
 * settings, drop links, read the broker's clock and status. Used by tests,
 * scripts and the CLI to script fault scenarios at run time.
 *
 * Guarantees: each call is one request on a fresh or given control
 * connection and settles with the broker's answer or its error (invalid
 * settings → CK_TRANSPORT_RADIO_PROTOCOL / CK_CONFIG_INVALID naming the field;
 * no broker → CK_TRANSPORT_RADIO_UNAVAILABLE naming the socket). The one-shot
 * helpers always close their connection.
 */

import { CarkeyError } from '../core/errors.js';
import { SimConnection } from './sim-connection.js';
import { warnHandlerError } from './sim-events.js';
import type { LinkSelector, RadioStatus } from './sim-protocol.js';
import type { LinkProfilePatch, LinkProfileSettings, RadioSettings, RadioSettingsPatch } from './sim-profile.js';

export type { LinkProfilePatch, LinkProfileSettings, RadioSettings, RadioSettingsPatch } from './sim-profile.js';
export type { LinkSelector, RadioStatus } from './sim-protocol.js';

/** Which links (by peripheral and/or central name; absent = all) and what to change. */
export type LinkProfileChange = LinkSelector & LinkProfilePatch;

export interface DropOptions extends LinkSelector {
  /** Go silent this long from now (default 0); link-lost follows after the supervision timeout. */
  readonly afterMs?: number;
}

function missing(field: string): CarkeyError {
  return new CarkeyError('CK_TRANSPORT_RADIO_PROTOCOL', `broker reply lacks "${field}"`);
}

export class RadioControl {
  private readonly connection: SimConnection;

  private constructor(connection: SimConnection) {
    this.connection = connection;
  }

  static async open(socketPath: string): Promise<RadioControl> {
    return new RadioControl(await SimConnection.open(socketPath, { role: 'control' }, warnHandlerError));
  }

  /** Merge settings into the profile of the selected pair; returns the profile that selector now resolves to. */
  async setLinkProfile(change: LinkProfileChange): Promise<LinkProfileSettings> {
    const { peripheral, central, ...profile } = change;
    const result = await this.connection.request({ op: 'set-profile', peripheral, central, profile });
    if (result.profile === undefined) throw missing('profile');
    return result.profile;
  }

  async setRadio(radio: RadioSettingsPatch): Promise<RadioSettings> {
    const result = await this.connection.request({ op: 'set-radio', radio });
    if (result.radio === undefined) throw missing('radio');
    return result.radio;
  }

  /** Drop matching open links (they go silent; both ends see 'link-lost'). Returns how many. */
  async dropLinks(options: DropOptions = {}): Promise<number> {
    const result = await this.connection.request({ op: 'drop', peripheral: options.peripheral, central: options.central, afterMs: options.afterMs ?? 0 });
    if (result.links === undefined) throw missing('links');
    return result.links;
  }

  /** The broker's clock (ms since it started). */
  async time(): Promise<number> {
    const result = await this.connection.request({ op: 'time' });
    if (result.now === undefined) throw missing('now');
    return result.now;
  }

  async status(): Promise<RadioStatus> {
    const result = await this.connection.request({ op: 'status' });
    if (result.status === undefined) throw missing('status');
    return result.status;
  }

  close(): void {
    this.connection.close();
  }
}

async function once<T>(socketPath: string, action: (control: RadioControl) => Promise<T>): Promise<T> {
  const control = await RadioControl.open(socketPath);
  try {
    return await action(control);
  } finally {
    control.close();
  }
}

/** One-shot: change the link profile of a (peripheral, central) pair, a peripheral, a central, or the defaults. */
export function setLinkProfile(socketPath: string, change: LinkProfileChange): Promise<LinkProfileSettings> {
  return once(socketPath, (control) => control.setLinkProfile(change));
}

export function setRadioSettings(socketPath: string, radio: RadioSettingsPatch): Promise<RadioSettings> {
  return once(socketPath, (control) => control.setRadio(radio));
}

export function dropLinks(socketPath: string, options: DropOptions = {}): Promise<number> {
  return once(socketPath, (control) => control.dropLinks(options));
}

export function radioTime(socketPath: string): Promise<number> {
  return once(socketPath, (control) => control.time());
}

export function radioStatus(socketPath: string): Promise<RadioStatus> {
  return once(socketPath, (control) => control.status());
}
