/**
 * The app's own Web Bluetooth adapter on Chromium's real `navigator.bluetooth`,
 * with the OS Bluetooth stack emulated by DevTools (CDP BluetoothEmulation on
 * the browser session, the device chooser answered through DeviceAccess on
 * the page session; Linux Chromium needs --enable-experimental-web-platform-features
 * for `navigator.bluetooth`). It covers the step CDP emulation can carry: scanning
 * and the chooser. The car's advertisement (carkey's service UUID) is
 * offered to the person, another device's (a heart-rate sensor) is not —
 * the app's requestDevice filter at work — and once the car is chosen the
 * app goes on to connect to it. GATT is not emulated here: the emulation
 * has no way for a peripheral to send a notification, so the protocol
 * itself runs in test/web/e2e.test.ts and cloud.test.ts over the radio bridge.
 *
 * Chromium 156 needs a complete scan record (name, uuids, appearance,
 * txPower, manufacturerData): with only name and uuids the browser process
 * rejects the mojo message (VALIDATION_ERROR_UNEXPECTED_NULL_POINTER in
 * bluetooth.mojom.FakeCentral) and exits — the "crash at requestDevice" seen
 * before.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, CDPSession } from 'playwright-core';
import { DIST } from '../../firmware-sim/rig.js';
import { GATT } from '../../src/transport/types.js';
import { startWebServer, type RunningWebServer } from '../../src/web/server/serve.js';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, newPhone, openApp } from './browser.js';

const CAR = '0C:A5:00:00:00:01';
const OTHER = '0C:A5:00:00:00:02';
const HEART_RATE = '0000180d-0000-1000-8000-00805f9b34fb';

let server: RunningWebServer;
let browser: Browser;

interface Prompt {
  readonly id: string;
  readonly devices: readonly { readonly id: string; readonly name: string }[];
}

function advertise(emulation: CDPSession, address: string, uuid: string, name: string): Promise<unknown> {
  return emulation.send('BluetoothEmulation.simulateAdvertisement', {
    entry: { deviceAddress: address, rssi: -50, scanRecord: { name, uuids: [uuid], appearance: 0, txPower: 0, manufacturerData: [] } },
  });
}

describe('Web Bluetooth on Chromium with CDP BluetoothEmulation (scan and chooser)', () => {
  beforeAll(async () => {
    server = await startWebServer({ port: 0, root: join(DIST, 'web') });
    // Linux Chromium ships Web Bluetooth behind this switch ("experimental on this platform").
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, '--enable-experimental-web-platform-features'] });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("offers the car's advertisement and not another device's; choosing it, the app connects to it", async () => {
    const context = await newPhone(browser);
    const page = await openApp(context, server.url);
    await page.click('#create-key');
    await page.waitForSelector('#my-key-id');
    expect(await page.locator('#radio').inputValue()).toBe('bluetooth');

    const emulation = await browser.newBrowserCDPSession();
    await emulation.send('BluetoothEmulation.enable', { state: 'powered-on', leSupported: true });
    expect(await page.evaluate('navigator.bluetooth.getAvailability()')).toBe(true);
    const session = await context.newCDPSession(page);
    await session.send('DeviceAccess.enable');
    const offered = new Set<string>();
    let chosen = false;
    const chooser = new Promise<void>((resolve, reject) => {
      session.on('DeviceAccess.deviceRequestPrompted', (event: Prompt) => {
        for (const device of event.devices) offered.add(device.id);
        if (chosen || !event.devices.some((device) => device.id === CAR)) return;
        chosen = true;
        session.send('DeviceAccess.selectPrompt', { id: event.id, deviceId: CAR }).then(() => resolve(), reject);
      });
    });
    await advertise(emulation, OTHER, HEART_RATE, 'Heart rate');
    await page.click('#do-pair');
    await page.locator('#progress', { hasText: 'choose your car' }).waitFor();
    // A scan is running now: advertise while it listens (the other device too, again).
    for (let i = 0; i < 20 && !chosen; i++) {
      await advertise(emulation, OTHER, HEART_RATE, 'Heart rate');
      await advertise(emulation, CAR, GATT.service, 'Test Car');
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await chooser;
    expect([...offered]).toEqual([CAR]);
    // The adapter got the chosen device from requestDevice and goes on to connect (GATT is not emulated here).
    await page.locator('#progress', { hasText: /connecting to / }).waitFor({ timeout: 10_000 });
    expect(browser.isConnected()).toBe(true);
    await context.close();
  }, 60_000);
});
