/**
 * The sync worker's Prometheus metrics, on carkeyd's registry, with the same
 * `carkey_` prefix as src/vehicle/metrics.ts (`carkey_sync_*`).
 *
 * Guarantees: label values come from closed sets (operation names, outcome
 * kinds, catalog error codes), so a cloud cannot grow cardinality; gauges
 * are read from the worker at scrape time by a callback that never throws.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export interface SyncGaugeSource {
  outbox(): number;
  auditBacklog(): number;
  /** 0 closed, 1 half-open, 2 open */
  circuit(): number;
  /** seconds since the epoch of the last answered request (0: none yet) */
  lastSuccess(): number;
}

function safely(read: () => number): number {
  try {
    const value = read();
    return Number.isFinite(value) ? value : 0;
  } catch {
    return 0;
  }
}

export class SyncMetrics {
  readonly requests: Counter<'op' | 'result'>;
  readonly keyLists: Counter<'outcome' | 'reason'>;
  readonly commands: Counter<'outcome' | 'command'>;
  readonly resultsDelivered: Counter;

  private readonly names: string[] = [];

  constructor(private readonly registry: Registry | undefined, source: SyncGaugeSource) {
    const registers = registry === undefined ? [] : [registry];
    this.requests = new Counter({ name: 'carkey_sync_requests_total', help: 'Requests to carkey-cloud by operation and result (ok or the error code)', labelNames: ['op', 'result'] as const, registers });
    this.keyLists = new Counter({ name: 'carkey_sync_key_lists_total', help: 'Key lists received from the cloud: installed, unchanged, refused (with the core code) or failed to store', labelNames: ['outcome', 'reason'] as const, registers });
    this.commands = new Counter({ name: 'carkey_sync_remote_commands_total', help: 'Remote commands by outcome', labelNames: ['outcome', 'command'] as const, registers });
    this.resultsDelivered = new Counter({ name: 'carkey_sync_results_delivered_total', help: 'Car-signed remote results the cloud acknowledged', registers });
    new Gauge({ name: 'carkey_sync_outbox_entries', help: 'Remote results waiting in sync.db for delivery', registers, collect() { this.set(safely(() => source.outbox())); } });
    new Gauge({ name: 'carkey_sync_audit_backlog_entries', help: 'Audit entries not yet acknowledged by the cloud', registers, collect() { this.set(safely(() => source.auditBacklog())); } });
    new Gauge({ name: 'carkey_sync_circuit_state', help: 'Cloud circuit breaker: 0 closed, 1 half-open, 2 open', registers, collect() { this.set(safely(() => source.circuit())); } });
    new Gauge({ name: 'carkey_sync_last_success_seconds', help: 'Time of the last request the cloud answered (s since the epoch; 0 none)', registers, collect() { this.set(safely(() => source.lastSuccess())); } });
    this.names.push('carkey_sync_requests_total', 'carkey_sync_key_lists_total', 'carkey_sync_remote_commands_total', 'carkey_sync_results_delivered_total', 'carkey_sync_outbox_entries', 'carkey_sync_audit_backlog_entries', 'carkey_sync_circuit_state', 'carkey_sync_last_success_seconds');
  }

  /** Take these metrics off the registry (a stopped worker; a new one may register them again). */
  unregister(): void {
    for (const name of this.names) this.registry?.removeSingleMetric(name);
  }
}
