// Node liveness: a node whose heartbeat is older than the grace period is LOST;
// its tasks are STOPPED with NodeLost and their reservations released (by the
// transition script). Every scheduler replica may sweep; each step is idempotent.
// A sweep reads only the overdue nodes of the heartbeat set, not every node.
import { keys } from '../../common/keys.ts';
import { getNode, listNodes } from '../../common/nodes.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { transitionTask } from '../../common/tasks.ts';
import type { Logger } from '../../common/log.ts';

export async function sweepLostNodes(redis: BerthRedis, graceMs: number, logger: Logger, now = Date.now()): Promise<string[]> {
  const lost: string[] = [];
  for (const nodeId of await redis.zrangebyscore(keys.nodeHeartbeats(), '-inf', now - graceMs - 1)) {
    const node = await getNode(redis, nodeId);
    // Lost already, or gone: out of the set until its agent registers or beats again.
    if (!node || node.status === 'LOST') {
      await redis.zrem(keys.nodeHeartbeats(), nodeId);
      continue;
    }
    const silentMs = now - Date.parse(node.heartbeatAt);
    if (silentMs <= graceMs) continue;
    await redis.multi().hset(keys.node(nodeId), 'status', 'LOST').zrem(keys.nodeHeartbeats(), nodeId).exec();
    lost.push(nodeId);
    const reason = `NodeLost: node ${nodeId} sent no heartbeat for ${Math.round(silentMs / 1000)} s`;
    logger.warn({ nodeId }, reason);
    for (const taskId of await redis.smembers(keys.nodeTasks(nodeId))) {
      await transitionTask(redis, taskId, 'STOPPED', { stopCode: 'NodeLost', stoppedReason: reason, stoppedAt: new Date(now).toISOString() });
    }
  }
  return lost;
}

/** Puts nodes registered before the heartbeat set existed into it (a scheduler does this once, at start). */
export async function indexHeartbeats(redis: BerthRedis): Promise<void> {
  const pipeline = redis.pipeline();
  for (const node of await listNodes(redis)) {
    if (node.status !== 'LOST') pipeline.zadd(keys.nodeHeartbeats(), 'NX', Date.parse(node.heartbeatAt) || 0, node.nodeId);
  }
  await pipeline.exec();
}
