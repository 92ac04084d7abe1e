/**
 * The web app's cloud features in Debian's Chromium, against real processes:
 * carkey-cloud serve (SQLite, fault switch on), carkeyd syncing with it, the
 * sim radio and the body-controller sim (test/integration/chaos-rig.ts, which
 * also pairs an owner through the `carkey` CLI), with the app served by
 * `startWebServer` (`carkey web --radio`) on another origin than the cloud
 * (so the cloud's CORS headers and the app's CSP are exercised too).
 *
 * One story in order: the page makes a passphrase key and sets the cloud →
 * the CLI owner shares a key via the cloud → the page's inbox opens it, the
 * page accepts it and unlocks over Bluetooth → the page sends remote
 * commands (lock, enabled in the car's cloud.remote config: the car locks;
 * unlock, not enabled: the car's refusal is shown) → the page pairs
 * as a second owner (keycard + button), registers the car with the cloud
 * and verifies the audit log read from the cloud → with the cloud hanging
 * (fault switch) a Bluetooth unlock completes while a cloud request is still
 * waiting, and the cloud request then fails with CK_CLOUD_TIMEOUT; with the
 * cloud URL at a dead port, Bluetooth still unlocks.
 *
 * Screenshots go to the rig's directory, or to $CARKEY_SCREENSHOTS (for
 * docs/app.md: CARKEY_SCREENSHOTS=docs/img).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DIST, hardwareCtl } from '../../firmware-sim/rig.js';
import { startWebServer, type RunningWebServer } from '../../src/web/server/serve.js';
import { startCloudCar, type CloudCar } from '../integration/chaos-rig.js';
import { act, launchChromium, newPhone, openApp, screenshotPath } from './browser.js';

const PASSPHRASE = 'correct horse battery';

let car: CloudCar;
let server: RunningWebServer;
let browser: Browser;
let phone: BrowserContext;
let page: Page;

async function locks(): Promise<string[]> {
  const out = await hardwareCtl(car.rig, 'state', '--json');
  return Object.values((JSON.parse(out.stdout) as { locks: Record<string, string> }).locks);
}

async function display(): Promise<string> {
  const out = await hardwareCtl(car.rig, 'state', '--json');
  return (JSON.parse(out.stdout) as { display: string[] }).display.join(' ');
}

async function waitForDisplay(text: string): Promise<string> {
  for (let i = 0; i < 150; i++) {
    const shown = await display();
    if (shown.includes(text)) return shown;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`display never showed "${text}"`);
}

/** A Bluetooth action's result, shown whole when it is not "done". */
function expectDone(result: string, label: string): void {
  expect(result, result).toContain(`${label}: done`);
}

/** Click a cloud button and wait for the cloud section's own result. */
async function cloudAct(button: string, timeoutMs = 30_000): Promise<string> {
  await page.click(button);
  await page.locator('#cloud-result', { hasText: /: (done|failed)/ }).waitFor({ timeout: timeoutMs });
  return page.locator('#cloud-result').innerText();
}

describe('web app with carkey-cloud, in Chromium, against carkeyd and carkey-cloud', () => {
  beforeAll(async () => {
    // Remote lock and status on, explicitly (the defaults too), unlock off. The relay bound is raised: the
    // page's path to the car has the radio bridge's HTTP hops, and on a loaded 2-core machine challenge→request
    // exceeds carkeyd's 500 ms (a "proximity" denial); the bound itself is tested in test/core/authorize.test.ts.
    car = await startCloudCar({ carConfig: { relayBoundMs: 3000, cloud: { remote: { lock: true, status: true, unlock: false } } } });
    server = await startWebServer({ port: 0, radio: car.rig.radio, root: join(DIST, 'web') });
    browser = await launchChromium();
    phone = await newPhone(browser);
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await car?.stop();
  });

  it('carkey-cloud serves the same app at /app/ (same origin: no CORS needed), offline-capable from there too', async () => {
    const context = await newPhone(browser);
    try {
      const fromCloud = await openApp(context, `${car.cloudUrl}/app`);
      expect(new URL(fromCloud.url()).pathname).toBe('/app/');
      expect(await fromCloud.evaluate('navigator.serviceWorker.ready.then((r) => new URL(r.scope).pathname)')).toBe('/app/');
      await fromCloud.click('#create-key');
      await fromCloud.waitForSelector('#my-key-id');
      await fromCloud.fill('#cloud-url', car.cloudUrl);
      await fromCloud.click('#cloud-use');
      await fromCloud.click('#cloud-check');
      await fromCloud.locator('#cloud-result', { hasText: /Check: (done|failed)/ }).waitFor({ timeout: 30_000 });
      expect(await fromCloud.locator('#cloud-result').innerText()).toContain('answers');
      // A device-bound key signs (check, audit, register) but cannot open what is sealed to it.
      expect(await fromCloud.locator('#cloud-seed-note').innerText()).toContain('needs a passphrase key');
      expect(await fromCloud.locator('#cloud-inbox').isDisabled()).toBe(true);
    } finally {
      await context.close();
    }
  });

  it('makes a passphrase key and sets the cloud (normalised, checked with a signed request)', async () => {
    page = await openApp(phone, server.url);
    await page.check('input[name=protection][value=passphrase]');
    await page.fill('#new-passphrase', PASSPHRASE);
    await page.fill('#new-passphrase-again', PASSPHRASE);
    await page.click('#create-key');
    await page.waitForSelector('#my-key-id');
    expect(await page.locator('#protection').innerText()).toContain('Passphrase key');
    expect(await page.locator('#cloud-state').innerText()).toContain('No cloud set');
    await page.selectOption('#radio', 'sim');
    await page.fill('#cloud-url', `${car.cloudUrl}/`);
    expect(await cloudAct('#cloud-use')).toContain(`cloud set to ${car.cloudUrl}`);
    expect(await page.locator('#cloud-state').innerText()).toBe(`Cloud: ${car.cloudUrl}`);
    expect(await cloudAct('#cloud-check')).toMatch(/Check: done\n.*answers \(\d+ ms\)/);
  });

  it('the CLI owner shares through the cloud; the inbox opens it, the page accepts it and unlocks over Bluetooth', async () => {
    const publicKey = await page.locator('#my-public-key').innerText();
    const shared = await car.carkey('owner', ['share', '--role', 'guest', '--until', '+1d', '--to', publicKey, '--via-cloud']);
    expect(shared.code, shared.stderr).toBe(0);
    expect(await cloudAct('#cloud-inbox')).toContain('1 item, 1 usable');
    await page.locator('#cloud').screenshot({ path: screenshotPath(car.rig.dir, 'app-inbox.png') });
    const item = page.locator('#inbox li');
    expect(await item.innerText()).toMatch(/Test Car, guest \(unlock, lock, start, status/);
    expect(await cloudAct('#inbox [id^=inbox-accept-]')).toContain('stored a guest key for "Test Car"');
    expect(await page.locator('#inbox li').count()).toBe(0);
    expect(await page.locator('#car-title').innerText()).toBe('Test Car');
    await page.selectOption('#radio', 'sim');
    expectDone(await act(page, '#do-unlock'), 'Unlock');
    expect(await locks()).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    // Acknowledged: the mailbox is empty now.
    expect(await cloudAct('#cloud-inbox')).toContain('the cloud mailbox is empty');
  }, 60_000);

  it('sends remote commands: lock (enabled in the car config) is carried out and answered by the car; unlock (not enabled) is refused with its reason', async () => {
    await page.selectOption('#remote-command', 'lock');
    const locked = await cloudAct('#do-remote', 60_000);
    expect(locked).toContain('Remote: done');
    expect(locked).toMatch(/locked Test Car through the cloud \(the car answered at \d{4}-/);
    expect(await locks()).toEqual(['locked', 'locked', 'locked', 'locked']);
    await page.selectOption('#remote-command', 'status');
    expect(await cloudAct('#do-remote', 60_000)).toContain('doors: 4/4 doors locked');
    await page.selectOption('#remote-command', 'unlock');
    const refused = await cloudAct('#do-remote', 60_000);
    expect(refused).toContain('Remote: failed');
    expect(refused).toContain('unlock: not-permitted');
    expect(refused).toContain("carkeyd's cloud.remote setting");
    expect(refused).toContain('[CK_DENIED]');
    expect(await locks()).toEqual(['locked', 'locked', 'locked', 'locked']);
    await page.locator('#cloud').screenshot({ path: screenshotPath(car.rig.dir, 'app-cloud.png') });
  }, 120_000);

  it('pairs as a second owner, registers the car with the cloud and verifies the audit log read from the cloud', async () => {
    await hardwareCtl(car.rig, 'tap-keycard', 'card-1');
    await hardwareCtl(car.rig, 'press-button');
    await page.selectOption('#radio', 'sim');
    await page.click('#do-pair');
    await page.waitForSelector('#pair-code', { timeout: 20_000 });
    const shown = (await page.locator('#pair-code').innerText()).replace(/\s/g, '');
    expect(await waitForDisplay('Pairing code')).toContain(shown);
    await page.click('#codes-match');
    await waitForDisplay('Hold button');
    expect((await hardwareCtl(car.rig, 'long-press')).code).toBe(0);
    await page.locator('#result', { hasText: /Pair: (done|failed)/ }).waitFor({ timeout: 30_000 });
    expect(await page.locator('#result').innerText()).toContain('this phone is an owner');
    await page.selectOption('#radio', 'sim');
    expect(await cloudAct('#cloud-register')).toMatch(/registered Test Car: the cloud follows key list version \d+/);
    // The car uploads its audit log every second (rig config); read until the pairing is in it.
    for (let i = 0; i < 20; i++) {
      if ((await cloudAct('#cloud-audit')).includes('audit chain verified')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(await page.locator('#cloud-audit-verdict').innerText()).toMatch(/^audit chain verified against the car key: \d+ entries, \d+ signed checkpoints/);
    expect(await page.locator('#cloud-audit-out ol').innerText()).toContain('unlock');
    // The same verdict text as the log read over Bluetooth.
    expectDone(await act(page, '#do-audit', 60_000), 'Audit');
    expect(await page.locator('#audit-verdict').innerText()).toMatch(/^audit chain verified against the car key: /);
  }, 120_000);

  it('with the cloud hanging, a Bluetooth unlock completes while a cloud request is still waiting', async () => {
    await car.setFault('*', 'hang');
    try {
      await page.click('#cloud-inbox');
      await page.locator('#cloud-progress', { hasText: 'mailbox' }).waitFor();
      await page.selectOption('#radio', 'sim');
      expectDone(await act(page, '#do-unlock'), 'Unlock');
      // The cloud request has not been answered: Bluetooth did not wait for it.
      expect(await page.locator('#cloud-result').innerText()).toBe('');
      expect(await page.locator('#cloud-progress').innerText()).toContain('reading the cloud mailbox');
      expect(await locks()).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
      await page.locator('#cloud-result', { hasText: /: (done|failed)/ }).waitFor({ timeout: 30_000 });
      expect(await page.locator('#cloud-result').innerText()).toContain('[CK_CLOUD_TIMEOUT]');
    } finally {
      await car.setFault('*', 'off');
    }
  }, 60_000);

  it('with the cloud URL at a dead port, the cloud says it is unreachable and Bluetooth still locks', async () => {
    await page.fill('#cloud-url', 'http://127.0.0.1:9');
    await cloudAct('#cloud-use');
    expect(await cloudAct('#cloud-inbox')).toContain('[CK_CLOUD_UNAVAILABLE]');
    await page.selectOption('#radio', 'sim');
    expectDone(await act(page, '#do-lock'), 'Lock');
    expect(await locks()).toEqual(['locked', 'locked', 'locked', 'locked']);
  }, 60_000);
});
