/**
 * carkey-cloud's Prometheus metrics (prom-client, a private registry per
 * app so several instances in one test process never share counters), all
 * named carkey_cloud_*.
 *
 * Guarantees: label values come from closed sets (route patterns as
 * registered, never raw URLs; methods; status codes; error codes from the
 * catalog; notice outcomes), so no caller can grow the cardinality.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class CloudMetrics {
  readonly registry = new Registry();
  readonly buildInfo = new Gauge({
    name: 'carkey_cloud_build_info',
    help: 'Always 1; labels say which build runs',
    labelNames: ['version', 'node', 'store'] as const,
    registers: [this.registry],
  });
  readonly requests = new Counter({
    name: 'carkey_cloud_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'carkey_cloud_request_duration_seconds',
    help: 'Time to answer a request (long-polls included)',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 60],
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'carkey_cloud_refusals_total',
    help: 'Requests refused, by error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly longPolls = new Gauge({
    name: 'carkey_cloud_long_polls',
    help: 'Long-poll requests being held',
    registers: [this.registry],
  });
  readonly notices = new Counter({
    name: 'carkey_cloud_mqtt_notices_total',
    help: 'MQTT change notices, by outcome (published, dropped while disconnected, failed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly documents = new Counter({
    name: 'carkey_cloud_documents_stored_total',
    help: 'Documents accepted and stored, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor(options: { readonly defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'carkey_cloud_' });
  }
}
