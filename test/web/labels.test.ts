/**
 * Grant labels in the web app (issue 9): a share that carries the sharer's
 * label (format 2), accepted in the page, is listed with "label from the
 * sharer"; one without a label (format 1, as before labels) is listed without.
 */
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

describe('web app: grant labels', () => {
  beforeAll(async () => {
    server = await startWebServer({ port: 0, root: join(DIST, 'web') });
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows the label a sharer sent next to the held key, and nothing for a share without one', async () => {
    const page = await openApp(await newPhone(browser), server.url);
    await page.click('#create-key');
    await page.waitForSelector('#my-public-key');
    const subject = fromHex(await page.locator('#my-public-key').innerText()) ?? new Uint8Array(32);
    const carKey = crypto.publicKeyFromSeed(new Uint8Array(32).fill(7));
    const owner = new Uint8Array(32).fill(8);
    const share = (serial: number, sharerLabel?: string): string => {
      const grant = signGrant(crypto, owner, { vehicleId: vehicleIdOf(crypto, carKey), serial: new Uint8Array(8).fill(serial), subject, role: 'guest', permissions: Permission.unlock, notBefore: Date.now(), notAfter: Date.now() + 3600_000 });
      return encodeShare({ grant, carIdentityKey: carKey, advSecret: new Uint8Array(32).fill(5), vehicleName: 'Label Car', sharerLabel });
    };
    await page.fill('#share-text', share(1, 'Sam, weekend'));
    expect(await act(page, '#do-accept')).toContain('stored a guest key for "Label Car"');
    await page.fill('#share-text', share(2));
    expect(await act(page, '#do-accept')).toContain('stored a guest key for "Label Car"');
    const held = (await page.locator('article.vehicle li').allInnerTexts()).filter((text) => text.startsWith('held:'));
    expect(held).toHaveLength(2);
    expect(held.filter((text) => text.endsWith('(label from the sharer: "Sam, weekend")'))).toHaveLength(1);
    expect(held.filter((text) => !text.includes('label'))).toHaveLength(1);
  }, 60_000);
});
