// Where the API hands work on: the placement queue (the scheduler) and each
// node's queue (its agent), both BullMQ, named in common/keys.ts.
import { Queue } from 'bullmq';
import { BULLMQ_PREFIX, queues } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { saveNewTasks } from '../../common/tasks.ts';
import type { NodeJob, PlacementJob, TaskRecord } from '../../common/types.ts';

export interface TaskQueues {
  /**
   * 'place' jobs, jobId = the (first) task's id; the API's carry a run's tasks and their demand.
   * `newTasks`, the records of tasks not yet saved, are saved first.
   */
  place(jobs: PlacementJob[], newTasks?: TaskRecord[]): Promise<void>;
  /** A 'stop' job on the node's queue. */
  stop(nodeId: string, taskId: string, reason: string): Promise<void>;
  close(): Promise<void>;
}

export function bullTaskQueues(connection: BerthRedis): TaskQueues {
  const placement = new Queue<PlacementJob>(queues.placement, { connection, prefix: BULLMQ_PREFIX });
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
    async place(jobs, newTasks = []) {
      // Sent back to back on one connection, Redis runs the two in that order (a
      // job never exists before its tasks), and both take one round trip.
      const saved = newTasks.length > 0 ? saveNewTasks(connection, newTasks) : undefined;
      const added = placement.addBulk(jobs.map((data) => ({
        name: 'place',
        data,
        opts: { jobId: data.taskId, removeOnComplete: true, removeOnFail: 1000 },
      })));
      await Promise.all([saved, added]);
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
