// Per-function Prometheus series, as deploy/grafana/berth.json reads them, for
// the function gateway to record into the API's registry:
//
//   berth_function_invocations_total{function, code}      counter (code: HTTP status, "timeout", "error")
//   berth_function_invocation_duration_seconds{function}  histogram
//   berth_function_cold_starts_total{function}            counter
//   berth_function_instances{function}                    gauge
//
// `function` is the function's name (tenant-qualified when names may clash);
// remove() drops every series of a deleted function, so cardinality follows
// the functions that exist.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface FunctionMetrics {
  /** One invocation answered (or failed) after `seconds`; `code` is the HTTP status or a word. */
  invoked(fn: string, code: number | string, seconds: number): void;
  coldStart(fn: string): void;
  instances(fn: string, count: number): void;
  /** The function is gone: its series go too. */
  remove(fn: string): void;
}

function existing<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

export function functionMetrics(registry: Registry): FunctionMetrics {
  const invocations = existing(registry, 'berth_function_invocations_total', () => new Counter({
    name: 'berth_function_invocations_total', help: 'Function invocations, by function and HTTP status code',
    labelNames: ['function', 'code'], registers: [registry],
  }));
  const duration = existing(registry, 'berth_function_invocation_duration_seconds', () => new Histogram({
    name: 'berth_function_invocation_duration_seconds', help: 'Time from a function request to its answer',
    labelNames: ['function'], registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
  }));
  const coldStarts = existing(registry, 'berth_function_cold_starts_total', () => new Counter({
    name: 'berth_function_cold_starts_total', help: 'Invocations that had to wait for a new instance',
    labelNames: ['function'], registers: [registry],
  }));
  const instances = existing(registry, 'berth_function_instances', () => new Gauge({
    name: 'berth_function_instances', help: 'Instances of the function that run now',
    labelNames: ['function'], registers: [registry],
  }));
  const codes = new Map<string, Set<string>>();
  return {
    invoked(fn, code, seconds) {
      const c = String(code);
      let seen = codes.get(fn);
      if (!seen) codes.set(fn, (seen = new Set()));
      seen.add(c);
      invocations.inc({ function: fn, code: c });
      duration.observe({ function: fn }, seconds);
    },
    coldStart(fn) {
      coldStarts.inc({ function: fn });
    },
    instances(fn, count) {
      instances.set({ function: fn }, count);
    },
    remove(fn) {
      for (const code of codes.get(fn) ?? []) invocations.remove({ function: fn, code });
      codes.delete(fn);
      duration.remove({ function: fn });
      coldStarts.remove({ function: fn });
      instances.remove({ function: fn });
    },
  };
}
