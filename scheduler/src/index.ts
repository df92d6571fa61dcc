// The scheduler daemon's parts: the placement worker and the liveness sweep.
import { Queue } from 'bullmq';
import { InvalidationListener } from '../../common/invalidations.ts';
import { BULLMQ_PREFIX, CAPACITY_FREED_CHANNEL, queues } from '../../common/keys.ts';
import { closeRedis, connectRedis } from '../../common/redis.ts';
import type { Logger } from '../../common/log.ts';
import type { PlacementJob } from '../../common/types.ts';
import { indexHeartbeats, sweepLostNodes } from './liveness.ts';
import { autoscalerOptionsFromEnv, startAutoscaler, type AutoscalerOptions } from './autoscaler.ts';
import { startConsumer } from './consumer.ts';
import { createSchedulerMetrics, serveMetrics } from './metrics.ts';
import { NodeCache } from './node-cache.ts';
import { createPlacementProcessor, nodeQueueCache } from './placement.ts';

export interface SchedulerOptions {
  redisUrl: string;
  logger: Logger;
  /** Placement jobs one replica works on at once. */
  concurrency?: number;
  /** @defaultValue 10 minutes */
  placementDeadlineMs?: number;
  /** How soon tasks that found no room look again, unless a task stops first. @defaultValue 500 ms */
  retryDelayMs?: number;
  /** A node silent for longer is LOST. @defaultValue 10 s (Nomad's) */
  nodeGraceMs?: number;
  /** How stale the view of the nodes used to pick candidates may be. @defaultValue 1000 ms */
  nodeCacheMs?: number;
  /** host:port of /healthz and /metrics (port 0: a free one); no HTTP server without it. */
  http?: { host: string; port: number };
  /** The function autoscaler's windows and tick; BERTH_FN_* from the environment by default. */
  autoscaler?: Partial<AutoscalerOptions>;
}

export interface Scheduler {
  /** Where /healthz and /metrics answer, when `http` was given. */
  address?: string;
  close(): Promise<void>;
}

/** The least time between two retries of the placements waiting for room that stops trigger. */
const RETRY_SPACING_MS = 100;

/**
 * `task` run on demand, runs started at least `spacingMs` apart: demands
 * while a run is due are covered by it.
 */
function spaced(spacingMs: number, task: () => void): { run(): void; stop(): void } {
  let due: NodeJS.Timeout | undefined;
  let lastStart = -Infinity;
  return {
    run() {
      due ??= setTimeout(() => {
        due = undefined;
        lastStart = Date.now();
        task();
      }, Math.max(0, lastStart + spacingMs - Date.now()));
    },
    stop() {
      clearTimeout(due);
    },
  };
}

export async function startScheduler(o: SchedulerOptions): Promise<Scheduler> {
  const redis = connectRedis(o.redisUrl);
  const workerConnection = connectRedis(o.redisUrl);
  const nodeQueues = nodeQueueCache(redis);
  const graceMs = o.nodeGraceMs ?? 10_000;
  const metrics = createSchedulerMetrics({ redis });
  const nodeCacheMs = o.nodeCacheMs ?? 1000;
  const nodeCache = new NodeCache(redis, nodeCacheMs);
  const processor = metrics.instrument(createPlacementProcessor(
    {
      redis, logger: o.logger, placementDeadlineMs: o.placementDeadlineMs ?? 600_000,
      retryDelayMs: o.retryDelayMs ?? 500, nodeCacheMs,
    },
    nodeQueues.get,
    nodeCache,
  ));
  // A task stopped and freed room on its node: the view of the nodes is stale (a placement that finds
  // no room reloads it), and the placements waiting (delayed) for room go again now instead of at
  // their next retry. Stops in a burst make one retry.
  const placementQueue = new Queue(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
  const retryWaiting = spaced(RETRY_SPACING_MS, () => {
    placementQueue.promoteJobs().catch((err: Error) => o.logger.warn({ err: err.message }, 'retrying the placements waiting for room failed'));
  });
  const capacityFreed = new InvalidationListener(redis, CAPACITY_FREED_CHANNEL, {
    changed: () => {
      nodeCache.invalidate();
      retryWaiting.run();
    },
    subscribed: () => undefined,
    onError: (err) => o.logger.warn({ err: err.message }, 'capacity-freed subscription error'),
  });
  const consumer = await startConsumer<PlacementJob>({
    queue: queues.placement,
    prefix: BULLMQ_PREFIX,
    connection: workerConnection,
    concurrency: o.concurrency ?? 16,
    process: processor,
    onFailed: (job, err) => o.logger.error({ taskId: job.data.taskId, err: err.message }, 'placement failed'),
    onError: (err) => o.logger.error({ err: err.message }, 'placement worker error'),
  });

  await indexHeartbeats(redis);
  const autoscaler = startAutoscaler({ redis, logger: o.logger, nodeQueues: nodeQueues.get }, { ...autoscalerOptionsFromEnv(), ...o.autoscaler });
  const sweep = setInterval(() => {
    sweepLostNodes(redis, graceMs, o.logger).then((lost) => metrics.nodesLost(lost.length)).catch((err: Error) => o.logger.error({ err: err.message }, 'liveness sweep failed'));
  }, Math.max(250, Math.min(1000, graceMs / 4)));

  const server = o.http ? await serveMetrics(o.http, metrics.registry, o.logger) : undefined;
  o.logger.info({ concurrency: o.concurrency ?? 16, address: server?.address }, 'scheduler started');
  return {
    address: server?.address,
    async close() {
      clearInterval(sweep);
      capacityFreed.close();
      retryWaiting.stop();
      await placementQueue.close();
      await autoscaler.close();
      await server?.close();
      await consumer.close();
      await nodeQueues.close();
      await metrics.close();
      await Promise.all([closeRedis(redis), closeRedis(workerConnection)]);
    },
  };
}
