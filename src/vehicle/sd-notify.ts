/**
 * systemd notifications for carkeyd (Type=notify): READY=1 when it serves,
 * WATCHDOG=1 pings while the event loop runs, STOPPING=1 at shutdown.
 *
 * Why `systemd-notify` and not the NOTIFY_SOCKET datagram directly: Node has
 * no AF_UNIX datagram sockets, and the npm sd-notify packages are native
 * addons (a compiler on the Pi, one more ABI to rebuild on Node upgrades).
 * `systemd-notify` ships with systemd itself; since systemd 246 it waits
 * until the manager has processed the message (so the short-lived sender is
 * still attributed to the unit), and with NotifyAccess=all in the unit file
 * the manager accepts it from a child of carkeyd. `--pid` names carkeyd as
 * the main process.
 *
 * Guarantees: without NOTIFY_SOCKET everything is a no-op (no process is
 * spawned); a missing or failing systemd-notify is logged once and never
 * stops carkeyd; the watchdog timer is unref'd and runs from the event loop,
 * so a stalled loop stops the pings and systemd restarts the daemon after
 * WatchdogSec.
 */
import { spawn } from 'node:child_process';
import type { Logger } from 'pino';

export interface SdNotifier {
  /** READY=1 (and STATUS=…): carkeyd is serving (advertising). Starts the watchdog pings when systemd asked for them. */
  ready(status: string): void;
  /** STOPPING=1: a clean stop has begun. Stops the pings. */
  stopping(): void;
  /** Whether systemd is listening (NOTIFY_SOCKET set). */
  readonly enabled: boolean;
}

export interface SdNotifyOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly pid: number;
  readonly logger: Logger;
  /** runs `systemd-notify ARGS`; resolves with the exit code, rejects when it cannot start */
  readonly run?: (args: readonly string[]) => Promise<number>;
}

function runSystemdNotify(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('systemd-notify', [...args], { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code) => resolve(code ?? -1));
  });
}

/** The watchdog ping period: half of WATCHDOG_USEC (when it is for this process), else undefined. */
export function watchdogPeriodMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

export function createSdNotifier(options: SdNotifyOptions): SdNotifier {
  const enabled = options.env.NOTIFY_SOCKET !== undefined && options.env.NOTIFY_SOCKET !== '';
  const run = options.run ?? runSystemdNotify;
  let warned = false;
  let timer: NodeJS.Timeout | undefined;
  const send = (args: readonly string[]): void => {
    if (!enabled) return;
    run([`--pid=${options.pid}`, ...args]).then(
      (code) => {
        if (code !== 0 && !warned) {
          warned = true;
          options.logger.warn({ code, args }, 'systemd-notify failed (is NotifyAccess=all set in the unit?)');
        }
      },
      (error: unknown) => {
        if (warned) return;
        warned = true;
        options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'cannot run systemd-notify: readiness and watchdog pings are not sent');
      },
    );
  };
  return {
    enabled,
    ready(status) {
      send(['--ready', `--status=${status}`]);
      const period = enabled ? watchdogPeriodMs(options.env, options.pid) : undefined;
      if (period !== undefined && timer === undefined) {
        timer = setInterval(() => send(['WATCHDOG=1']), period);
        timer.unref();
        options.logger.info({ periodMs: period }, 'systemd watchdog: pinging');
      }
    },
    stopping() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      send(['STOPPING=1']);
    },
  };
}
