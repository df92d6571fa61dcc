// Node liveness: a node whose heartbeat is older than the grace period is LOST;
// its tasks are STOPPED with NodeLost and their reservations released (by the
// transition script). Every scheduler replica may sweep; each step is idempotent.
import { keys } from '../../common/keys.ts';
import { listNodes } from '../../common/nodes.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { transitionTask } from '../../common/tasks.ts';
import type { Logger } from '../../common/log.ts';

export async function sweepLostNodes(redis: BerthRedis, graceMs: number, logger: Logger, now = Date.now()): Promise<string[]> {
  const lost: string[] = [];
  for (const node of await listNodes(redis)) {
    if (node.status === 'LOST') continue;
    const silentMs = now - Date.parse(node.heartbeatAt);
    if (silentMs <= graceMs) continue;
    await redis.hset(keys.node(node.nodeId), 'status', 'LOST');
    lost.push(node.nodeId);
    const reason = `NodeLost: node ${node.nodeId} sent no heartbeat for ${Math.round(silentMs / 1000)} s`;
    logger.warn({ nodeId: node.nodeId }, reason);
    for (const taskId of await redis.smembers(keys.nodeTasks(node.nodeId))) {
      await transitionTask(redis, taskId, 'STOPPED', { stopCode: 'NodeLost', stoppedReason: reason, stoppedAt: new Date(now).toISOString() });
    }
  }
  return lost;
}
