/**
 * carkeyd's Prometheus metrics (prom-client, on a private registry so several
 * daemons in one test process never share counters).
 *
 * Guarantees: label values come from closed sets (results, deny reasons,
 * commands, error codes of the catalog, boundary names in the code), so an
 * attacker cannot blow up cardinality. One prefix, `carkey_`, for every
 * metric (the process and Node defaults too). The state gauges (paired,
 * key-list version, body-controller link, audit size, last audit error) are
 * read from the daemon at scrape time (`observe`), so they cannot go stale.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { carkeyVersion } from '../common/version.js';

/** What the state gauges read at each scrape. */
export interface DaemonStateSource {
  readonly paired: () => boolean;
  readonly keyListVersion: () => number;
  readonly hardwareUp: () => boolean;
  readonly auditEntries: () => number;
  /** ms since the epoch of the last failed audit append (undefined: none since start) */
  readonly auditLastErrorAt: () => number | undefined;
}

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly decisions = new Counter({
    name: 'carkey_decisions_total',
    help: 'Access decisions by result, reason and command',
    labelNames: ['result', 'reason', 'command'] as const,
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'carkey_refusals_total',
    help: 'Sessions ended with the generic refusal, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly unlockLatency = new Histogram({
    name: 'carkey_decision_seconds',
    help: 'Time from REQUEST received to RESULT sent (decision + actuation)',
    labelNames: ['command'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [this.registry],
  });
  readonly responseTime = new Histogram({
    name: 'carkey_challenge_response_seconds',
    help: 'Challenge→request time measured for the relay bound',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'carkey_connections',
    help: 'Open BLE links by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly connectionsTotal = new Counter({
    name: 'carkey_connections_total',
    help: 'Links accepted, evicted, refused (slots full) or dropped (idle, rate, credential no longer valid, replaced by a newer link of the same key)',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  readonly auditFailures = new Counter({
    name: 'carkey_audit_failures_total',
    help: 'Audit appends that failed (disk full, read-only, I/O) by error code; the decision went ahead',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly auditDegraded = new Gauge({
    name: 'carkey_audit_degraded',
    help: '1 while the last audit append failed (until one succeeds), else 0',
    registers: [this.registry],
  });
  readonly auditPruned = new Counter({
    name: 'carkey_audit_pruned_entries_total',
    help: 'Oldest audit entries deleted to keep the log within auditMaxEntries',
    registers: [this.registry],
  });
  readonly callbackFailures = new Counter({
    name: 'carkey_callback_failures_total',
    help: 'Timer, event and callback bodies that threw and were contained, by boundary',
    labelNames: ['where'] as const,
    registers: [this.registry],
  });

  readonly buildInfo = new Gauge({
    name: 'carkey_build_info',
    help: 'Always 1; the labels say which carkeyd runs',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry],
  });
  #source: DaemonStateSource | undefined;
  readonly paired = this.stateGauge('carkey_paired', '1 when the car has a key list (an owner paired), else 0', (s) => (s.paired() ? 1 : 0));
  readonly keyListVersion = this.stateGauge('carkey_key_list_version', 'Version of the key list in force (0 before pairing)', (s) => s.keyListVersion());
  readonly hardwareUp = this.stateGauge('carkey_body_controller_up', '1 while the link to the body controller is up, else 0', (s) => (s.hardwareUp() ? 1 : 0));
  readonly auditEntries = this.stateGauge('carkey_audit_entries', 'Audit entries kept on disk (pruned to auditMaxEntries)', (s) => s.auditEntries());
  readonly auditLastError = this.stateGauge('carkey_audit_last_error_timestamp_seconds', 'Unix time of the last failed audit append, 0 when none since start', (s) => (s.auditLastErrorAt() ?? 0) / 1000);

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'carkey_' });
    this.buildInfo.set({ version: carkeyVersion(), node: process.versions.node }, 1);
  }

  /** Read the state gauges from `source` at every scrape from now on. */
  observe(source: DaemonStateSource): void {
    this.#source = source;
  }

  private stateGauge(name: string, help: string, read: (source: DaemonStateSource) => number): Gauge {
    const current = (): DaemonStateSource | undefined => this.#source;
    return new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        const source = current();
        if (source !== undefined) this.set(read(source));
      },
    });
  }
}
