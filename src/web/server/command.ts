/**
 * `carkey web [--port N] [--host ADDR]` (and the global `--radio SOCKET` for
 * the simulated-radio bridge): serve the web app until SIGINT/SIGTERM.
 * Prints the URL (with --json: {"ready":true,"url":…,"radio":…}).
 */
import type { Output } from '../../cli/common.js';
import { startWebServer } from './serve.js';

export interface WebCommandOptions {
  readonly port?: number;
  readonly host?: string;
}

export async function webCommand(output: Output, options: WebCommandOptions, radio: string | undefined): Promise<void> {
  const running = await startWebServer({ port: options.port ?? 8080, host: options.host ?? '127.0.0.1', ...(radio === undefined ? {} : { radio }) });
  output.result({ ready: true, url: running.url, radio: radio ?? null }, [
    `carkey web app: ${running.url}`,
    radio === undefined ? 'open it in Chrome (Android, ChromeOS or desktop); Ctrl-C stops' : `simulated radio bridge to ${radio}: choose "Simulated radio" in the app; Ctrl-C stops`,
  ]);
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await running.close();
}
