// The scheduler daemon's parts: the placement worker and the liveness sweep.
import { Worker } from 'bullmq';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import { connectRedis } from '../../common/redis.ts';
import type { Logger } from '../../common/log.ts';
import type { PlacementJob } from '../../common/types.ts';
import { sweepLostNodes } from './liveness.ts';
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
}

export interface Scheduler {
  close(): Promise<void>;
}

export async function startScheduler(o: SchedulerOptions): Promise<Scheduler> {
  const redis = connectRedis(o.redisUrl);
  const workerConnection = connectRedis(o.redisUrl);
  const nodeQueues = nodeQueueCache(redis);
  const graceMs = o.nodeGraceMs ?? 10_000;
  const processor = createPlacementProcessor(
    { redis, logger: o.logger, placementDeadlineMs: o.placementDeadlineMs ?? 600_000, retryDelayMs: o.retryDelayMs ?? 500 },
    nodeQueues.get,
  );
  const worker = new Worker<PlacementJob>(queues.placement, processor, {
    connection: workerConnection,
    prefix: BULLMQ_PREFIX,
    concurrency: o.concurrency ?? 16,
  });
  worker.on('failed', (job, err) => o.logger.error({ taskId: job?.data.taskId, err: err.message }, 'placement failed'));
  worker.on('error', (err) => o.logger.error({ err: err.message }, 'placement worker error'));

  const sweep = setInterval(() => {
    sweepLostNodes(redis, graceMs, o.logger).catch((err: Error) => o.logger.error({ err: err.message }, 'liveness sweep failed'));
  }, Math.max(250, Math.min(1000, graceMs / 4)));

  o.logger.info({ concurrency: o.concurrency ?? 16 }, 'scheduler started');
  return {
    async close() {
      clearInterval(sweep);
      await worker.close();
      await nodeQueues.close();
      redis.disconnect();
      workerConnection.disconnect();
    },
  };
}
