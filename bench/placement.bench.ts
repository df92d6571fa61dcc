// Scheduler throughput and latency with 1,000 simulated nodes on a real Redis:
// tasks go in through the API's own queue code (the records and the run's
// placement; runs sent at once share jobs as the API's do): throughput with
// 1,000 runs of 100 tasks or 1,000 single-task runs sent at once, latency with
// single-task runs at 1,000/s, arriving evenly and in bursts of 10; a task is
// placed when its start job is on its node's queue. Compared with the published
// figures of Nomad's C1M (1,000,000 containers on 5,000 nodes in under 5 minutes).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { freePort, startRedisServer } from '../common/daemons.ts';

import { BULLMQ_PREFIX, keys, queues } from '../common/keys.ts';
import { registerNode } from '../common/nodes.ts';
import { connectRedis, type BerthRedis } from '../common/redis.ts';
import { placementDemand } from '../common/tasks.ts';
import { bullTaskQueues, type TaskQueues } from '../api/src/queues.ts';
import type { TaskRecord } from '../common/types.ts';
import { fileURLToPath } from 'node:url';
import { startDaemon, TS_LOADER, waitForPort, type Daemon } from '../common/daemons.ts';
import { median, percentile, type Benchmark } from './lib.ts';

const NODES = 1_000;
/** Tasks per run in the throughput figure (the API allows up to 100). */
const RUN_COUNT = 100;
const RUNS = 5;
const TASKS_PER_THROUGHPUT_RUN = 10_000;
const PACED_RATE = 1_000;
const PACED_SECONDS = 3;
const NOMAD_C1M_PER_S = 1_000_000 / 300;
const SCHEDULER_REPLICAS = 2;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let sequence = 0;
function task(): TaskRecord {
  const taskId = (++sequence).toString(16).padStart(32, '0');
  return {
    taskId, tenant: 'bench', family: 'bench', revision: 1,
    spec: { image: 'x', environment: [], cpu: 1, memory: 1, pidsLimit: 1, ulimits: [], portMappings: [], networkMode: 'none', readonlyRootFilesystem: false, stopTimeout: 1 },
    lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', createdAt: new Date().toISOString(),
  };
}

/** As the API submits a run (`POST /v1/tasks` with `count` = its length), through its queues: the task records and the run's placement. */
async function submit(placement: TaskQueues, run: TaskRecord[]): Promise<void> {
  await placement.place([{ taskId: run[0]!.taskId, demand: placementDemand(run[0]!), ...(run.length > 1 ? { taskIds: run.map((t) => t.taskId) } : {}) }], run);
}

/** Runs of `count` tasks, submitted at once, as concurrent clients would. */
async function submitRuns(placement: TaskQueues, tasks: TaskRecord[], count: number): Promise<void> {
  const runs: Promise<void>[] = [];
  for (let i = 0; i < tasks.length; i += count) runs.push(submit(placement, tasks.slice(i, i + count)));
  await Promise.all(runs);
}

async function placedCount(redis: BerthRedis): Promise<number> {
  const pipeline = redis.pipeline();
  for (let i = 0; i < NODES; i++) pipeline.scard(keys.nodeTasks(`sim-${i}`));
  return ((await pipeline.exec()) ?? []).reduce((sum, [, n]) => sum + Number(n), 0);
}

/** Polls the count every 10 ms: each poll reads 1,000 sets, which must not eat the machine being measured. */
async function waitPlaced(redis: BerthRedis, total: number): Promise<void> {
  while ((await placedCount(redis)) < total) await new Promise((r) => setTimeout(r, 10));
}

/**
 * PACED_SECONDS of single-task runs at PACED_RATE, `burst` tasks at a time on a
 * fixed schedule (submissions do not wait for each other, as separate clients'
 * requests do not). Fails when the machine could not keep the rate.
 */
async function pace(placement: TaskQueues, burst: number): Promise<TaskRecord[]> {
  const total = PACED_RATE * PACED_SECONDS;
  const intervalMs = (1000 / PACED_RATE) * burst;
  const paced: TaskRecord[] = [];
  const submissions: Promise<void>[] = [];
  const start = performance.now();
  for (let sent = 0; sent < total; sent += burst) {
    const due = start + (sent / burst) * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const batch = Array.from({ length: burst }, task);
    paced.push(...batch);
    submissions.push(submitRuns(placement, batch, 1));
  }
  await Promise.all(submissions);
  const rate = total / ((performance.now() - start) / 1000);
  if (rate < PACED_RATE * 0.95) throw new Error(`the bench offered only ${Math.round(rate)} tasks/s of ${PACED_RATE}`);
  return paced;
}

/** Milliseconds from each task's creation to its start job (BullMQ's job timestamp) on its node's queue. */
async function placementLatencies(redis: BerthRedis, tasks: TaskRecord[]): Promise<number[]> {
  const nodeOf = await Promise.all(tasks.map((t) => redis.hget(keys.task(t.taskId), 'nodeId')));
  const byNode = new Map<string, TaskRecord[]>();
  tasks.forEach((t, i) => byNode.set(nodeOf[i]!, [...(byNode.get(nodeOf[i]!) ?? []), t]));
  const latencies: number[] = [];
  for (const [nodeId, onNode] of byNode) {
    const q = new Queue(queues.node(nodeId), { connection: redis, prefix: BULLMQ_PREFIX });
    const jobs = await Promise.all(onNode.map((t) => q.getJob(`start-${t.taskId}`)));
    jobs.forEach((job, i) => {
      if (job) latencies.push(job.timestamp - Date.parse(onNode[i]!.createdAt));
    });
    await q.close();
  }
  if (latencies.length !== tasks.length) throw new Error(`${tasks.length - latencies.length} tasks have no start job`);
  return latencies;
}

const benchmark: Benchmark = async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-redis-'));
  const port = await freePort();
  const server = await startRedisServer({ dir, port, persist: false });
  const url = `redis://127.0.0.1:${port}`;
  const redis = connectRedis(url);
  const placement = bullTaskQueues(redis);
  const schedulers: Daemon[] = [];
  try {
    for (let i = 0; i < NODES; i++) {
      await registerNode(redis, { nodeId: `sim-${i}`, address: '-', cpuTotal: 1 << 30, memoryTotal: 1 << 30, labels: {} });
    }
    // Replicas as separate processes, as deployed. Simulated nodes send no
    // heartbeats, so their grace outlasts the run.
    for (let i = 0; i < SCHEDULER_REPLICAS; i++) {
      const httpPort = await freePort();
      const scheduler = startDaemon(process.execPath, ['--import', TS_LOADER, path.join(repo, 'scheduler/src/main.ts')], {
        cwd: repo,
        env: { ...process.env, REDIS_URL: url, BERTH_NODE_GRACE_S: '3600', BERTH_SCHEDULER_ADDR: `127.0.0.1:${httpPort}`, LOG_LEVEL: 'warn' },
      });
      schedulers.push(scheduler);
      await waitForPort(httpPort, 30_000, scheduler.child);
    }

    let placed = 0;
    await submitRuns(placement, Array.from({ length: 2_000 }, task), RUN_COUNT); // warm-up
    placed += 2_000;
    await waitPlaced(redis, placed);

    // Sustained throughput, with tasks submitted as runs of 100 (`POST /v1/tasks {count: 100}`,
    // what C1M-style batch work looks like) and as single-task runs.
    const throughput = async (count: number): Promise<number[]> => {
      const rates: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const batch = Array.from({ length: TASKS_PER_THROUGHPUT_RUN }, task);
        const start = performance.now();
        for (let i = 0; i < batch.length; i += 1_000) await submitRuns(placement, batch.slice(i, i + 1_000), count);
        placed += batch.length;
        await waitPlaced(redis, placed);
        rates.push(batch.length / ((performance.now() - start) / 1000));
      }
      return rates;
    };
    const rates = await throughput(RUN_COUNT);
    const singleRates = await throughput(1);

    // Latency at 1,000 per second, from the task's creation to its start job on the node's queue:
    // tasks arriving evenly (one every millisecond, each its own run, as independent clients
    // send them) for the figure, and in bursts (10 at once every 10 ms, as this bench sent them before).
    const latencyRuns = async (burst: number): Promise<number[]> => {
      const p99s: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const paced = await pace(placement, burst);
        placed += paced.length;
        await waitPlaced(redis, placed);
        p99s.push(percentile(await placementLatencies(redis, paced), 99));
      }
      return p99s;
    };
    const p99s = await latencyRuns(1);
    const burstP99s = await latencyRuns(10);
    process.stdout.write(`placements/s per run (runs of ${RUN_COUNT}): ${rates.map((r) => Math.round(r)).join(', ')}; single tasks: ${singleRates.map((r) => Math.round(r)).join(', ')}; p99 ms per run: ${p99s.join(', ')} (bursts of 10: ${burstP99s.join(', ')})\n`);
    return [
      { figure: 'placements_per_s', unit: 'placements/s', berth: median(rates), reference: NOMAD_C1M_PER_S, referenceName: `Nomad C1M, published (1M containers / 5,000 nodes / 5 min); Berth: runs of ${RUN_COUNT} tasks`, runs: RUNS },
      { figure: 'placements_per_s_single', unit: 'placements/s', berth: median(singleRates), reference: NOMAD_C1M_PER_S, referenceName: 'Nomad C1M, published; Berth: every task its own run (count 1), sent by concurrent clients', runs: RUNS },
      { figure: 'placement_p99_ms', unit: 'ms', berth: median(p99s), reference: null, referenceName: 'none published (target < 20 ms at 1,000/s); tasks arriving evenly', runs: RUNS },
      { figure: 'placement_p99_burst_ms', unit: 'ms', berth: median(burstP99s), reference: null, referenceName: 'none published; 1,000/s as 10 tasks at once every 10 ms', runs: RUNS },
    ];
  } finally {
    for (const s of schedulers) await s.stop();
    await placement.close();
    redis.disconnect();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
};

export default benchmark;
