// Samples every tracked task once per interval: cgroup counters, network bytes
// from inside its namespace, CPU as a rate since the previous sample. Each tick
// writes all samples to Redis in one pipeline (latest sample, and a capped
// history list, newest first) and updates the Prometheus series.
import os from 'node:os';
import { keys } from '../../../common/keys.ts';
import { CgroupReader, type CgroupCounters } from './cgroup.ts';
import { TaskMetrics } from './metrics.ts';
import { readNetDev } from './netdev.ts';
import type { StatsCollector, StatsCollectorOptions, TaskStatsSample, TrackedTask } from './types.ts';

interface Reading {
  at: bigint; // hrtime, ns
  counters: CgroupCounters;
  rx: number;
  tx: number;
}

interface Tracked {
  task: TrackedTask;
  last?: Reading;
  /** The most a sample showed, for hosts without a peak counter (v2 before 5.19). */
  peak: number;
}

// The CPU quota holds per scheduling period (100 ms): over a shorter window a task
// with two busy threads under one vCPU really does use up to two. Rates are
// taken over two periods or more (ticks are at least that far apart, sampleNow
// waits for the rest), so they show what the limit allows.
const MIN_CPU_WINDOW_MS = 200;

export function createStatsCollector(o: StatsCollectorOptions): StatsCollector {
  const intervalMs = Math.max(o.intervalMs ?? 1000, MIN_CPU_WINDOW_MS);
  const historyLength = o.historyLength ?? 900;
  const retainSeconds = o.retainSeconds ?? 86_400;
  const log = o.logger.child({ component: 'stats' });
  const reader = new CgroupReader();
  const metrics = new TaskMetrics(o.registry);
  const tracked = new Map<string, Tracked>();
  const hostCores = os.cpus().length || 1;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;

  log.debug({ cgroups: reader.layout.version }, 'stats collector started');

  async function read(t: Tracked): Promise<Reading | undefined> {
    const counters = await reader.read(t.task.cgroupsPath);
    if (!counters) return undefined;
    let rx = 0;
    let tx = 0;
    if (t.task.netnsPath) {
      const pid = (await reader.firstPid(t.task.cgroupsPath)) ?? t.task.pid;
      const net = pid ? await readNetDev(pid) : undefined;
      rx = net?.rxBytes ?? t.last?.rx ?? 0;
      tx = net?.txBytes ?? t.last?.tx ?? 0;
    }
    return { at: counters.cpuReadAt, counters, rx, tx };
  }

  function toSample(t: Tracked, now: Reading, prev: Reading | undefined): TaskStatsSample {
    const c = now.counters;
    let cpuPercent = 0;
    if (prev) {
      const wallNs = Number(now.at - prev.at);
      const usedNs = c.cpuUsageNs - prev.counters.cpuUsageNs;
      if (wallNs > 0 && usedNs > 0) cpuPercent = (usedNs / wallNs) * 100;
    }
    const vcpus = t.task.cpuUnits > 0 ? t.task.cpuUnits / 1024 : hostCores;
    t.peak = Math.max(t.peak, c.memoryBytes, c.memoryPeakBytes);
    const round = (n: number) => Math.round(n * 100) / 100;
    return {
      time: new Date().toISOString(),
      cpuPercent: round(cpuPercent),
      cpuLimitPercent: round(cpuPercent / vcpus),
      cpuUsageNs: c.cpuUsageNs,
      throttledPeriods: c.throttledPeriods,
      memoryBytes: c.memoryBytes,
      memoryPeakBytes: c.memoryPeakBytes || t.peak,
      memoryLimitBytes: c.memoryLimitBytes ?? (t.task.memoryBytes > 0 ? t.task.memoryBytes : os.totalmem()),
      oomKills: c.oomKills,
      pids: c.pids,
      netRxBytes: now.rx,
      netTxBytes: now.tx,
    };
  }

  async function tick(): Promise<void> {
    const samples: [string, Tracked, TaskStatsSample][] = [];
    await Promise.all([...tracked].map(async ([taskId, t]) => {
      try {
        const now = await read(t);
        if (!now) return; // the cgroup is gone: the task just ended
        if (tracked.get(taskId) !== t) return; // untracked meanwhile
        const sample = toSample(t, now, t.last);
        t.last = now;
        samples.push([taskId, t, sample]);
      } catch (err) {
        log.warn({ err, taskId }, 'could not sample a task');
      }
    }));
    if (samples.length === 0) return;
    const pipe = o.redis.pipeline();
    for (const [taskId, t, sample] of samples) {
      if (tracked.get(taskId) !== t) continue; // untracked while sampling: no series left behind
      const json = JSON.stringify(sample);
      pipe.set(keys.taskStats(taskId), json, 'EX', retainSeconds);
      pipe.lpush(keys.taskStatsHistory(taskId), json);
      pipe.ltrim(keys.taskStatsHistory(taskId), 0, historyLength - 1);
      pipe.expire(keys.taskStatsHistory(taskId), retainSeconds);
      metrics.update(taskId, t.task.family, sample);
    }
    try {
      await pipe.exec();
    } catch (err) {
      log.warn({ err }, 'could not write task stats to Redis');
    }
  }

  function schedule(): void {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      ticking = tick()
        .catch((err: unknown) => log.warn({ err }, 'stats tick failed'))
        .finally(() => {
          ticking = undefined;
          if (tracked.size > 0) schedule();
        });
    }, intervalMs);
    timer.unref();
  }

  return {
    track(taskId, task) {
      if (closed) return;
      const existing = tracked.get(taskId);
      tracked.set(taskId, { task, last: existing?.last, peak: existing?.peak ?? 0 });
      schedule();
    },

    async untrack(taskId) {
      const t = tracked.get(taskId);
      if (!t) return;
      tracked.delete(taskId);
      metrics.remove(taskId, t.task.family);
    },

    async sampleNow(taskId) {
      const t = tracked.get(taskId);
      if (!t) return undefined;
      let prev = t.last;
      if (!prev) {
        prev = await read(t);
        if (!prev) return undefined;
      }
      const sinceNs = Number(process.hrtime.bigint() - prev.at);
      if (sinceNs < MIN_CPU_WINDOW_MS * 1e6) await new Promise((r) => setTimeout(r, MIN_CPU_WINDOW_MS - sinceNs / 1e6));
      const now = await read(t);
      if (!now) return undefined;
      return toSample(t, now, prev);
    },

    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await ticking;
      for (const [taskId, t] of tracked) metrics.remove(taskId, t.task.family);
      tracked.clear();
    },
  };
}
