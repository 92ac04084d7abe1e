/**
 * Which carkey-cloud this phone talks to: `--cloud URL`, else $CARKEY_CLOUD,
 * else the default stored in the key store home by `carkey cloud use URL`
 * (HOME/cloud.json, mode 0600: `{"format":1,"url":"https://…"}`).
 *
 * Guarantees:
 * - The file is written atomically (private-files.ts: temp + fsync + rename
 *   + directory fsync) and read with the key store's checks (private, capped,
 *   no symlinks); a damaged file is CK_PHONE_STORE_CORRUPT naming it.
 * - A URL is accepted only when it parses as http:// or https:// with no
 *   query, fragment or credentials (CK_USAGE otherwise), so nothing secret
 *   ends up in a config file or a log line.
 * - No cloud configured is CK_USAGE with `details.missing = "cloud"` (the CLI
 *   turns it into a hint naming the three ways to configure one).
 * - Nothing here touches the network.
 */
import { join } from 'node:path';
import { CarkeyError } from '../../core/errors.js';
import { checkPrivateDirIfPresent, ensurePrivateDir, readPrivateJson, removeFile, writeFileAtomic } from '../private-files.js';

export const CLOUD_CONFIG_FORMAT = 1;
export const CLOUD_CONFIG_FILE = 'cloud.json';
const MAX_CLOUD_CONFIG_BYTES = 4096;
const MAX_URL_LENGTH = 1024;

export type CloudSource = 'flag' | 'env' | 'config';

export interface CloudChoice {
  readonly url: string;
  readonly source: CloudSource;
}

export function cloudConfigPath(home: string): string {
  return join(home, CLOUD_CONFIG_FILE);
}

/** Normalise and check a cloud URL (CK_USAGE with the reason when it is not usable). */
export function checkCloudUrl(text: string, what = 'cloud URL'): string {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.length > MAX_URL_LENGTH) throw new CarkeyError('CK_USAGE', `${what} must be an http:// or https:// URL`);
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new CarkeyError('CK_USAGE', `${what} ${JSON.stringify(trimmed)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CarkeyError('CK_USAGE', `${what} must be http:// or https://, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw new CarkeyError('CK_USAGE', `${what} must not contain a user name or password (carkey-cloud authenticates by signatures)`);
  if (url.search !== '' || url.hash !== '') throw new CarkeyError('CK_USAGE', `${what} must not have a query or fragment`);
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/** The stored default, or undefined when none was stored. */
export function readStoredCloud(home: string): string | undefined {
  const file = readPrivateJson(home, cloudConfigPath(home), MAX_CLOUD_CONFIG_BYTES, CLOUD_CONFIG_FORMAT);
  if (file === undefined) return undefined;
  const { json, corrupt } = file;
  if (typeof json.url !== 'string') throw corrupt('url must be a string');
  try {
    return checkCloudUrl(json.url);
  } catch (error) {
    throw corrupt(error instanceof CarkeyError ? error.message : 'bad url');
  }
}

/** Store `url` as this key store's default cloud (atomic, 0600). Returns the normalised URL. */
export function storeCloud(home: string, url: string): string {
  const checked = checkCloudUrl(url);
  ensurePrivateDir(home);
  writeFileAtomic(cloudConfigPath(home), new TextEncoder().encode(`${JSON.stringify({ format: CLOUD_CONFIG_FORMAT, url: checked }, null, 2)}\n`));
  return checked;
}

/** Forget the stored default (no-op when there is none). */
export function clearStoredCloud(home: string): void {
  if (!checkPrivateDirIfPresent(home)) return;
  removeFile(cloudConfigPath(home));
}

/** The cloud to use, or undefined when none is configured anywhere. */
export function findCloud(flag: string | undefined, env: Readonly<Record<string, string | undefined>>, home: string): CloudChoice | undefined {
  if (flag !== undefined && flag !== '') return { url: checkCloudUrl(flag, '--cloud'), source: 'flag' };
  const fromEnv = env.CARKEY_CLOUD;
  if (fromEnv !== undefined && fromEnv !== '') return { url: checkCloudUrl(fromEnv, 'CARKEY_CLOUD'), source: 'env' };
  const stored = readStoredCloud(home);
  return stored === undefined ? undefined : { url: stored, source: 'config' };
}

/** Like findCloud, but no cloud is CK_USAGE (details.missing = "cloud"). */
export function requireCloud(flag: string | undefined, env: Readonly<Record<string, string | undefined>>, home: string): CloudChoice {
  const found = findCloud(flag, env, home);
  if (found === undefined) throw new CarkeyError('CK_USAGE', 'no cloud is configured', { missing: 'cloud' });
  return found;
}
