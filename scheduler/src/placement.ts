// The placement worker: takes a job with the PROVISIONING tasks of one run (one
// task, or a run's `count`) or of several runs, reserves CPU and memory for each
// task on the best node that fits with one atomic script, and hands the tasks to
// those nodes' queues. Any number of replicas may run this at once.
import { Queue, type Job } from 'bullmq';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { getTask, placementDemand, transitionTask } from '../../common/tasks.ts';
import type { Logger } from '../../common/log.ts';
import type { NodeJob, NodeRecord, PlacementDemand, PlacementJob, PlacementRun, TaskRecord } from '../../common/types.ts';
import { ConstraintError, filterNodes } from './constraints.ts';
import type { PlacementAttempt, PlacementOutcome } from './metrics.ts';
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

/** The most a view of the nodes may have aged to decide that none has room for a task. */
const NO_ROOM_VIEW_MS = 100;

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
  await enqueueStarts(nodeQueue, [taskId]);
}

/** A `start` job per task on the node's queue; the job id makes a second hand-over of a task a no-op. */
export async function enqueueStarts(nodeQueue: Queue<NodeJob>, taskIds: string[]): Promise<void> {
  const opts = { removeOnComplete: true, removeOnFail: 1000 };
  if (taskIds.length === 1) await nodeQueue.add('start', { kind: 'start', taskId: taskIds[0]! }, { jobId: `start-${taskIds[0]}`, ...opts });
  else await nodeQueue.addBulk(taskIds.map((taskId) => ({ name: 'start', data: { kind: 'start' as const, taskId }, opts: { jobId: `start-${taskId}`, ...opts } })));
}

/**
 * What placing the run's tasks needs: from the job when the API put it there,
 * else from the task (null: nothing to place, or handled here).
 */
async function demandOf(o: PlacementOptions, nodeQueue: NodeQueues, run: PlacementRun): Promise<PlacementDemand | null> {
  if (run.demand) return run.demand;
  const task = await getTask(o.redis, run.taskId);
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

/** What placing one run came to. */
interface RunPlacement {
  outcome: PlacementOutcome;
  /** Task ids by the node they were reserved on, to hand over. */
  starts: Map<string, string[]>;
  /** The run's tasks that found no room yet, to try again shortly. */
  retry?: PlacementRun;
}

export function createPlacementProcessor(o: PlacementOptions, nodeQueue: NodeQueues, nodeCache = new NodeCache(o.redis, o.nodeCacheMs)) {

  /** Reserves room for the run's tasks, one after the other, each seeing where the ones before it went. */
  async function placeRun(run: PlacementRun): Promise<RunPlacement> {
    const starts = new Map<string, string[]>();
    const d = await demandOf(o, nodeQueue, run);
    if (!d) return { outcome: { result: 'skipped', count: 1 }, starts };
    const taskIds = run.taskIds ?? [run.taskId];

    const demand = { cpu: d.cpu, memory: d.memory };
    const groupKey = keys.groupNodes(d.tenant, d.group);
    const distinct = d.constraints?.some((c) => c.type === 'distinctInstance') ?? false;
    const strategy = d.strategy ?? DEFAULT_STRATEGY;
    const needsGroup = distinct || strategy.type === 'spread';
    const [nodes, counts] = await Promise.all([nodeCache.get(), needsGroup ? o.redis.hgetall(groupKey) : {}]);
    const groupCounts = new Map(Object.entries(counts).map(([id, n]) => [id, Number(n)] as const).filter(([, n]) => n > 0));
    let eligible: NodeRecord[] = [];
    let placed = 0;
    const reserveAll = async (ids: string[]): Promise<string[]> => {
      const left: string[] = [];
      for (const taskId of ids) {
        const nodeId = await reserveOne(taskId, eligible);
        if (nodeId === null) left.push(taskId);
        else if (nodeId !== undefined) {
          placed++;
          starts.set(nodeId, [...(starts.get(nodeId) ?? []), taskId]);
        }
      }
      return left;
    };
    let waiting: string[];
    try {
      eligible = filterNodes(nodes, d.constraints, new Set(groupCounts.keys()));
      waiting = await reserveAll(taskIds);
      // "No room" is decided on a recent view: a task may have stopped since this one was loaded.
      if (waiting.length > 0 && !nodeCache.loadedWithin(NO_ROOM_VIEW_MS)) {
        eligible = filterNodes(await nodeCache.reload(), d.constraints, new Set(groupCounts.keys()));
        waiting = await reserveAll(waiting);
      }
    } catch (err) {
      if (!(err instanceof ConstraintError)) throw err;
      await stopAll(o.redis, taskIds, `ResourceInitializationError: ${err.message}`);
      return { outcome: { result: 'failed', count: taskIds.length }, starts };
    }
    if (waiting.length === 0) return { outcome: { result: 'placed', count: placed, createdAt: d.createdAt }, starts };

    // No room now for some. The job may carry the demand of tasks stopped or placed meanwhile: look before waiting.
    const statuses = await Promise.all(waiting.map((id) => o.redis.hmget(keys.task(id), 'lastStatus', 'desiredStatus')));
    const stillWaiting = waiting.filter((_, i) => statuses[i]![0] === 'PROVISIONING' && statuses[i]![1] === 'RUNNING');
    if (stillWaiting.length === 0) return { outcome: { result: placed > 0 ? 'placed' : 'skipped', count: Math.max(1, placed), createdAt: d.createdAt }, starts };
    if (Date.now() - Date.parse(d.createdAt) >= o.placementDeadlineMs) {
      const seconds = Math.round(o.placementDeadlineMs / 1000);
      const reason = eligible.length === 0
        ? `ResourceInitializationError: no node matched the placement constraints within ${seconds} s`
        : `ResourceInitializationError: no node had ${shortResource(eligible, demand)} free within ${seconds} s`;
      await stopAll(o.redis, stillWaiting, reason);
      o.logger.warn({ taskIds: stillWaiting }, reason);
      return { outcome: { result: 'failed', count: stillWaiting.length }, starts };
    }
    return {
      outcome: placed > 0 ? { result: 'placed', count: placed, createdAt: d.createdAt } : { result: 'skipped', count: 0 },
      starts,
      retry: { ...run, taskIds: stillWaiting },
    };

    /**
     * Reserves room for one task on the best node that has it: the node's id,
     * null when no node has room, undefined when the task needs no placing.
     */
    async function reserveOne(taskId: string, among: NodeRecord[]): Promise<string | null | undefined> {
      const exclude = distinct ? new Set(groupCounts.keys()) : undefined;
      const fitting = among.filter((n) => fits(n, demand) && !exclude?.has(n.nodeId));
      for (const node of candidates(fitting, strategy, groupCounts)) {
        const code = await o.redis.reserveCapacity(
          keys.node(node.nodeId), keys.task(taskId), keys.nodeTasks(node.nodeId), groupKey,
          node.nodeId, demand.cpu, demand.memory, taskId, distinct ? '1' : '0',
        );
        if (code === 1) {
          nodeCache.reserved(node.nodeId, demand.cpu, demand.memory);
          groupCounts.set(node.nodeId, (groupCounts.get(node.nodeId) ?? 0) + 1);
          return node.nodeId;
        }
        if (code === -1) {
          // Stopped or placed meanwhile, or reserved by an attempt that died before the hand-over.
          await resumeHandOver(nodeQueue, await getTask(o.redis, taskId));
          return undefined;
        }
        nodeCache.invalidate();
        // -2..-5: another replica took the capacity (or the node, for the group) first; try the next node.
      }
      return null;
    }
  }

  /**
   * Places the job's runs (side by side: they are independent), hands the
   * reserved tasks to their nodes' queues, and puts the job back, delayed, with
   * only the tasks that found no room and may still wait.
   */
  return async function place(job: Job<PlacementJob>, token?: string): Promise<PlacementAttempt> {
    const { moreRuns, ...first } = job.data;
    const settled = await Promise.allSettled([first, ...(moreRuns ?? [])].map(placeRun));
    const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const starts = new Map<string, string[]>();
    for (const r of results) for (const [nodeId, ids] of r.starts) starts.set(nodeId, [...(starts.get(nodeId) ?? []), ...ids]);
    await Promise.all([...starts].map(([nodeId, ids]) => enqueueStarts(nodeQueue(nodeId), ids)));
    if (starts.size > 0) o.logger.debug({ taskIds: [...starts.values()].flat(), nodes: [...starts.keys()] }, 'tasks placed');
    // A run that failed (Redis went away) fails the job, which BullMQ tries again: the runs placed by now are skipped then.
    const failure = settled.find((r) => r.status === 'rejected');
    if (failure) throw failure.reason;

    const outcomes = results.map((r) => r.outcome);
    const retries = results.flatMap((r) => (r.retry ? [r.retry] : []));
    if (retries.length === 0) return { outcomes, delayed: false };
    const [next, ...rest] = retries as [PlacementRun, ...PlacementRun[]];
    await job.updateData({ ...next, ...(rest.length > 0 ? { moreRuns: rest } : {}) });
    await job.moveToDelayed(Date.now() + o.retryDelayMs, token);
    return { outcomes, delayed: true };
  };
}

async function stopAll(redis: BerthRedis, taskIds: string[], stoppedReason: string): Promise<void> {
  const stoppedAt = new Date().toISOString();
  for (const taskId of taskIds) await transitionTask(redis, taskId, 'STOPPED', { stopCode: 'TaskFailedToStart', stoppedReason, stoppedAt });
}
