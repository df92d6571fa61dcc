// Per-task Prometheus series, labelled task_id and family. Counters follow the
// kernel's counters: each tick adds what they grew by since the last one.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { TaskStatsSample } from './types.ts';

const LABELS = ['task_id', 'family'] as const;
type Labels = { task_id: string; family: string };

function counter(registry: Registry, name: string, help: string): Counter<'task_id' | 'family'> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<'task_id' | 'family'>;
  return new Counter({ name, help, labelNames: LABELS, registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string): Gauge<'task_id' | 'family'> {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge<'task_id' | 'family'>;
  return new Gauge({ name, help, labelNames: LABELS, registers: [registry] });
}

type CounterField = 'cpuUsageNs' | 'oomKills' | 'throttledPeriods' | 'netRxBytes' | 'netTxBytes';

export class TaskMetrics {
  private readonly counters: { field: CounterField; scale: number; metric: Counter<'task_id' | 'family'> }[];
  private readonly gauges: { field: 'memoryBytes' | 'memoryLimitBytes' | 'memoryPeakBytes' | 'pids'; metric: Gauge<'task_id' | 'family'> }[];
  private readonly last = new Map<string, TaskStatsSample>();

  constructor(registry: Registry) {
    this.counters = [
      { field: 'cpuUsageNs', scale: 1e-9, metric: counter(registry, 'berth_task_cpu_seconds_total', 'CPU time the task used, in seconds') },
      { field: 'oomKills', scale: 1, metric: counter(registry, 'berth_task_oom_kills_total', 'Processes of the task killed by the OOM killer') },
      { field: 'throttledPeriods', scale: 1, metric: counter(registry, 'berth_task_cpu_throttled_periods_total', 'CFS periods in which the task was throttled') },
      { field: 'netRxBytes', scale: 1, metric: counter(registry, 'berth_task_network_receive_bytes_total', 'Bytes the task received') },
      { field: 'netTxBytes', scale: 1, metric: counter(registry, 'berth_task_network_transmit_bytes_total', 'Bytes the task sent') },
    ];
    this.gauges = [
      { field: 'memoryBytes', metric: gauge(registry, 'berth_task_memory_bytes', 'Memory the task uses, without inactive file cache') },
      { field: 'memoryLimitBytes', metric: gauge(registry, 'berth_task_memory_limit_bytes', 'Memory limit of the task') },
      { field: 'memoryPeakBytes', metric: gauge(registry, 'berth_task_memory_peak_bytes', 'Highest memory use of the task') },
      { field: 'pids', metric: gauge(registry, 'berth_task_pids', 'Processes and threads in the task') },
    ];
  }

  update(taskId: string, family: string, s: TaskStatsSample): void {
    const labels: Labels = { task_id: taskId, family };
    const prev = this.last.get(taskId);
    for (const c of this.counters) {
      const before = prev?.[c.field] ?? 0;
      // A counter that went backwards was reset: count from zero again.
      const grew = s[c.field] >= before ? s[c.field] - before : s[c.field];
      c.metric.inc(labels, grew * c.scale);
    }
    for (const g of this.gauges) g.metric.set(labels, s[g.field]);
    this.last.set(taskId, s);
  }

  remove(taskId: string, family: string): void {
    const labels: Labels = { task_id: taskId, family };
    for (const c of this.counters) c.metric.remove(labels);
    for (const g of this.gauges) g.metric.remove(labels);
    this.last.delete(taskId);
  }
}
