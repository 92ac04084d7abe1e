/**
 * Grant labels in the web app (issue 9): a share that carries the sharer's
 * label (format 2), accepted in the page, is listed with "label from the
 * sharer"; one without a label (format 1, as before labels) is listed without.
 * An owner's share with a label keeps it on the phone (Keys) and out of the
 * share string.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { fromHex, toHex } from '../../src/core/bytes.js';
import { signGrant } from '../../src/core/credentials.js';
import { createCrypto } from '../../src/core/crypto/index.js';
import { vehicleIdOf } from '../../src/core/identity.js';
import { Permission } from '../../src/core/roles.js';
import { decodeShare, encodeShare } from '../../src/phone/share.js';
import { serializeVehicleRecord } from '../../src/phone/vehicle-record.js';
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

  it("an owner's share with a label lists it under Keys; the share string carries none", async () => {
    const page = await openApp(await newPhone(browser), server.url);
    await page.click('#create-key');
    await page.waitForSelector('#my-public-key');
    // An owner record for a car this phone "paired" with (the key list is not needed to sign a grant).
    const carKey = crypto.publicKeyFromSeed(new Uint8Array(32).fill(11));
    const vehicleId = vehicleIdOf(crypto, carKey);
    const text = serializeVehicleRecord({ name: 'van', vehicleName: 'Label Van', carIdentityKey: carKey, vehicleId, advSecret: new Uint8Array(32).fill(6), owner: true, grants: [], issued: [], keyList: undefined, pending: [], addedAt: Date.now() });
    // In the page (the test's own types have no DOM): put the record where the app's store keeps it (docs/app.md).
    await page.evaluate(
      `new Promise((resolve, reject) => {
        const open = indexedDB.open('carkey');
        open.onerror = () => reject(new Error('open'));
        open.onsuccess = () => {
          const tx = open.result.transaction('vehicles', 'readwrite');
          tx.objectStore('vehicles').put({ format: 1, record: ${JSON.stringify(text)} }, ${JSON.stringify(toHex(vehicleId))});
          tx.oncomplete = () => { open.result.close(); resolve(undefined); };
          tx.onerror = () => reject(new Error('put'));
        };
      })`,
    );
    await page.reload();
    await page.waitForSelector('#share-label');
    const friend = crypto.publicKeyFromSeed(new Uint8Array(32).fill(12));
    await page.fill('#share-to', toHex(friend));
    await page.fill('#share-label', '  Sam, weekend ');
    expect(await act(page, '#do-share')).toMatch(/Share: done\ngrant [0-9a-f]{16}: guest/);
    const issued = (await page.locator('article.vehicle li').allInnerTexts()).filter((line) => line.startsWith('issued '));
    expect(issued).toEqual([expect.stringMatching(/^issued [0-9a-f]{16}: guest to [0-9a-f]{16} "Sam, weekend", /)]);
    const share = decodeShare(crypto, await page.locator('#share-string').innerText());
    if (!share.ok) throw share.error;
    expect(share.value.sharerLabel).toBeUndefined();

    // A label the rules refuse: nothing is signed.
    await page.fill('#share-to', toHex(friend));
    await page.fill('#share-label', 'Sam\u202eevil');
    expect(await act(page, '#do-share')).toContain('CK_PHONE_BAD_LABEL');
    expect((await page.locator('article.vehicle li').allInnerTexts()).filter((line) => line.startsWith('issued '))).toHaveLength(1);
  }, 60_000);
});
