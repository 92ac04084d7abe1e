/**
 * The app alone in Debian's Chromium: accessibility basics at 360 px, and
 * the encrypted export → import round trip of a passphrase key with a car
 * (a share made here with core, accepted in the page) into a fresh profile.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { fromHex } from '../../src/core/bytes.js';
import { signGrant } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { Permission } from '../../src/core/roles.js';
import { encodeShare } from '../../src/phone/share.js';
import { DIST } from '../../firmware-sim/rig.js';
import { startWebServer, type RunningWebServer } from '../../src/web/server/serve.js';
import { act, launchChromium, newPhone, openApp } from './browser.js';

const crypto = createCrypto('node');
let server: RunningWebServer;
let browser: Browser;

describe('web app: accessibility and export/import', () => {
  beforeAll(async () => {
    server = await startWebServer({ port: 0, root: join(DIST, 'web') });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('names every button and control, reaches the actions by keyboard, fits 360 px', async () => {
    const page = await openApp(await newPhone(browser), server.url);
    await page.keyboard.press('Tab');
    let reached = false;
    for (let i = 0; i < 10 && !reached; i++) {
      reached = (await page.evaluate('document.activeElement?.id')) === 'create-key';
      if (!reached) await page.keyboard.press('Tab');
    }
    expect(reached).toBe(true);
    await page.keyboard.press('Enter');
    await page.waitForSelector('#my-key-id');
    const unnamed = await page.evaluate<string[]>(
      "[...document.querySelectorAll('button, input, select, textarea')].filter((el) => { const name = el.getAttribute('aria-label') || (el.labels && el.labels.length > 0 ? el.labels[0].textContent : '') || (el.tagName === 'BUTTON' ? el.textContent : ''); return !name || name.trim() === ''; }).map((el) => el.outerHTML.slice(0, 80))",
    );
    expect(unnamed).toEqual([]);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      ids.push(String(await page.evaluate('document.activeElement?.id ?? ""')));
    }
    expect(ids).toEqual(expect.arrayContaining(['radio', 'do-pair', 'phone-name', 'share-text', 'do-accept']));
    expect(await page.evaluate('document.documentElement.scrollWidth <= 360')).toBe(true);
  });

  it('exports a passphrase key with its car and imports it into a fresh profile', async () => {
    const first = await openApp(await newPhone(browser), server.url);
    await first.check('input[name=protection][value=passphrase]');
    await first.fill('#new-passphrase', 'correct horse battery');
    await first.fill('#new-passphrase-again', 'correct horse battery');
    await first.click('#create-key');
    await first.waitForSelector('#my-public-key');
    const publicKey = await first.locator('#my-public-key').innerText();
    expect(await first.locator('#protection').innerText()).toContain('Passphrase key');

    const carKey = crypto.publicKeyFromSeed(new Uint8Array(32).fill(3));
    const grant = signGrant(crypto, new Uint8Array(32).fill(4), { vehicleId: vehicleIdOf(crypto, carKey), serial: new Uint8Array(8).fill(9), subject: fromHex(publicKey) ?? new Uint8Array(32), role: 'guest', permissions: Permission.unlock, notBefore: Date.now(), notAfter: Date.now() + 3600_000 });
    await first.fill('#share-text', encodeShare({ grant, carIdentityKey: carKey, advSecret: new Uint8Array(32).fill(5), vehicleName: 'Export Car' }));
    expect(await act(first, '#do-accept')).toContain('stored a guest key for "Export Car"');

    await first.fill('#export-passphrase', 'export pass 123');
    const download = first.waitForEvent('download');
    await first.click('#do-export');
    const file = await (await download).path();
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('carkey-web-export');
    expect(text).not.toContain('Export Car'); // encrypted

    const second = await openApp(await newPhone(browser), server.url);
    await second.setInputFiles('#import-file', file);
    await second.fill('#import-passphrase', 'wrong passphrase');
    await second.click('#import-key');
    await second.locator('#first-run-result', { hasText: 'CK_PHONE_BAD_PASSPHRASE' }).waitFor();
    await second.fill('#import-passphrase', 'export pass 123');
    await second.click('#import-key');
    await second.waitForSelector('#my-public-key', { timeout: 20_000 });
    expect(await second.locator('#my-public-key').innerText()).toBe(publicKey);
    expect(await second.locator('#car-title').innerText()).toBe('Export Car');
  }, 60_000);
});
