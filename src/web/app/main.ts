/**
 * Entry point of the carkey web app: the browser crypto (core's strict
 * policy over tweetnacl; the phone's identity signs through WebCrypto when it
 * is device-bound), the IndexedDB store, the service worker for offline use,
 * and the UI.
 */
import { tweetnaclBackend } from '../../core/crypto/tweetnacl-backend.js';
import { Crypto } from '../../core/crypto/policy.js';
import { toCarkeyError } from '../../core/errors.js';
import { radioBridgeAvailable } from './sim-bluetooth.js';
import { WebStore } from './store.js';
import { App } from './ui.js';

const random = (length: number): Uint8Array => crypto.getRandomValues(new Uint8Array(length));

async function boot(): Promise<void> {
  const root = document.getElementById('app');
  if (root === null) return;
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('./sw.js', { scope: './' }).catch(() => undefined);
  }
  try {
    const core = new Crypto(tweetnaclBackend);
    const store = await WebStore.open(core);
    const radioBridge = await radioBridgeAvailable();
    await new App({ crypto: core, store, root, radioBridge, random }).start();
    root.setAttribute('data-ready', 'true');
  } catch (error) {
    const failure = toCarkeyError(error);
    root.textContent = `carkey cannot start: ${failure.message} [${failure.code}]`;
    root.setAttribute('data-ready', 'error');
  }
}

void boot();
