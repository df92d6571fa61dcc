// Request metrics for /metrics, labelled by route pattern (never the raw URL),
// method and status, so label values stay few.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

const LABEL_NAMES = ['route', 'method', 'status'] as const;
type RequestLabels = (typeof LABEL_NAMES)[number];

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** A registry of its own (with process metrics) unless one is given. */
export function installMetrics(app: FastifyInstance, given?: Registry): Registry {
  const registry = given ?? new Registry();
  if (!given) collectDefaultMetrics({ register: registry });
  const labelNames = LABEL_NAMES;
  const requests = metric(registry, 'http_requests_total', () => new Counter({
    name: 'http_requests_total', help: 'HTTP requests answered', labelNames, registers: [registry],
  }));
  const duration = metric(registry, 'http_request_duration_seconds', () => new Histogram({
    name: 'http_request_duration_seconds', help: 'Time to answer HTTP requests', labelNames,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
  }));
  app.addHook('onResponse', async (request, reply) => {
    const labels = {
      route: request.routeOptions.url ?? 'unmatched',
      method: METHODS.has(request.method) ? request.method : 'OTHER',
      status: String(reply.statusCode),
    };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });
  return registry;
}

/** Records the requests of a route answered outside fastify (the function URL) in installMetrics' series. */
export function routeMetrics(registry: Registry, route: string): (method: string, status: number, seconds: number) => void {
  const requests = registry.getSingleMetric('http_requests_total') as Counter<RequestLabels>;
  const duration = registry.getSingleMetric('http_request_duration_seconds') as Histogram<RequestLabels>;
  return (method, status, seconds) => {
    const labels = { route, method: METHODS.has(method) ? method : 'OTHER', status: String(status) };
    requests.inc(labels);
    duration.observe(labels, seconds);
  };
}
