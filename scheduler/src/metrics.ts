// The scheduler's /metrics and /healthz: placement attempts by result, how
// long an attempt takes and how long a task waited to be placed, nodes found
// lost, and the placement queue's depth (read from Redis at scrape time).
import http from 'node:http';
import { DelayedError, Queue, type Job } from 'bullmq';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import type { Logger } from '../../common/log.ts';
import type { BerthRedis } from '../../common/redis.ts';
import type { PlacementJob } from '../../common/types.ts';

/** What one run of the placement processor came to. */
export type PlacementResult = 'placed' | 'no_capacity' | 'failed' | 'skipped' | 'error';

/** What the placement processor tells about a run that did not throw. */
export interface PlacementOutcome {
  result: 'placed' | 'failed' | 'skipped';
  /** How many tasks came to that (a job may carry several tasks of one run). */
  count: number;
  /** The tasks' creation time, when they were placed. */
  createdAt?: string;
}

/** One run of the placement processor: what came of each run of tasks in the job. */
export interface PlacementAttempt {
  outcomes: PlacementOutcome[];
  /** Some tasks found no room and the job was moved to delayed, to try again. */
  delayed: boolean;
}

type Processor = (job: Job<PlacementJob>, token?: string) => Promise<PlacementAttempt>;

export interface SchedulerMetrics {
  registry: Registry;
  /** The processor, timed and counted by result. */
  instrument(processor: Processor): (job: Job<PlacementJob>, token?: string) => Promise<void>;
  nodesLost(count: number): void;
  close(): Promise<void>;
}

const QUEUE_STATES = ['waiting', 'delayed', 'active', 'failed'] as const;

export function createSchedulerMetrics(o: { redis: BerthRedis }): SchedulerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const attempts = new Counter({
    name: 'berth_scheduler_placement_attempts_total',
    help: 'Runs of the placement worker, by result (no_capacity: retried shortly)',
    labelNames: ['result'], registers: [registry],
  });
  const attemptSeconds = new Histogram({
    name: 'berth_scheduler_placement_attempt_duration_seconds',
    help: 'Time one placement attempt took',
    labelNames: ['result'], registers: [registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const waitSeconds = new Histogram({
    name: 'berth_scheduler_placement_latency_seconds',
    help: 'Time from a task\'s creation to its placement on a node',
    registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600],
  });
  const lost = new Counter({
    name: 'berth_scheduler_nodes_lost_total',
    help: 'Nodes this replica declared LOST after a silent grace period',
    registers: [registry],
  });
  for (const r of ['placed', 'no_capacity', 'failed', 'skipped', 'error'] as const) attempts.inc({ result: r }, 0);

  const placementQueue = new Queue<PlacementJob>(queues.placement, { connection: o.redis, prefix: BULLMQ_PREFIX });
  new Gauge({
    name: 'berth_scheduler_placement_queue_jobs',
    help: 'Jobs in the placement queue, by state',
    labelNames: ['state'], registers: [registry],
    async collect() {
      const counts = await placementQueue.getJobCounts(...QUEUE_STATES).catch(() => undefined);
      if (!counts) return;
      for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });

  return {
    registry,
    instrument(processor) {
      return async (job, token) => {
        const started = process.hrtime.bigint();
        let attempt: PlacementAttempt;
        try {
          attempt = await processor(job, token);
        } catch (err) {
          attempts.inc({ result: 'error' });
          attemptSeconds.observe({ result: 'error' }, Number(process.hrtime.bigint() - started) / 1e9);
          throw err;
        }
        for (const { result, count, createdAt } of attempt.outcomes) {
          if (count > 0) attempts.inc({ result }, count);
          if (result === 'placed' && createdAt) {
            const waited = (Date.now() - Date.parse(createdAt)) / 1000;
            if (Number.isFinite(waited) && waited >= 0) for (let i = 0; i < count; i++) waitSeconds.observe(waited);
          }
        }
        if (attempt.delayed) attempts.inc({ result: 'no_capacity' });
        const result: PlacementResult = attempt.delayed ? 'no_capacity' : attempt.outcomes[0]?.result ?? 'skipped';
        attemptSeconds.observe({ result }, Number(process.hrtime.bigint() - started) / 1e9);
        if (attempt.delayed) throw new DelayedError();
      };
    },
    nodesLost(count) {
      if (count > 0) lost.inc(count);
    },
    async close() {
      await placementQueue.close();
    },
  };
}

export interface MetricsServer {
  /** host:port it listens on. */
  address: string;
  close(): Promise<void>;
}

/** /healthz and /metrics on `listen` (port 0: a free one). */
export async function serveMetrics(listen: { host: string; port: number }, registry: Registry, logger: Logger): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'application/json', allow: 'GET, HEAD' })
        .end('{"error":{"code":"METHOD_NOT_ALLOWED","message":"Method not allowed on this route"}}');
    } else if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (url === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (err: Error) => {
          logger.warn({ err: err.message }, 'metrics failed');
          res.writeHead(500).end();
        },
      );
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"No such route"}}');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as { address: string; port: number };
  return {
    address: `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
