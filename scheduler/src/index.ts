// The scheduler daemon's parts: the placement worker and the liveness sweep.
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import { closeRedis, connectRedis } from '../../common/redis.ts';
import type { Logger } from '../../common/log.ts';
import type { PlacementJob } from '../../common/types.ts';
import { indexHeartbeats, sweepLostNodes } from './liveness.ts';
import { autoscalerOptionsFromEnv, startAutoscaler, type AutoscalerOptions } from './autoscaler.ts';
import { startConsumer } from './consumer.ts';
import { createSchedulerMetrics, serveMetrics } from './metrics.ts';
import { createPlacementProcessor, nodeQueueCache } from './placement.ts';

export interface SchedulerOptions {
  redisUrl: string;
  logger: Logger;
  /** Placement jobs one replica works on at once. */
  concurrency?: number;
  /** @defaultValue 10 minutes */
  placementDeadlineMs?: number;
  /** @defaultValue 500 ms */
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

export async function startScheduler(o: SchedulerOptions): Promise<Scheduler> {
  const redis = connectRedis(o.redisUrl);
  const workerConnection = connectRedis(o.redisUrl);
  const nodeQueues = nodeQueueCache(redis);
  const graceMs = o.nodeGraceMs ?? 10_000;
  const metrics = createSchedulerMetrics({ redis });
  const processor = metrics.instrument(createPlacementProcessor(
    {
      redis, logger: o.logger, placementDeadlineMs: o.placementDeadlineMs ?? 600_000,
      retryDelayMs: o.retryDelayMs ?? 500, nodeCacheMs: o.nodeCacheMs ?? 1000,
    },
    nodeQueues.get,
  ));
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
      await autoscaler.close();
      await server?.close();
      await consumer.close();
      await nodeQueues.close();
      await metrics.close();
      await Promise.all([closeRedis(redis), closeRedis(workerConnection)]);
    },
  };
}
