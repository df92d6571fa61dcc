// Where the API hands work on: the placement queue (the scheduler) and each
// node's queue (its agent), both BullMQ, named in common/keys.ts.
import { Queue } from 'bullmq';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { saveNewTasks } from '../../common/tasks.ts';
import type { NodeJob, PlacementJob, PlacementRun, TaskRecord } from '../../common/types.ts';

export interface TaskQueues {
  /**
   * Queues runs for placement: 'place' jobs, jobId = the first run's (first)
   * task id; the API's runs carry their tasks and their demand. `newTasks`,
   * the records of tasks not yet saved, are saved first.
   */
  place(runs: PlacementRun[], newTasks?: TaskRecord[]): Promise<void>;
  /** A 'stop' job on the node's queue. */
  stop(nodeId: string, taskId: string, reason: string): Promise<void>;
  close(): Promise<void>;
}

/** Runs one placement job carries at most (as many as one `POST /v1/tasks` may start). */
const MAX_RUNS_PER_JOB = 100;
/** Tries of a placement job that failed (Redis went away); the runs placed by then are skipped on the next. */
const PLACEMENT_ATTEMPTS = 5;

export function bullTaskQueues(connection: BerthRedis): TaskQueues {
  const placement = new Queue<PlacementJob>(queues.placement, { connection, prefix: BULLMQ_PREFIX });

  // Runs handed over while the last ones are being queued wait, and then go
  // together, several to a job: at a steady rate every run has a job of its
  // own and nothing waits; in a burst the scheduler gets a few jobs instead of
  // one per run (in Redis, a job costs far more than a run in it).
  let sending: Promise<void> | undefined;
  let waiting: { runs: PlacementRun[]; newTasks: TaskRecord[]; callers: { resolve(): void; reject(err: unknown): void }[] } | undefined;
  const send = async (runs: PlacementRun[], newTasks: TaskRecord[]): Promise<void> => {
    // Sent back to back on one connection, Redis runs the two in that order (a
    // job never exists before its tasks), and both take one round trip.
    const saved = newTasks.length > 0 ? saveNewTasks(connection, newTasks) : undefined;
    const jobs: PlacementJob[] = [];
    for (let i = 0; i < runs.length; i += MAX_RUNS_PER_JOB) {
      const [first, ...more] = runs.slice(i, i + MAX_RUNS_PER_JOB) as [PlacementRun, ...PlacementRun[]];
      jobs.push(more.length > 0 ? { ...first, moreRuns: more } : first);
    }
    const added = placement.addBulk(jobs.map((data) => ({
      name: 'place',
      data,
      opts: { jobId: data.taskId, removeOnComplete: true, removeOnFail: 1000, attempts: PLACEMENT_ATTEMPTS, backoff: { type: 'exponential', delay: 200 } },
    })));
    await Promise.all([saved, added]);
  };
  const sendWaiting = () => {
    sending = undefined;
    const batch = waiting;
    if (!batch) return;
    waiting = undefined;
    sending = send(batch.runs, batch.newTasks).finally(sendWaiting);
    sending.then(() => { for (const c of batch.callers) c.resolve(); }, (err: unknown) => { for (const c of batch.callers) c.reject(err); });
  };

  const nodes = new Map<string, Queue<NodeJob>>();
  const nodeQueue = (nodeId: string) => {
    let q = nodes.get(nodeId);
    if (!q) {
      q = new Queue<NodeJob>(queues.node(nodeId), { connection, prefix: BULLMQ_PREFIX });
      nodes.set(nodeId, q);
    }
    return q;
  };
  return {
    place(runs, newTasks = []) {
      if (sending) {
        waiting ??= { runs: [], newTasks: [], callers: [] };
        const batch = waiting;
        batch.runs.push(...runs);
        batch.newTasks.push(...newTasks);
        return new Promise<void>((resolve, reject) => { batch.callers.push({ resolve, reject }); });
      }
      sending = send(runs, newTasks).finally(sendWaiting);
      return sending;
    },
    async stop(nodeId, taskId, reason) {
      await nodeQueue(nodeId).add('stop', { kind: 'stop', taskId, reason }, { removeOnComplete: true, removeOnFail: 1000 });
    },
    async close() {
      await Promise.all([placement.close(), ...[...nodes.values()].map((q) => q.close())]);
      nodes.clear();
    },
  };
}
