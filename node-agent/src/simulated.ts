// Simulated agents for scheduler scale tests and benchmarks: many nodes in one
// process, each registering, heartbeating and consuming only its own queue like
// a real agent, but acknowledging work without running containers. Never used
// where a user would have a real agent.
import { Worker } from 'bullmq';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import { queueHeartbeat, registerNode } from '../../common/nodes.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { getTask, transitionTask } from '../../common/tasks.ts';
import type { NodeJob } from '../../common/types.ts';

export interface SimulatedAgentsOptions {
  redisUrl: string;
  /** Node ids are `<prefix><n>`. */
  prefix: string;
  count: number;
  cpu: number;
  memory: number;
  labels?: (n: number) => Record<string, string>;
  /** @defaultValue 1000 */
  heartbeatMs?: number;
}

export interface SimulatedAgents {
  nodeIds: string[];
  /** Stops one node's heartbeats and queue, as if its host had died. */
  kill(nodeId: string): Promise<void>;
  close(): Promise<void>;
}

export async function startSimulatedAgents(o: SimulatedAgentsOptions): Promise<SimulatedAgents> {
  const redis: BerthRedis = connectRedis(o.redisUrl);
  const nodeIds = Array.from({ length: o.count }, (_, n) => `${o.prefix}${n}`);
  const alive = new Set(nodeIds);
  const workers = new Map<string, Worker<NodeJob>>();
  for (const [n, nodeId] of nodeIds.entries()) {
    await registerNode(redis, { nodeId, address: 'simulated', cpuTotal: o.cpu, memoryTotal: o.memory, labels: o.labels?.(n) ?? {} });
    const worker = new Worker<NodeJob>(queues.node(nodeId), async (job) => {
      const task = await getTask(redis, job.data.taskId);
      if (!task || task.nodeId !== nodeId) return;
      const now = new Date().toISOString();
      if (job.data.kind === 'start') {
        if (task.desiredStatus === 'STOPPED') {
          await transitionTask(redis, task.taskId, 'STOPPED', { stopCode: 'UserInitiated', stoppedReason: 'Task stopped before it started', stoppedAt: now });
        } else {
          await transitionTask(redis, task.taskId, 'RUNNING', { pullStartedAt: now, pullStoppedAt: now, startedAt: now });
        }
      } else {
        await transitionTask(redis, task.taskId, 'STOPPED', { stopCode: 'UserInitiated', stoppedReason: job.data.reason, exitCode: 143, stoppedAt: now });
      }
    }, { connection: redis.duplicate(), prefix: BULLMQ_PREFIX, concurrency: 8 });
    workers.set(nodeId, worker);
  }
  const heartbeat = setInterval(() => {
    const pipeline = redis.pipeline();
    const now = new Date();
    for (const nodeId of alive) queueHeartbeat(pipeline, nodeId, now);
    void pipeline.exec();
  }, o.heartbeatMs ?? 1000);

  const closeWorker = async (nodeId: string) => {
    const worker = workers.get(nodeId);
    workers.delete(nodeId);
    if (!worker) return;
    await worker.close();
    (worker.opts.connection as BerthRedis).disconnect();
  };
  return {
    nodeIds,
    async kill(nodeId) {
      alive.delete(nodeId);
      await closeWorker(nodeId);
    },
    async close() {
      clearInterval(heartbeat);
      await Promise.all([...workers.keys()].map(closeWorker));
      redis.disconnect();
    },
  };
}
