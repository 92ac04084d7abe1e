/**
 * carkeyd's Prometheus metrics (prom-client, on a private registry so several
 * daemons in one test process never share counters).
 *
 * Guarantees: label values come from closed sets (results, deny reasons,
 * commands), so an attacker cannot blow up cardinality.
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
    help: 'Links accepted, evicted, refused (slots full) or dropped (idle, rate)',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'carkeyd_' });
  }
}
