// The per-function series the Grafana dashboard reads: names, labels, and
// nothing left of a function once it is removed.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { functionMetrics } from '../../api/src/dashboard/function-metrics.ts';

describe('functionMetrics', () => {
  it('counts invocations by code, latency, cold starts and instances, and removes a function\'s series', async () => {
    const registry = new Registry();
    const m = functionMetrics(registry);
    m.invoked('hello', 200, 0.012);
    m.invoked('hello', 200, 0.3);
    m.invoked('hello', 502, 1.5);
    m.invoked('other', 'timeout', 30);
    m.coldStart('hello');
    m.instances('hello', 2);
    let text = await registry.metrics();
    expect(text).toContain('berth_function_invocations_total{function="hello",code="200"} 2');
    expect(text).toContain('berth_function_invocations_total{function="hello",code="502"} 1');
    expect(text).toContain('berth_function_invocation_duration_seconds_count{function="hello"} 3');
    expect(text).toContain('berth_function_invocation_duration_seconds_bucket{le="0.025",function="hello"} 1');
    expect(text).toContain('berth_function_cold_starts_total{function="hello"} 1');
    expect(text).toContain('berth_function_instances{function="hello"} 2');

    m.remove('hello');
    text = await registry.metrics();
    expect(text).not.toContain('function="hello"');
    expect(text).toContain('berth_function_invocations_total{function="other",code="timeout"} 1');
    // A second call on the same registry shares the series.
    functionMetrics(registry).invoked('other', 200, 0.1);
    expect(await registry.metrics()).toContain('berth_function_invocations_total{function="other",code="200"} 1');
  });
});
