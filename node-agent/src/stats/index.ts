// Per-task statistics from cgroups (v1, v2, hybrid) and the task's network
// namespace, written to Redis every interval and exported to Prometheus.
export { createStatsCollector } from './collector.ts';
export { detectCgroups, type CgroupVersion } from './cgroup.ts';
export type { StatsCollector, StatsCollectorOptions, TaskStatsSample, TrackedTask } from './types.ts';
