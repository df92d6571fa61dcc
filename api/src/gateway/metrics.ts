// Prometheus series of the function gateway, labelled by `<tenant>/<function>`.
import { Counter, Histogram, type Registry } from 'prom-client';

export interface GatewayMetrics {
  record(fn: string, outcome: 'ok' | 'error' | 'timeout' | 'gone', durationMs: number, memoryMiB?: number): void;
  coldStart(fn: string): void;
}

export function createGatewayMetrics(registry: Registry): GatewayMetrics {
  const invocations = new Counter({
    name: 'berth_function_invocations_total', help: 'Function invocations by outcome (ok, error, timeout, gone: the client left)',
    labelNames: ['function', 'outcome'], registers: [registry],
  });
  const duration = new Histogram({
    name: 'berth_function_invocation_duration_seconds', help: 'Function invocation duration, from the forward to the end of the answer',
    labelNames: ['function'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [registry],
  });
  const memory = new Histogram({
    name: 'berth_function_max_memory_used_mib', help: 'Peak memory of the instance an invocation ran on (MiB)',
    labelNames: ['function'], buckets: [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 10240], registers: [registry],
  });
  const coldStarts = new Counter({
    name: 'berth_function_cold_starts_total', help: 'Instances started because a request found no free slot',
    labelNames: ['function'], registers: [registry],
  });
  return {
    record(fn, outcome, durationMs, memoryMiB) {
      invocations.inc({ function: fn, outcome });
      duration.observe({ function: fn }, durationMs / 1000);
      if (memoryMiB !== undefined) memory.observe({ function: fn }, memoryMiB);
    },
    coldStart(fn) {
      coldStarts.inc({ function: fn });
    },
  };
}
