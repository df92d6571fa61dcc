// The scheduler with many (simulated) agents: four replicas place 2,000 tasks
// over 100 nodes that run them; ten nodes die; their tasks, and only theirs,
// are stopped with NodeLost within the grace period, and capacity adds up.
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import { createLogger } from '../../common/log.ts';
import { listNodes } from '../../common/nodes.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { getTask, placementDemand, saveNewTasks } from '../../common/tasks.ts';
import type { PlacementJob, TaskRecord } from '../../common/types.ts';
import { startSimulatedAgents, type SimulatedAgents } from '../../node-agent/src/simulated.ts';
import { startScheduler, type Scheduler } from '../../scheduler/src/index.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

let server: TestRedis;
let redis: BerthRedis;
let agents: SimulatedAgents;
const schedulers: Scheduler[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url);
  agents = await startSimulatedAgents({ redisUrl: server.url, prefix: 'sim-', count: 100, cpu: 4096, memory: 8192, heartbeatMs: 250 });
  const logger = createLogger('scheduler');
  logger.level = 'silent';
  for (let i = 0; i < 4; i++) schedulers.push(await startScheduler({ redisUrl: server.url, logger, concurrency: 16, nodeGraceMs: 2_000, retryDelayMs: 100 }));
}, 120_000);

afterAll(async () => {
  for (const s of schedulers) await s.close();
  await agents?.close();
  redis?.disconnect();
  await server?.stop();
}, 60_000);

it('runs 2,000 tasks on 100 nodes, and stops exactly the tasks of the nodes that die', async () => {
  const tasks: TaskRecord[] = Array.from({ length: 2_000 }, () => ({
    taskId: randomBytes(16).toString('hex'), tenant: 't', family: 'sim', revision: 1,
    spec: { image: 'x', environment: [], cpu: 64, memory: 128, pidsLimit: 10, ulimits: [], portMappings: [], networkMode: 'none', readonlyRootFilesystem: false, stopTimeout: 1 },
    lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', createdAt: new Date().toISOString(),
  }));
  const placement = new Queue<PlacementJob>(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
  await saveNewTasks(redis, tasks);
  await placement.addBulk(tasks.map((t) => ({ name: 'place', data: { taskId: t.taskId, demand: placementDemand(t) }, opts: { jobId: t.taskId, removeOnComplete: true } })));
  await placement.close();

  const states = async () => Promise.all(tasks.map(async (t) => (await getTask(redis, t.taskId))!));
  let deadline = Date.now() + 90_000;
  while ((await states()).some((t) => t.lastStatus !== 'RUNNING') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  const running = await states();
  expect(running.filter((t) => t.lastStatus !== 'RUNNING')).toEqual([]);
  for (const node of await listNodes(redis)) {
    const here = running.filter((t) => t.nodeId === node.nodeId);
    expect(node.memoryReserved).toBe(here.length * 128);
    expect(node.memoryReserved).toBeLessThanOrEqual(node.memoryTotal);
  }

  const dead = agents.nodeIds.slice(0, 10);
  const killedAt = Date.now();
  for (const nodeId of dead) await agents.kill(nodeId);
  const onDead = running.filter((t) => dead.includes(t.nodeId!)).map((t) => t.taskId);
  expect(onDead.length).toBeGreaterThan(0);
  deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const now = await Promise.all(onDead.map((id) => getTask(redis, id)));
    if (now.every((t) => t?.lastStatus === 'STOPPED')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const detectedMs = Date.now() - killedAt;
  const after = await states();
  for (const t of after) {
    if (onDead.includes(t.taskId)) expect(t).toMatchObject({ lastStatus: 'STOPPED', stopCode: 'NodeLost' });
    else expect(t.lastStatus).toBe('RUNNING');
  }
  // Grace 2 s, a sweep every 500 ms, and a heartbeat that may have just been sent.
  expect(detectedMs).toBeLessThan(2_000 + 250 + 500 + 1_500);
  for (const node of (await listNodes(redis)).filter((n) => dead.includes(n.nodeId))) {
    expect(node).toMatchObject({ status: 'LOST', cpuReserved: 0, memoryReserved: 0 });
  }
}, 180_000);
