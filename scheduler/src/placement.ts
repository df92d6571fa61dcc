// The placement worker: takes a PROVISIONING task, reserves CPU and memory on
// the best node that fits with one atomic script, and hands the task to that
// node's queue. Any number of replicas may run this at once.
import { DelayedError, Queue, type Job } from 'bullmq';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { getTask, placementDemand, transitionTask } from '../../common/tasks.ts';
import type { Logger } from '../../common/log.ts';
import type { NodeJob, PlacementDemand, PlacementJob, TaskRecord } from '../../common/types.ts';
import { ConstraintError, filterNodes } from './constraints.ts';
import type { PlacementOutcome } from './metrics.ts';
import { NodeCache } from './node-cache.ts';
import { candidates, DEFAULT_STRATEGY, fits, shortResource } from './strategy.ts';

export interface PlacementOptions {
  redis: BerthRedis;
  logger: Logger;
  /** How long a task may wait for capacity before it is STOPPED. */
  placementDeadlineMs: number;
  /** How soon a task that found no capacity looks again. */
  retryDelayMs: number;
  /** How stale the scheduler's view of the nodes may be. */
  nodeCacheMs: number;
}

export type NodeQueues = (nodeId: string) => Queue<NodeJob>;

export function nodeQueueCache(connection: BerthRedis): { get: NodeQueues; close(): Promise<void> } {
  const cache = new Map<string, Queue<NodeJob>>();
  return {
    get(nodeId) {
      let queue = cache.get(nodeId);
      if (!queue) {
        queue = new Queue<NodeJob>(queues.node(nodeId), { connection, prefix: BULLMQ_PREFIX });
        cache.set(nodeId, queue);
      }
      return queue;
    },
    async close() {
      await Promise.all([...cache.values()].map((q) => q.close()));
      cache.clear();
    },
  };
}

export async function enqueueStart(nodeQueue: Queue<NodeJob>, taskId: string): Promise<void> {
  await nodeQueue.add('start', { kind: 'start', taskId }, { jobId: `start-${taskId}`, removeOnComplete: true, removeOnFail: 1000 });
}

/**
 * What placing the job's task needs: from the job when the API put it there,
 * else from the task (null: nothing to place, or handled here).
 */
async function demandOf(o: PlacementOptions, nodeQueue: NodeQueues, job: PlacementJob): Promise<PlacementDemand | null> {
  if (job.demand) return job.demand;
  const task = await getTask(o.redis, job.taskId);
  if (!task || task.desiredStatus !== 'RUNNING') return null;
  if (await resumeHandOver(nodeQueue, task)) return null;
  return task.lastStatus === 'PROVISIONING' ? placementDemand(task) : null;
}

/** A task reserved by an earlier attempt that died before handing it to its node: hand it over now. */
async function resumeHandOver(nodeQueue: NodeQueues, task: TaskRecord | null): Promise<boolean> {
  if (task?.lastStatus !== 'PENDING' || !task.nodeId || task.desiredStatus !== 'RUNNING') return false;
  await enqueueStart(nodeQueue(task.nodeId), task.taskId);
  return true;
}

export function createPlacementProcessor(o: PlacementOptions, nodeQueue: NodeQueues) {
  const nodeCache = new NodeCache(o.redis, o.nodeCacheMs);
  const skipped: PlacementOutcome = { result: 'skipped' };
  const failed: PlacementOutcome = { result: 'failed' };
  return async function place(job: Job<PlacementJob>, token?: string): Promise<PlacementOutcome> {
    const { taskId } = job.data;
    const d = await demandOf(o, nodeQueue, job.data);
    if (!d) return skipped;

    const demand = { cpu: d.cpu, memory: d.memory };
    const groupKey = keys.groupNodes(d.tenant, d.group);
    const distinct = d.constraints?.some((c) => c.type === 'distinctInstance') ?? false;
    const strategy = d.strategy ?? DEFAULT_STRATEGY;
    const needsGroup = distinct || strategy.type === 'spread';
    const [nodes, counts] = await Promise.all([nodeCache.get(), needsGroup ? o.redis.hgetall(groupKey) : {}]);
    const groupCounts = new Map(Object.entries(counts).map(([id, n]) => [id, Number(n)] as const).filter(([, n]) => n > 0));
    let eligible;
    try {
      eligible = filterNodes(nodes, d.constraints, new Set(groupCounts.keys()));
    } catch (err) {
      if (!(err instanceof ConstraintError)) throw err;
      await transitionTask(o.redis, taskId, 'STOPPED', { stopCode: 'TaskFailedToStart', stoppedReason: `ResourceInitializationError: ${err.message}`, stoppedAt: new Date().toISOString() });
      return failed;
    }
    for (const node of candidates(eligible.filter((n) => fits(n, demand)), strategy, groupCounts)) {
      const code = await o.redis.reserveCapacity(
        keys.node(node.nodeId), keys.task(taskId), keys.nodeTasks(node.nodeId), groupKey,
        node.nodeId, demand.cpu, demand.memory, taskId, distinct ? '1' : '0',
      );
      if (code === 1) {
        nodeCache.reserved(node.nodeId, demand.cpu, demand.memory);
        await enqueueStart(nodeQueue(node.nodeId), taskId);
        o.logger.debug({ taskId, nodeId: node.nodeId }, 'task placed');
        return { result: 'placed', createdAt: d.createdAt };
      }
      if (code === -1) {
        // Stopped or placed meanwhile, or reserved by an attempt that died before the hand-over.
        await resumeHandOver(nodeQueue, await getTask(o.redis, taskId));
        return skipped;
      }
      nodeCache.invalidate();
      // -2..-5: another replica took the capacity (or the node, for the group) first; try the next node.
    }

    // No room now. The job may carry the demand of a task stopped or placed meanwhile: look before waiting.
    const [lastStatus, desiredStatus] = await o.redis.hmget(keys.task(taskId), 'lastStatus', 'desiredStatus');
    if (lastStatus !== 'PROVISIONING' || desiredStatus !== 'RUNNING') return skipped;
    if (Date.now() - Date.parse(d.createdAt) >= o.placementDeadlineMs) {
      const reason = eligible.length === 0
        ? `ResourceInitializationError: no node matched the placement constraints within ${Math.round(o.placementDeadlineMs / 1000)} s`
        : `ResourceInitializationError: no node had ${shortResource(eligible, demand)} free within ${Math.round(o.placementDeadlineMs / 1000)} s`;
      await transitionTask(o.redis, taskId, 'STOPPED', { stopCode: 'TaskFailedToStart', stoppedReason: reason, stoppedAt: new Date().toISOString() });
      o.logger.warn({ taskId }, reason);
      return failed;
    }
    await job.moveToDelayed(Date.now() + o.retryDelayMs, token);
    throw new DelayedError();
  };
}
