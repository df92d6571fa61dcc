import type { Registry } from 'prom-client';
import type { Logger } from '../../../common/log.ts';
import type { BerthRedis } from '../../../common/redis.ts';

export interface TaskStatsSample {
  time: string;
  /** % of one vCPU over the last interval. */
  cpuPercent: number;
  /** % of the task's CPU limit (its units / 1024 vCPUs; all host cores without one). */
  cpuLimitPercent: number;
  cpuUsageNs: number;
  throttledPeriods: number;
  /** Usage without inactive file cache (what `docker stats` shows). */
  memoryBytes: number;
  memoryPeakBytes: number;
  /** The cgroup's limit; the task's memory or the host's when the cgroup has none. */
  memoryLimitBytes: number;
  oomKills: number;
  pids: number;
  /** 0 in host mode: the host's counters are not the task's. */
  netRxBytes: number;
  netTxBytes: number;
}

export interface TrackedTask {
  /** As in config.json, e.g. /berth/<id>. */
  cgroupsPath: string;
  /** Undefined in host mode: no network bytes then. */
  netnsPath?: string;
  cpuUnits: number;
  memoryBytes: number;
  family: string;
  /** A process in the task (the container's init); without it, the first pid in the cgroup is used. */
  pid?: number;
}

export interface StatsCollector {
  track(taskId: string, t: TrackedTask): void;
  /** Stops sampling and removes the task's Prometheus series. */
  untrack(taskId: string): Promise<void>;
  /** A fresh sample (CPU over the time since the last tick, and over 200 ms at least); undefined if untracked or gone. */
  sampleNow(taskId: string): Promise<TaskStatsSample | undefined>;
  close(): Promise<void>;
}

export interface StatsCollectorOptions {
  redis: BerthRedis;
  /** Milliseconds between samples, 200 at least (two CPU scheduling periods). @defaultValue 1000 */
  intervalMs?: number;
  /** Samples kept in the history list (900 at 1 s = 15 min). @defaultValue 900 */
  historyLength?: number;
  /** The stats keys expire this long after the last write (finished tasks do not stay forever). @defaultValue 86400 */
  retainSeconds?: number;
  registry: Registry;
  logger: Logger;
}
