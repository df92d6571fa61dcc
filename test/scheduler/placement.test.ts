// The scheduler against a real redis-server: placement, strategies, waiting for
// capacity, the deadline, node loss, and no double-booking between replicas.
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import { createLogger } from '../../common/log.ts';
import { getNode, listNodes, registerNode } from '../../common/nodes.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { getTask, placementDemand, saveNewTasks, transitionTask } from '../../common/tasks.ts';
import type { PlacementJob, TaskRecord } from '../../common/types.ts';
import { startScheduler, type Scheduler } from '../../scheduler/src/index.ts';
import { bullTaskQueues } from '../../api/src/queues.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

let server: TestRedis;
let redis: BerthRedis;
let placement: Queue<PlacementJob>;
const schedulers: Scheduler[] = [];
const logger = createLogger('scheduler-test');
logger.level = 'silent';

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server?.stop();
});
beforeEach(async () => {
  redis = connectRedis(server.url);
  await redis.flushall();
  placement = new Queue<PlacementJob>(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
});
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.close()));
  await placement.close();
  redis.disconnect();
});

function newTask(cpu: number, memory: number, extra: Partial<TaskRecord> = {}): TaskRecord {
  return {
    taskId: randomBytes(16).toString('hex'),
    tenant: 't1', family: 'f', revision: 1,
    spec: {
      image: 'x', environment: [], cpu, memory, pidsLimit: 100, ulimits: [], portMappings: [],
      networkMode: 'none', readonlyRootFilesystem: false, stopTimeout: 1,
    },
    lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', createdAt: new Date().toISOString(),
    ...extra,
  };
}

async function submit(tasks: TaskRecord[]): Promise<void> {
  await saveNewTasks(redis, tasks);
  await placement.addBulk(tasks.map((t) => ({ name: 'place', data: { taskId: t.taskId, demand: placementDemand(t) }, opts: { jobId: t.taskId, removeOnComplete: true } })));
}

/** As the API submits a run with `count` > 1: the tasks, then one job that carries them all. */
async function submitRun(tasks: TaskRecord[]): Promise<void> {
  await saveNewTasks(redis, tasks);
  await placement.add('place', { taskId: tasks[0]!.taskId, taskIds: tasks.map((t) => t.taskId), demand: placementDemand(tasks[0]!) }, { jobId: tasks[0]!.taskId, removeOnComplete: true });
}

async function scheduler(options: Partial<Parameters<typeof startScheduler>[0]> = {}): Promise<Scheduler> {
  const s = await startScheduler({ redisUrl: server.url, logger, retryDelayMs: 100, ...options });
  schedulers.push(s);
  return s;
}

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function statuses(tasks: TaskRecord[]): Promise<TaskRecord[]> {
  return Promise.all(tasks.map(async (t) => (await getTask(redis, t.taskId))!));
}

const node = (nodeId: string, cpuTotal: number, memoryTotal: number, labels: Record<string, string> = {}) =>
  registerNode(redis, { nodeId, address: '127.0.0.1:1', cpuTotal, memoryTotal, labels });

describe('placement', () => {
  it('places a task on a node that fits and queues its start on that node', async () => {
    await node('small', 1024, 128);
    await node('big', 4096, 8192);
    await scheduler();
    const task = newTask(512, 1024);
    await submit([task]);
    const placed = await until('PENDING', async () => { const t = await getTask(redis, task.taskId); return t?.lastStatus === 'PENDING' && t; });
    expect(placed.nodeId).toBe('big');
    expect(await getNode(redis, 'big')).toMatchObject({ cpuReserved: 512, memoryReserved: 1024 });
    const nodeQueue = new Queue(queues.node('big'), { connection: redis, prefix: BULLMQ_PREFIX });
    const jobs = await nodeQueue.getJobs(['waiting', 'delayed', 'active']);
    await nodeQueue.close();
    expect(jobs.map((j) => j.data)).toEqual([{ kind: 'start', taskId: task.taskId }]);
  });

  it('binpacks on memory: fills the fullest node that still fits first', async () => {
    await node('a', 8192, 1000);
    await node('b', 8192, 1000);
    await scheduler({ concurrency: 1 });
    const first = newTask(10, 400);
    await submit([first]);
    const firstNode = (await until('placed', async () => (await getTask(redis, first.taskId))?.nodeId))!;
    const rest = [newTask(10, 400), newTask(10, 400), newTask(10, 400)];
    for (const t of rest) {
      await submit([t]);
      await until('placed', async () => (await getTask(redis, t.taskId))?.nodeId);
    }
    const nodes = (await statuses(rest)).map((t) => t.nodeId);
    // 400 + 400 fit on the first node (1000); the third lands on the other node, the fourth beside it.
    expect(nodes[0]).toBe(firstNode);
    expect(nodes[1]).not.toBe(firstNode);
    expect(nodes[2]).toBe(nodes[1]);
  });

  it('spreads across nodes with the spread strategy', async () => {
    for (const id of ['a', 'b', 'c']) await node(id, 8192, 4096);
    await scheduler({ concurrency: 1 });
    const tasks = Array.from({ length: 6 }, () => newTask(10, 100, { placementStrategy: { type: 'spread', field: 'node' } }));
    for (const t of tasks) {
      await submit([t]);
      await until('placed', async () => (await getTask(redis, t.taskId))?.nodeId);
    }
    const counts = new Map<string, number>();
    for (const t of await statuses(tasks)) counts.set(t.nodeId!, (counts.get(t.nodeId!) ?? 0) + 1);
    expect([...counts.values()]).toEqual([2, 2, 2]);
  });

  it('keeps a task PROVISIONING until capacity appears, then places it', async () => {
    await scheduler();
    const task = newTask(512, 512);
    await submit([task]);
    await new Promise((r) => setTimeout(r, 400));
    expect((await getTask(redis, task.taskId))?.lastStatus).toBe('PROVISIONING');
    await node('late', 1024, 1024);
    const placed = await until('PENDING', async () => { const t = await getTask(redis, task.taskId); return t?.lastStatus === 'PENDING' && t; });
    expect(placed.nodeId).toBe('late');
  });

  it('places a task waiting for room as soon as a task on the full node stops, not at its next retry', async () => {
    await node('one', 1024, 1024);
    await scheduler({ retryDelayMs: 600_000 }); // only the stop can bring the waiting task back within the test
    const first = newTask(1024, 512);
    await submit([first]);
    await until('the first PENDING', async () => (await getTask(redis, first.taskId))?.lastStatus === 'PENDING');
    const waiting = newTask(1024, 512);
    await submit([waiting]);
    await until('the second delayed for room', async () => (await placement.getDelayedCount()) === 1);
    expect((await getTask(redis, waiting.taskId))?.lastStatus).toBe('PROVISIONING');
    expect(await transitionTask(redis, first.taskId, 'STOPPED', { stoppedReason: 'done' })).toBe('moved');
    const placed = await until('the second PENDING', async () => { const t = await getTask(redis, waiting.taskId); return t?.lastStatus === 'PENDING' && t; }, 10_000);
    expect(placed.nodeId).toBe('one');
    expect(await getNode(redis, 'one')).toMatchObject({ cpuReserved: 1024, memoryReserved: 512 });
  });

  // Views of the nodes that never age out and retries that never come: only a fresh look can place these in time.
  it('places a task on room freed by a task that stopped just before it came', async () => {
    await node('one', 1024, 1024);
    await scheduler({ retryDelayMs: 600_000, nodeCacheMs: 600_000 });
    const first = newTask(1024, 512);
    await submit([first]);
    await until('the first PENDING', async () => (await getTask(redis, first.taskId))?.lastStatus === 'PENDING');
    expect(await transitionTask(redis, first.taskId, 'STOPPED', { stoppedReason: 'done' })).toBe('moved');
    const next = newTask(1024, 512);
    await submit([next]);
    const placed = await until('the next PENDING', async () => { const t = await getTask(redis, next.taskId); return t?.lastStatus === 'PENDING' && t; }, 10_000);
    expect(placed.nodeId).toBe('one');
  });

  it('places a task on room a node gained after the scheduler last looked at it', async () => {
    await node('one', 1024, 1024);
    await scheduler({ retryDelayMs: 600_000, nodeCacheMs: 600_000 });
    const first = newTask(1024, 512);
    await submit([first]);
    await until('the first PENDING', async () => (await getTask(redis, first.taskId))?.lastStatus === 'PENDING');
    await node('one', 2048, 1024); // its agent came back on a larger machine
    await new Promise((r) => setTimeout(r, 200)); // the view the first placement loaded is now too old to say "no room"
    const next = newTask(1024, 512);
    await submit([next]);
    const placed = await until('the next PENDING', async () => { const t = await getTask(redis, next.taskId); return t?.lastStatus === 'PENDING' && t; }, 10_000);
    expect(placed.nodeId).toBe('one');
    expect(await getNode(redis, 'one')).toMatchObject({ cpuReserved: 2048 });
  });

  it('stops a task that finds no capacity before the deadline, naming the short resource', async () => {
    await node('tiny', 4096, 256);
    await scheduler({ placementDeadlineMs: 300 });
    const task = newTask(256, 1024);
    await submit([task]);
    const stopped = await until('STOPPED', async () => { const t = await getTask(redis, task.taskId); return t?.lastStatus === 'STOPPED' && t; });
    expect(stopped.stopCode).toBe('TaskFailedToStart');
    expect(stopped.stoppedReason).toMatch(/memory \(1024 MiB\)/);
    expect(stopped.stoppedReason).not.toMatch(/CPU/);
  });

  it('places every run of a job that carries several, and tries again only the tasks that found no room', async () => {
    await node('n', 4096, 1000);
    await scheduler();
    const pair = [newTask(10, 300), newTask(10, 300)];
    const single = newTask(10, 300);
    const large = newTask(10, 2000);
    await saveNewTasks(redis, [...pair, single, large]);
    await placement.add('place', {
      taskId: pair[0]!.taskId, taskIds: pair.map((t) => t.taskId), demand: placementDemand(pair[0]!),
      moreRuns: [{ taskId: single.taskId, demand: placementDemand(single) }, { taskId: large.taskId, demand: placementDemand(large) }],
    }, { jobId: pair[0]!.taskId, removeOnComplete: true });
    await until('three placed', async () => (await statuses([...pair, single])).every((t) => t.lastStatus === 'PENDING'));
    expect((await statuses([...pair, single])).map((t) => t.nodeId)).toEqual(['n', 'n', 'n']);
    await new Promise((r) => setTimeout(r, 300));
    expect((await getTask(redis, large.taskId))?.lastStatus).toBe('PROVISIONING');
    const [job] = await placement.getJobs(['delayed', 'waiting', 'active']);
    expect(job?.data.taskIds).toEqual([large.taskId]);
    expect(job?.data.moreRuns).toBeUndefined();

    await node('big', 4096, 4096);
    await until('the large one placed', async () => (await getTask(redis, large.taskId))?.nodeId === 'big');
    expect(await getNode(redis, 'n')).toMatchObject({ memoryReserved: 900, cpuReserved: 30 });
    expect(await redis.scard(keys.nodeTasks('n'))).toBe(3);
  });

  it('places runs sent together through the API\'s queues, several to a job', async () => {
    await node('n', 65_536, 65_536);
    const api = bullTaskQueues(redis);
    const tasks = Array.from({ length: 300 }, () => newTask(10, 10));
    try {
      // As 300 clients' POST /v1/tasks at once: the first run goes alone, the others wait for it and go together.
      await Promise.all(tasks.map((t) => api.place([{ taskId: t.taskId, demand: placementDemand(t) }], [t])));
    } finally {
      await api.close();
    }
    const queued = await placement.getJobs(['waiting']);
    expect(queued.length).toBeGreaterThan(1);
    expect(queued.length).toBeLessThan(10);
    expect(queued.flatMap((j) => [j.data.taskId, ...(j.data.moreRuns ?? []).map((r) => r.taskId)]).sort()).toEqual(tasks.map((t) => t.taskId).sort());
    await scheduler();
    await until('all placed', async () => (await redis.scard(keys.nodeTasks('n'))) === tasks.length);
    expect((await statuses(tasks)).every((t) => t.lastStatus === 'PENDING' && t.nodeId === 'n')).toBe(true);
    expect(await getNode(redis, 'n')).toMatchObject({ memoryReserved: 3000, cpuReserved: 3000 });
  });

  it('releases a reservation exactly once, whichever path stops the task', async () => {
    await node('n', 2048, 2048);
    await scheduler();
    const task = newTask(512, 512);
    await submit([task]);
    await until('PENDING', async () => (await getTask(redis, task.taskId))?.lastStatus === 'PENDING');
    const stoppers = await Promise.all([
      transitionTask(redis, task.taskId, 'STOPPED', { stopCode: 'UserInitiated' }),
      transitionTask(redis, task.taskId, 'STOPPED', { stopCode: 'EssentialContainerExited' }),
      transitionTask(redis, task.taskId, 'STOPPED', { stopCode: 'NodeLost' }),
    ]);
    expect(stoppers.filter((r) => r === 'moved')).toHaveLength(1);
    expect(await getNode(redis, 'n')).toMatchObject({ cpuReserved: 0, memoryReserved: 0 });
    expect(await transitionTask(redis, task.taskId, 'RUNNING')).toBe('unchanged');
  });
});

describe('constraints', () => {
  it('places only on nodes whose labels match a memberOf expression', async () => {
    await node('ssd-1', 8192, 8192, { disk: 'ssd', zone: 'a' });
    await node('hdd-1', 8192, 8192, { disk: 'hdd', zone: 'b' });
    await node('ssd-2', 8192, 8192, { disk: 'ssd', zone: 'c' });
    await scheduler();
    const onSsd = Array.from({ length: 4 }, () => newTask(10, 10, { placementConstraints: [{ type: 'memberOf', expression: 'disk == ssd' }] }));
    const notA = Array.from({ length: 4 }, () => newTask(10, 10, { placementConstraints: [{ type: 'memberOf', expression: 'zone != a' }] }));
    const inBC = Array.from({ length: 4 }, () => newTask(10, 10, { placementConstraints: [{ type: 'memberOf', expression: 'zone in [b, c]' }] }));
    const all = [...onSsd, ...notA, ...inBC];
    await submit(all);
    await until('all placed', async () => (await statuses(all)).every((t) => t.lastStatus === 'PENDING'));
    for (const t of await statuses(onSsd)) expect(['ssd-1', 'ssd-2']).toContain(t.nodeId);
    for (const t of await statuses(notA)) expect(t.nodeId).not.toBe('ssd-1');
    for (const t of await statuses(inBC)) expect(['hdd-1', 'ssd-2']).toContain(t.nodeId);
  });

  it('keeps tasks of a group on distinct nodes with distinctInstance, even with replicas racing', async () => {
    for (const id of ['a', 'b', 'c']) await node(id, 8192, 8192);
    for (let i = 0; i < 3; i++) await scheduler({ concurrency: 8, placementDeadlineMs: 1_500 });
    const tasks = Array.from({ length: 5 }, () => newTask(10, 10, { group: 'web', placementConstraints: [{ type: 'distinctInstance' }] }));
    await submit(tasks);
    await until('three placed, two given up', async () => {
      const s = await statuses(tasks);
      return s.filter((t) => t.lastStatus === 'PENDING').length === 3 && s.filter((t) => t.lastStatus === 'STOPPED').length === 2;
    }, 10_000);
    const placed = (await statuses(tasks)).filter((t) => t.lastStatus === 'PENDING').map((t) => t.nodeId).sort();
    expect(placed).toEqual(['a', 'b', 'c']);
  });

  it('keeps the tasks of one run on distinct nodes with distinctInstance, the rest waiting then stopped', async () => {
    for (const id of ['a', 'b', 'c']) await node(id, 8192, 8192);
    await scheduler({ placementDeadlineMs: 1_500 });
    const run = Array.from({ length: 5 }, () => newTask(10, 10, { group: 'api', placementConstraints: [{ type: 'distinctInstance' }] }));
    await submitRun(run);
    const placedFirst = await until('three placed', async () => {
      const s = await statuses(run);
      return s.filter((t) => t.lastStatus === 'PENDING').length === 3 && s;
    }, 10_000);
    expect(placedFirst.filter((t) => t.lastStatus === 'PROVISIONING')).toHaveLength(2);
    await until('two given up', async () => (await statuses(run)).filter((t) => t.lastStatus === 'STOPPED').length === 2, 10_000);
    const final = await statuses(run);
    expect(final.filter((t) => t.lastStatus === 'PENDING').map((t) => t.nodeId).sort()).toEqual(['a', 'b', 'c']);
    for (const t of final.filter((x) => x.lastStatus === 'STOPPED')) expect(t.stoppedReason).toMatch(/no node matched|free within/);
  });

  it('spreads the tasks of one run over the nodes', async () => {
    for (const id of ['a', 'b', 'c', 'd']) await node(id, 8192, 8192);
    await scheduler();
    const run = Array.from({ length: 8 }, () => newTask(10, 10, { group: 'spread-run', placementStrategy: { type: 'spread', field: 'node' } }));
    await submitRun(run);
    const placed = await until('all placed', async () => { const s = await statuses(run); return s.every((t) => t.lastStatus === 'PENDING') && s; });
    const perNode = new Map<string, number>();
    for (const t of placed) perNode.set(t.nodeId!, (perNode.get(t.nodeId!) ?? 0) + 1);
    expect([...perNode.values()]).toEqual([2, 2, 2, 2]);
  });

  it('spreads a group over the values of a node label', async () => {
    await node('a1', 8192, 8192, { zone: 'a' });
    await node('a2', 8192, 8192, { zone: 'a' });
    await node('b1', 8192, 8192, { zone: 'b' });
    await scheduler({ concurrency: 1 });
    const tasks = Array.from({ length: 4 }, () => newTask(10, 10, { group: 'api', placementStrategy: { type: 'spread', field: 'attribute:zone' } }));
    for (const t of tasks) {
      await submit([t]);
      await until('placed', async () => (await getTask(redis, t.taskId))?.nodeId);
    }
    const zones = (await statuses(tasks)).map((t) => (t.nodeId === 'b1' ? 'b' : 'a'));
    expect(zones.filter((z) => z === 'a')).toHaveLength(2);
    expect(zones.filter((z) => z === 'b')).toHaveLength(2);
  });

  it('stops a task whose memberOf expression cannot be parsed, saying why', async () => {
    await node('n', 8192, 8192);
    await scheduler();
    const task = newTask(10, 10, { placementConstraints: [{ type: 'memberOf', expression: 'zone ~ a' }] });
    await submit([task]);
    const stopped = await until('STOPPED', async () => { const t = await getTask(redis, task.taskId); return t?.lastStatus === 'STOPPED' && t; });
    expect(stopped.stoppedReason).toMatch(/memberOf expression "zone ~ a"/);
  });
});

describe('node liveness', () => {
  it('marks a silent node LOST, stops its tasks with NodeLost and frees its capacity', async () => {
    await node('quiet', 2048, 2048);
    await scheduler({ nodeGraceMs: 500 });
    const task = newTask(256, 256);
    await submit([task]);
    await until('PENDING', async () => (await getTask(redis, task.taskId))?.lastStatus === 'PENDING');
    // No agent heartbeats for this node: within the grace period plus a sweep it is lost.
    const stopped = await until('STOPPED', async () => { const t = await getTask(redis, task.taskId); return t?.lastStatus === 'STOPPED' && t; }, 5_000);
    expect(stopped.stopCode).toBe('NodeLost');
    expect(stopped.stoppedReason).toMatch(/^NodeLost: node quiet /);
    expect(await getNode(redis, 'quiet')).toMatchObject({ status: 'LOST', cpuReserved: 0, memoryReserved: 0 });
  });
});

describe('replicas', () => {
  it('never double-books a node with 4 scheduler replicas racing on 10,000 placements', async () => {
    const nodeCount = 50;
    for (let i = 0; i < nodeCount; i++) await node(`n${i}`, 1024 * 4, 4096);
    // No agents heartbeat here: a long grace keeps the nodes ACTIVE for the whole run.
    for (let i = 0; i < 4; i++) await scheduler({ concurrency: 32, placementDeadlineMs: 120_000, nodeGraceMs: 600_000 });
    // 10,000 × 24 MiB is more than 50 × 4096 MiB: the nodes fill up completely and the rest must wait.
    const tasks = Array.from({ length: 10_000 }, () => newTask(16, 24));
    // As single tasks (a job each), as runs of 20 (a job each), and as single tasks sent at once through
    // the API's queues (several runs to a job).
    const api = bullTaskQueues(redis);
    for (let i = 0; i < tasks.length; i += 1000) {
      const slice = tasks.slice(i, i + 1000);
      if ((i / 1000) % 3 === 0) await submit(slice);
      else if ((i / 1000) % 3 === 1) for (let j = 0; j < slice.length; j += 20) await submitRun(slice.slice(j, j + 20));
      else await Promise.all(slice.map((t) => api.place([{ taskId: t.taskId, demand: placementDemand(t) }], [t])));
    }
    await api.close();
    const capacityTasks = nodeCount * Math.floor(4096 / 24);
    await until('all that fit placed', async () => {
      const placed = await Promise.all((await listNodes(redis)).map((n) => redis.scard(keys.nodeTasks(n.nodeId))));
      return placed.reduce((a, b) => a + b, 0) >= capacityTasks;
    }, 120_000);
    for (const n of await listNodes(redis)) {
      expect(n.memoryReserved).toBeLessThanOrEqual(n.memoryTotal);
      expect(n.cpuReserved).toBeLessThanOrEqual(n.cpuTotal);
      const count = await redis.scard(keys.nodeTasks(n.nodeId));
      expect(n.memoryReserved).toBe(count * 24);
      expect(n.cpuReserved).toBe(count * 16);
    }
  }, 180_000);
});
