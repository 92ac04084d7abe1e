/**
 * The web app end to end in Debian's Chromium, against real processes: the
 * sim radio broker, the simulated body controller and carkeyd (firmware-sim
 * rig), with the app served by `startWebServer` (what `carkey web --radio`
 * runs) and its "Simulated radio" choice. The radio bridge stands in for the
 * phone's OS Bluetooth stack only: the app's Web Bluetooth adapter, framing,
 * sessions and every protocol decision run unchanged in the page (see
 * docs/app.md for what is tested against real Web Bluetooth instead).
 *
 * One story in order: first run creates a key → pairing (the code on the page
 * equals the code on the car's display; the test then holds the car's
 * button) → unlock, status (the car asks for a PIN), start with the PIN →
 * share to the CLI, which unlocks → a friend's app accepts a share by link
 * and unlocks → revocations: the CLI and the friend's app get the same
 * refusal text → audit chain verifies → offline: reload with the network
 * blocked (only the radio passes), unlock still works; server stopped, the
 * app still opens.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DIST, hardwareCtl, runCli, startDaemonProcess, startRig, stopRig, type CarRig, type CliResult } from '../../firmware-sim/rig.js';
import { startWebServer, type RunningWebServer } from '../../src/web/server/serve.js';
import { act, launchChromium, newPhone, openApp, screenshotPath } from './browser.js';

let rig: CarRig;
let server: RunningWebServer;
let browser: Browser;
let owner: BrowserContext;
let friend: BrowserContext;
let page: Page;
let friendPage: Page;

function carkey(home: string, ...args: string[]): Promise<CliResult> {
  return runCli('src/cli/carkey.js', ['--home', join(rig.dir, home), '--transport', 'sim', '--radio', rig.radio, ...args]);
}

async function hwState(): Promise<{ locks: Record<string, string>; drive: string; trunk: string; display: string[] }> {
  const out = await hardwareCtl(rig, 'state', '--json');
  return JSON.parse(out.stdout) as { locks: Record<string, string>; drive: string; trunk: string; display: string[] };
}

async function waitForDisplay(text: string): Promise<string> {
  for (let i = 0; i < 150; i++) {
    const display = (await hwState()).display.join(' ');
    if (display.includes(text)) return display;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`display never showed "${text}"`);
}

async function createKey(context: BrowserContext): Promise<Page> {
  const opened = await openApp(context, server.url);
  await opened.click('#create-key');
  await opened.waitForSelector('#my-key-id');
  await opened.selectOption('#radio', 'sim');
  return opened;
}

describe('web app in Chromium, end to end over the simulated radio', () => {
  beforeAll(async () => {
    // The relay bound is raised: the page's path to the car has the radio bridge's HTTP hops, and on a loaded
    // 2-core machine challenge→request can exceed carkeyd's 500 ms ("proximity"); the bound is tested in test/core/authorize.test.ts.
    rig = await startRig({ config: { startPin: '4711', relayBoundMs: 3000 } });
    await startDaemonProcess(rig);
    server = await startWebServer({ port: 0, radio: rig.radio, root: join(DIST, 'web') });
    browser = await launchChromium();
    owner = await newPhone(browser);
    friend = await newPhone(browser);
    expect((await carkey('cli-friend', 'keygen')).code).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await stopRig(rig);
  });

  it('first run creates a device-bound key and says so', async () => {
    page = await createKey(owner);
    expect(await page.locator('#my-key-id').innerText()).toMatch(/^[0-9a-f]{16}$/);
    expect(await page.locator('#protection').innerText()).toContain('Device-bound key');
    expect(await page.locator('#cloud-state').innerText()).toContain('No cloud set');
    expect(await page.locator('#app').innerText()).toContain('carkey unlock --walk-up');
  });

  it('pairs: the code on the page is the code on the car, then the car button is held', async () => {
    await hardwareCtl(rig, 'press-button');
    await page.click('#do-pair');
    await page.waitForSelector('#pair-code', { timeout: 20_000 });
    const shown = (await page.locator('#pair-code').innerText()).replace(/\s/g, '');
    expect(shown).toMatch(/^\d{6}$/);
    await page.locator('#pair-area').screenshot({ path: screenshotPath(rig.dir, 'app-pair.png') });
    expect(await waitForDisplay('Pairing code')).toContain(shown);
    await page.click('#codes-match');
    await waitForDisplay('Hold button');
    expect((await hardwareCtl(rig, 'long-press')).code).toBe(0);
    await page.locator('#result', { hasText: /Pair: (done|failed)/ }).waitFor({ timeout: 30_000 });
    expect(await page.locator('#result').innerText()).toContain('this phone is an owner');
    expect(await page.locator('#car-title').innerText()).toBe('Test Car');
  });

  it('unlocks, reads status (the car asks for a PIN) and starts with the PIN', async () => {
    expect(await act(page, '#do-unlock')).toContain('Unlock: done');
    expect(Object.values((await hwState()).locks)).toEqual(['unlocked', 'unlocked', 'unlocked', 'unlocked']);
    const status = await act(page, '#do-status');
    expect(status).toContain('doors: 0/4 doors locked');
    expect(status).toContain('start needs a PIN: yes');
    expect(await page.locator('#pin').isVisible()).toBe(true);
    const denied = await act(page, '#do-start');
    expect(denied).toContain('[CK_DENIED]');
    await page.fill('#pin', '4711');
    expect(await act(page, '#do-start')).toContain('Start: done');
    expect((await hwState()).drive).toBe('ready');
    expect(await act(page, '#do-lock')).toContain('Lock: done');
  });

  let cliSerial = '';
  it('shares a time-boxed key to the CLI, which unlocks with it', async () => {
    const whoami = JSON.parse((await carkey('cli-friend', 'whoami', '--json')).stdout) as { publicKey: string };
    await page.fill('#share-to', whoami.publicKey);
    expect(await act(page, '#do-share')).toContain('Share: done');
    const share = await page.locator('#share-string').innerText();
    expect(share.startsWith('carkey1:')).toBe(true);
    expect(await page.locator('svg.qr').count()).toBe(1);
    const accepted = await carkey('cli-friend', 'accept', share, '--json');
    expect(accepted.code, accepted.stderr).toBe(0);
    cliSerial = (JSON.parse(accepted.stdout) as { serial: string }).serial;
    const unlocked = await carkey('cli-friend', 'unlock');
    expect(unlocked.code, unlocked.stderr).toBe(0);
  });

  it("a friend's app accepts a share opened as a link and unlocks", async () => {
    friendPage = await createKey(friend);
    const friendKey = await friendPage.locator('#my-public-key').innerText();
    await page.fill('#share-to', friendKey);
    await act(page, '#do-share');
    const link = await page.locator('#share-link').getAttribute('href');
    expect(link).toContain('#carkey1:');
    await friendPage.goto(link ?? '');
    await friendPage.waitForSelector('#app[data-ready="true"]');
    await friendPage.selectOption('#radio', 'sim');
    expect(await friendPage.locator('#share-text').inputValue()).toMatch(/^carkey1:/);
    expect(await act(friendPage, '#do-accept')).toContain('stored a guest key');
    await friendPage.selectOption('#radio', 'sim');
    expect(await act(friendPage, '#do-unlock')).toContain('Unlock: done');
  });

  it('revokes both keys; the friend app shows the same refusal text as the CLI', async () => {
    await page.fill('#revoke-target', cliSerial);
    expect(await act(page, '#do-revoke')).toContain('is in force on Test Car');
    const friendSerial = (await page.locator('#keys').innerText()).match(/issued ([0-9a-f]{16}): guest/g)?.map((line) => line.slice(7, 23)).find((serial) => serial !== cliSerial);
    expect(friendSerial).toBeDefined();
    await page.fill('#revoke-target', friendSerial ?? '');
    expect(await act(page, '#do-revoke')).toContain('is in force on Test Car');

    const cli = await carkey('cli-friend', 'unlock');
    expect(cli.code).toBe(3);
    const cliMessage = (cli.stderr.split('\n').find((line) => line.includes('[CK_PROTO_REFUSED]')) ?? '').replace(/^carkey: /, '');
    expect(cliMessage).toContain('revoked');
    const web = await act(friendPage, '#do-unlock');
    expect(web).toContain('Unlock: failed');
    expect(web).toContain(cliMessage);
  }, 90_000);

  it('reads the audit log and verifies its chain', async () => {
    expect(await act(page, '#do-audit', 60_000)).toContain('Audit: done');
    expect(await page.locator('#audit-verdict').innerText()).toContain('audit chain verified against the car key');
  }, 90_000);

  it('works offline: reloaded with the network blocked (only the radio passes), it still unlocks', async () => {
    await page.evaluate('navigator.serviceWorker.ready.then(() => true)');
    await owner.route('**/*', (route) => (new URL(route.request().url()).pathname.startsWith('/radio') ? route.continue() : route.abort()));
    await page.reload();
    await page.waitForSelector('#app[data-ready="true"]');
    expect(await page.evaluate('navigator.serviceWorker.controller !== null')).toBe(true);
    await page.selectOption('#radio', 'sim');
    expect(await act(page, '#do-unlock')).toContain('Unlock: done');
    await owner.unroute('**/*');
  });

  it('opens with the server stopped (the service worker serves the whole app)', async () => {
    await server.close();
    await page.reload();
    await page.waitForSelector('#app[data-ready="true"]');
    expect(await page.locator('#car-title').innerText()).toBe('Test Car');
    await page.screenshot({ path: screenshotPath(rig.dir, 'app-main.png') });
  });
});
