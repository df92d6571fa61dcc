// The collector against real busybox containers under runc (their cgroups on
// this host's hierarchy), a real redis-server, and a prom-client registry.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../common/keys.ts';
import { createLogger } from '../../common/log.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { createStatsCollector, type StatsCollector, type TaskStatsSample } from '../../node-agent/src/stats/index.ts';
import { makeBundle, type TestBundle } from '../harness/bundle.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

const MiB = 1024 * 1024;
const logger = createLogger('stats-test', {});
logger.level = 'warn';

let server: TestRedis;
let redis: BerthRedis;
let registry: Registry;
let collector: StatsCollector;
const containers: TestBundle[] = [];
const netnses: string[] = [];
const suffix = randomBytes(3).toString('hex');
/** Our own parent cgroup, with a high CPU weight so a loaded shared host still gives the busy loop its quota. */
const parent = `/berth-stats-test-${suffix}`;

function boostParent(): void {
  const cpu = '/sys/fs/cgroup/cpu';
  if (existsSync(`${cpu}/cpu.shares`)) {
    mkdirSync(`${cpu}${parent}`, { recursive: true });
    writeFileSync(`${cpu}${parent}/cpu.shares`, '16384');
  }
}

function removeParent(): void {
  for (const base of ['/sys/fs/cgroup', ...readdirSync('/sys/fs/cgroup').map((c) => `/sys/fs/cgroup/${c}`)]) {
    try {
      rmdirSync(`${base}${parent}`);
    } catch {
      // not there, or not a cgroup hierarchy
    }
  }
}

function runc(bundle: TestBundle, args: string[]): string {
  return execFileSync('runc', ['--root', `${bundle.scratch}/runc`, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function startContainer(options: Parameters<typeof makeBundle>[0]): Promise<TestBundle> {
  const bundle = await makeBundle({ cgroupsPath: `${parent}/c-${randomBytes(4).toString('hex')}`, ...options });
  containers.push(bundle);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('runc', ['--root', `${bundle.scratch}/runc`, 'run', '--detach', '--bundle', bundle.bundle, bundle.id], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`runc run failed (${code}): ${err}`))));
  });
  return bundle;
}

function initPid(bundle: TestBundle): number {
  return (JSON.parse(runc(bundle, ['state', bundle.id])) as { pid: number }).pid;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last !== undefined && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url);
  boostParent();
  registry = new Registry();
  collector = createStatsCollector({ redis, registry, logger, intervalMs: 200, historyLength: 5 });
});

afterAll(async () => {
  await collector?.close();
  for (const bundle of containers) {
    try {
      runc(bundle, ['delete', '--force', bundle.id]);
    } catch {
      // never started, or gone
    }
    await bundle.remove();
  }
  for (const ns of netnses) {
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    } catch {
      // gone
    }
  }
  removeParent();
  redis?.disconnect();
  await server?.stop();
});

describe('a busy container with a 64 MiB limit that fills 30 MiB of /dev/shm', () => {
  const taskId = `stats-${suffix}`;
  let bundle: TestBundle;
  let peerIp: string;
  let taskIp: string;
  const ns = `berth-ts${suffix}`;

  it('samples memory rising to the data it holds, the right limit, pids and CPU', async () => {
    // A namespace with a veth to the host, so the task has traffic to count.
    const n = 200 + (parseInt(suffix.slice(0, 2), 16) % 50);
    peerIp = `10.198.${n}.1`;
    taskIp = `10.198.${n}.2`;
    const hostIf = `bts${suffix}`;
    execFileSync('ip', ['netns', 'add', ns]);
    netnses.push(ns);
    execFileSync('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    execFileSync('ip', ['addr', 'add', `${peerIp}/24`, 'dev', hostIf]);
    execFileSync('ip', ['link', 'set', hostIf, 'up']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', `${taskIp}/24`, 'dev', 'eth0']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);

    bundle = await startContainer({
      args: ['sh', '-c', 'sleep 1.5; dd if=/dev/zero of=/dev/shm/x bs=1M count=30 2>/dev/null; sh -c "while :; do :; done" & while :; do :; done'],
      memoryBytes: 64 * MiB,
      cpuUnits: 1024,
      network: { kind: 'join', path: `/run/netns/${ns}` },
    });
    collector.track(taskId, { cgroupsPath: bundle.cgroupsPath, netnsPath: `/run/netns/${ns}`, cpuUnits: 1024, memoryBytes: 64 * MiB, family: 'stats-fam', pid: initPid(bundle) });

    const early = await collector.sampleNow(taskId);
    expect(early).toBeDefined();
    expect(early!.memoryLimitBytes).toBe(64 * MiB);
    expect(early!.memoryBytes).toBeLessThan(10 * MiB);

    const later = await until('30 MiB in /dev/shm and two busy loops', () => collector.sampleNow(taskId), (s) => s.memoryBytes >= 30 * MiB && s.pids >= 2 && s.cpuPercent > 50);
    expect(later.memoryBytes).toBeGreaterThan(early!.memoryBytes);
    expect(later.memoryBytes).toBeLessThanOrEqual(64 * MiB);
    expect(later.memoryPeakBytes).toBeGreaterThanOrEqual(30 * MiB);
    expect(later.memoryLimitBytes).toBe(64 * MiB);
    expect(later.cpuLimitPercent).toBeCloseTo(later.cpuPercent, 5);
    expect(later.cpuUsageNs).toBeGreaterThan(early!.cpuUsageNs);
    // Two busy loops under a one-vCPU quota: about 100 % of one vCPU, and throttled.
    // Not in the first period after the group was idle: the kernel lets it run
    // up to about one quota more then (here 182 ms of CPU in its first 119 ms).
    await until('throttling', () => collector.sampleNow(taskId), (s) => s.throttledPeriods >= 3);
    await new Promise((r) => setTimeout(r, 250)); // a tick after it, where sampleNow's window starts
    // At any moment, not only on ticks: a sample just after a tick, over a short
    // wait, is no less bound by the quota.
    for (let i = 0; i < 8; i++) {
      const s = (await collector.sampleNow(taskId))!;
      expect(s.cpuPercent).toBeGreaterThan(50);
      expect(s.cpuPercent).toBeLessThan(130);
      await new Promise((r) => setTimeout(r, 37));
    }
    expect(later.oomKills).toBe(0);
  });

  it('counts the bytes of the task namespace, not the host', async () => {
    const before = (await collector.sampleNow(taskId))!;
    execFileSync('busybox', ['ping', '-c', '5', '-i', '0.2', '-s', '1000', '-W', '1', taskIp], { stdio: 'ignore' });
    const after = await until('network bytes', () => collector.sampleNow(taskId), (s) => s.netRxBytes >= before.netRxBytes + 5000);
    expect(after.netRxBytes - before.netRxBytes).toBeLessThan(100_000);
    expect(after.netTxBytes - before.netTxBytes).toBeGreaterThanOrEqual(5000);
  });

  it('writes the latest sample and a history trimmed to historyLength to Redis', async () => {
    const history = await until('a full history', () => redis.llen(keys.taskStatsHistory(taskId)), (n) => n >= 5);
    expect(history).toBe(5);
    await new Promise((r) => setTimeout(r, 600)); // three more ticks
    expect(await redis.llen(keys.taskStatsHistory(taskId))).toBe(5);
    const latest = JSON.parse((await redis.get(keys.taskStats(taskId)))!) as TaskStatsSample;
    const newest = JSON.parse((await redis.lindex(keys.taskStatsHistory(taskId), 0))!) as TaskStatsSample;
    const oldest = JSON.parse((await redis.lindex(keys.taskStatsHistory(taskId), -1))!) as TaskStatsSample;
    expect(Object.keys(latest).sort()).toEqual([
      'cpuLimitPercent', 'cpuPercent', 'cpuUsageNs', 'memoryBytes', 'memoryLimitBytes', 'memoryPeakBytes', 'netRxBytes', 'netTxBytes', 'oomKills', 'pids', 'throttledPeriods', 'time',
    ]);
    expect(Date.parse(newest.time)).toBeGreaterThan(Date.parse(oldest.time));
    expect(latest.memoryLimitBytes).toBe(64 * MiB);
    expect(latest.cpuPercent).toBeGreaterThan(0);
    expect(await redis.ttl(keys.taskStats(taskId))).toBeGreaterThan(0);
  });

  it('exports Prometheus series labelled by task and family, and removes them on untrack', async () => {
    const text = await registry.metrics();
    const labels = `{task_id="${taskId}",family="stats-fam"}`;
    for (const name of [
      'berth_task_cpu_seconds_total', 'berth_task_memory_bytes', 'berth_task_memory_limit_bytes', 'berth_task_memory_peak_bytes',
      'berth_task_oom_kills_total', 'berth_task_pids', 'berth_task_cpu_throttled_periods_total',
      'berth_task_network_receive_bytes_total', 'berth_task_network_transmit_bytes_total',
    ]) {
      expect(text).toContain(`${name}${labels}`);
    }
    expect(text).toContain(`berth_task_memory_limit_bytes${labels} ${64 * MiB}`);
    expect(text).toMatch(/# TYPE berth_task_cpu_seconds_total counter/);
    const cpuSeconds = Number(new RegExp(`berth_task_cpu_seconds_total${labels.replace(/[{}]/g, '\\$&')} (\\S+)`).exec(text)?.[1]);
    expect(cpuSeconds).toBeGreaterThan(0.5);

    await collector.untrack(taskId);
    expect(await registry.metrics()).not.toContain(taskId);
    expect(await collector.sampleNow(taskId)).toBeUndefined();
    const length = await redis.llen(keys.taskStatsHistory(taskId));
    await new Promise((r) => setTimeout(r, 500));
    expect(await redis.llen(keys.taskStatsHistory(taskId))).toBe(length);
    expect(await registry.metrics()).not.toContain(taskId);
  });
});

describe('edge cases', () => {
  it('counts an OOM kill', async () => {
    const taskId = `oom-${suffix}`;
    const bundle = await startContainer({
      args: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/x bs=1M count=60 2>/dev/null; sleep 600'],
      memoryBytes: 24 * MiB,
      cpuUnits: 256,
    });
    collector.track(taskId, { cgroupsPath: bundle.cgroupsPath, cpuUnits: 256, memoryBytes: 24 * MiB, family: 'oom-fam' });
    const s = await until('an OOM kill', () => collector.sampleNow(taskId), (v) => v.oomKills >= 1);
    expect(s.memoryLimitBytes).toBe(24 * MiB);
    expect(s.memoryPeakBytes).toBeLessThanOrEqual(24 * MiB);
    expect(s.netRxBytes).toBe(0); // no netnsPath: host mode, not counted
    await until('the counter in Prometheus', async () => registry.metrics(), (t) => t.includes(`berth_task_oom_kills_total{task_id="${taskId}",family="oom-fam"} `) && !t.includes(`berth_task_oom_kills_total{task_id="${taskId}",family="oom-fam"} 0`));
    await collector.untrack(taskId);
  });

  it('a cgroup that vanished is not an error: no sample, nothing written', async () => {
    const taskId = `gone-${suffix}`;
    collector.track(taskId, { cgroupsPath: `/berth-test/does-not-exist-${suffix}`, cpuUnits: 1024, memoryBytes: MiB, family: 'gone' });
    expect(await collector.sampleNow(taskId)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 500));
    expect(await redis.exists(keys.taskStats(taskId))).toBe(0);
    expect(await registry.metrics()).not.toContain(taskId);
    await collector.untrack(taskId);
  });

  it('stops when the container is deleted mid-tracking', async () => {
    const taskId = `ends-${suffix}`;
    const bundle = await startContainer({ args: ['sleep', '600'], memoryBytes: 16 * MiB, cpuUnits: 128 });
    collector.track(taskId, { cgroupsPath: bundle.cgroupsPath, cpuUnits: 128, memoryBytes: 16 * MiB, family: 'ends' });
    await until('a sample in Redis', () => redis.exists(keys.taskStats(taskId)), (n) => n === 1);
    runc(bundle, ['delete', '--force', bundle.id]);
    expect(await collector.sampleNow(taskId)).toBeUndefined();
    const length = await redis.llen(keys.taskStatsHistory(taskId));
    await new Promise((r) => setTimeout(r, 500));
    expect(await redis.llen(keys.taskStatsHistory(taskId))).toBe(length);
    await collector.untrack(taskId);
  });
});
