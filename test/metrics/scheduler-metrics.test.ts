// The scheduler's /healthz and /metrics on a real redis-server: each placement
// attempt counted by its result, the latency of placed tasks, lost nodes, the
// queue's depth; no HTTP server unless asked for one.
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import { createLogger } from '../../common/log.ts';
import { queueHeartbeat, registerNode } from '../../common/nodes.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { getTask, saveNewTasks } from '../../common/tasks.ts';
import type { PlacementJob, TaskRecord } from '../../common/types.ts';
import { startScheduler, type Scheduler } from '../../scheduler/src/index.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

let server: TestRedis;
let redis: BerthRedis;
let placement: Queue<PlacementJob>;
let scheduler: Scheduler | undefined;
const logger = createLogger('scheduler-metrics-test');
logger.level = 'silent';

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url);
  placement = new Queue<PlacementJob>(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
});
afterAll(async () => {
  await scheduler?.close();
  await placement?.close();
  redis?.disconnect();
  await server?.stop();
});

function newTask(cpu: number, memory: number): TaskRecord {
  return {
    taskId: randomBytes(16).toString('hex'), tenant: 't1', family: 'f', revision: 1,
    spec: {
      image: 'x', environment: [], cpu, memory, pidsLimit: 100, ulimits: [], portMappings: [],
      networkMode: 'none', readonlyRootFilesystem: false, stopTimeout: 1,
    },
    lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', createdAt: new Date().toISOString(),
  };
}

async function submit(tasks: TaskRecord[]): Promise<void> {
  await saveNewTasks(redis, tasks);
  await placement.addBulk(tasks.map((t) => ({ name: 'place', data: { taskId: t.taskId }, opts: { jobId: t.taskId, removeOnComplete: true } })));
}

/** The value of one series in Prometheus' text format. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('scheduler metrics', () => {
  it('has no HTTP server unless asked for one', async () => {
    const quiet = await startScheduler({ redisUrl: server.url, logger });
    expect(quiet.address).toBeUndefined();
    await quiet.close();
  });

  it('counts placements by result and serves them with /healthz', async () => {
    scheduler = await startScheduler({
      redisUrl: server.url, logger, retryDelayMs: 100, placementDeadlineMs: 1500, nodeGraceMs: 1000,
      http: { host: '127.0.0.1', port: 0 },
    });
    const base = `http://${scheduler.address}`;
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${base}/healthz`, { method: 'POST' })).status).toBe(405);
    const metrics = async () => (await fetch(`${base}/metrics`)).text();
    const before = await metrics();
    expect(value(before, 'berth_scheduler_placement_attempts_total{result="placed"}')).toBe(0);

    await registerNode(redis, { nodeId: 'n1', address: '127.0.0.1:1', cpuTotal: 1024, memoryTotal: 1024, labels: {} });
    const fits = [newTask(256, 128), newTask(256, 128)];
    const tooBig = newTask(4096, 128);
    await submit([...fits, tooBig]);
    await until('two placed and one failed', async () => {
      const text = await metrics();
      return value(text, 'berth_scheduler_placement_attempts_total{result="placed"}') === 2
        && value(text, 'berth_scheduler_placement_attempts_total{result="failed"}') === 1;
    });
    expect((await getTask(redis, tooBig.taskId))?.stopCode).toBe('TaskFailedToStart');
    const text = await metrics();
    // The big one waited for capacity, retried every 100 ms until the 1.5 s deadline.
    expect(value(text, 'berth_scheduler_placement_attempts_total{result="no_capacity"}')).toBeGreaterThanOrEqual(3);
    expect(value(text, 'berth_scheduler_placement_latency_seconds_count')).toBe(2);
    expect(value(text, 'berth_scheduler_placement_attempt_duration_seconds_count{result="placed"}')).toBe(2);
    expect(value(text, 'berth_scheduler_placement_queue_jobs{state="waiting"}')).toBe(0);

    // A node that stops heartbeating is counted once as lost.
    await queueHeartbeat(redis.multi(), 'n1', new Date(Date.now() - 60_000)).exec();
    await until('the node lost', async () => value(await metrics(), 'berth_scheduler_nodes_lost_total') === 1);
  });
});
