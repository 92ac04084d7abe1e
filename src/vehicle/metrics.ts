/**
 * carkeyd's Prometheus metrics (prom-client, on a private registry so several
 * daemons in one test process never share counters).
 *
 * Guarantees: label values come from closed sets (results, deny reasons,
 * commands, error codes of the catalog, boundary names in the code), so an
 * attacker cannot blow up cardinality.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'carkeyd_' });
  }
}
