// The autoscaler's bookkeeping against a real redis-server, without containers:
// the warm pool (minInstances) is kept, an instance whose task stopped (its node
// lost) is forgotten and replaced, idle instances are scaled down to zero after
// the idle timeout, and a new version rolls in before the old one is drained.
import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { functionKeys, registerInstance, saveFunction, type FunctionConfig } from '../../common/functions.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { getTask, transitionTask } from '../../common/tasks.ts';
import type { NodeJob } from '../../common/types.ts';
import { startAutoscaler, type Autoscaler } from '../../scheduler/src/autoscaler.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

let server: TestRedis;
let redis: BerthRedis;
let autoscaler: Autoscaler;
const stops: { nodeId: string; taskId: string; reason: string }[] = [];

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url);
  const nodeQueues = (nodeId: string) => ({
    add: async (_name: string, job: NodeJob) => { if (job.kind === 'stop') stops.push({ nodeId, taskId: job.taskId, reason: job.reason }); },
  }) as unknown as Queue<NodeJob>;
  autoscaler = startAutoscaler({ redis, logger: pino({ level: 'silent' }), nodeQueues }, {
    tickMs: 3_600_000, stableWindowMs: 2000, panicWindowMs: 500, targetUtilization: 0.7, panicThreshold: 2,
  });
});

afterAll(async () => {
  await autoscaler?.close();
  redis?.disconnect();
  await server?.stop();
});

const config = (name: string, extra: Partial<FunctionConfig> = {}): FunctionConfig => ({
  name, image: 'img', environment: [], cpu: 256, memory: 128, timeout: 30, concurrency: 1, minInstances: 0, maxInstances: 10,
  idleTimeout: 1, port: 8080, readiness: { timeout: 60 }, asyncRetries: 2, ...extra,
});

/** Plays the scheduler and the agent: the instance runs on node n1 and is ready. */
async function run(name: string, id: string): Promise<void> {
  await redis.hset(`berth:task:${id}`, 'nodeId', 'n1', 'lastStatus', 'RUNNING');
  const task = await getTask(redis, id);
  await registerInstance(redis, 't', name, id, {
    nodeId: 'n1', agent: '127.0.0.1:1', ip: '10.0.0.2', port: 8080, version: Number((task as unknown as { functionVersion: string }).functionVersion), readyAt: new Date().toISOString(),
  });
}

describe('autoscaler', () => {
  it('keeps the warm pool and replaces an instance whose node was lost', async () => {
    await saveFunction(redis, 't', config('pool', { minInstances: 2 }));
    await autoscaler.tick();
    const k = functionKeys('t', 'pool');
    const first = await redis.smembers(k.live);
    expect(first).toHaveLength(2);
    for (const id of first) await run('pool', id);
    await transitionTask(redis, first[0]!, 'STOPPED', { stopCode: 'NodeLost', stoppedReason: 'NodeLost: node n1 sent no heartbeat' });
    await autoscaler.tick();
    const now = await redis.smembers(k.live);
    expect(now).toHaveLength(2);
    expect(now).toContain(first[1]);
    expect(now).not.toContain(first[0]);
    expect(await redis.zscore(k.ready, first[0]!)).toBeNull();
    const replacement = await getTask(redis, now.find((id) => id !== first[1])!);
    expect(replacement).toMatchObject({ lastStatus: 'PROVISIONING', group: 'fn:pool', placementStrategy: { type: 'spread', field: 'node' } });
  });

  it('scales idle instances down to zero after the idle timeout', async () => {
    await saveFunction(redis, 't', config('idle'));
    const k = functionKeys('t', 'idle');
    await redis.sadd(k.live, 'a'.repeat(32));
    await redis.hset(`berth:task:${'a'.repeat(32)}`, 'taskId', 'a'.repeat(32), 'functionVersion', '1', 'kind', 'function', 'functionName', 'idle', 'tenant', 't');
    await run('idle', 'a'.repeat(32));
    await autoscaler.tick();
    expect(await redis.scard(k.live)).toBe(1); // idle for less than 1 s
    await new Promise((r) => setTimeout(r, 1100));
    await autoscaler.tick();
    expect(await redis.scard(k.live)).toBe(0);
    expect(stops.map((s) => s.taskId)).toContain('a'.repeat(32));
    expect(stops.find((s) => s.taskId === 'a'.repeat(32))?.reason).toMatch(/idle/);
  });

  it('rolls a new version in before draining the old one', async () => {
    await saveFunction(redis, 't', config('roll', { minInstances: 1 }));
    const k = functionKeys('t', 'roll');
    await autoscaler.tick();
    const [v1] = await redis.smembers(k.live);
    await run('roll', v1!);
    await saveFunction(redis, 't', config('roll', { minInstances: 1, environment: [{ name: 'V', value: '2' }] }));
    await autoscaler.tick();
    const live = await redis.smembers(k.live);
    expect(live).toHaveLength(2); // v2 starting, v1 still serving
    expect(await redis.zscore(k.ready, v1!)).not.toBeNull();
    const v2 = live.find((id) => id !== v1)!;
    await run('roll', v2);
    await autoscaler.tick();
    expect(await redis.smembers(k.live)).toEqual([v2]);
    expect(await redis.zscore(k.ready, v1!)).toBeNull();
    expect(stops.find((s) => s.taskId === v1)?.reason).toMatch(/version 2/);
  });
});
