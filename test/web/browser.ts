/**
 * Test helper: Debian's Chromium (never a downloaded browser) driven by
 * playwright-core, headless. `chromium.launch` starts it with a fresh
 * temporary profile (its own --user-data-dir) and each `newContext` is an
 * isolated phone (own IndexedDB, service workers, storage).
 */
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A phone: an isolated context at 360 px width. */
export function newPhone(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 360, height: 780 }, acceptDownloads: true });
}

/** Open the app and wait until it has started. */
export async function openApp(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector('#app[data-ready="true"]');
  return page;
}

/** Click an action button and wait for its result text. */
export async function act(page: Page, button: string, timeoutMs = 30_000): Promise<string> {
  await page.click(button);
  await page.locator('#result', { hasText: /: (done|failed)/ }).waitFor({ timeout: timeoutMs });
  return page.locator('#result').innerText();
}

/** Where a test's screenshot goes: $CARKEY_SCREENSHOTS (docs/img when refreshing docs/app.md), else `fallbackDir`. */
export function screenshotPath(fallbackDir: string, name: string): string {
  const dir = process.env.CARKEY_SCREENSHOTS;
  return join(dir === undefined || dir === '' ? fallbackDir : dir, name);
}
