// The node store: node records in Redis hashes (flat fields, labels as JSON).
import { keys } from './keys.ts';
import type { ChainableCommander } from 'ioredis';
import type { BerthRedis } from './redis.ts';
import type { NodeRecord } from './types.ts';

const NUMBER_FIELDS = ['cpuTotal', 'memoryTotal', 'cpuReserved', 'memoryReserved'] as const;

export function decodeNode(hash: Record<string, string>): NodeRecord | null {
  if (!hash.nodeId) return null;
  const node = { ...hash, labels: JSON.parse(hash.labels ?? '{}') } as unknown as NodeRecord;
  for (const f of NUMBER_FIELDS) (node as unknown as Record<string, number>)[f] = Number(hash[f] ?? 0);
  return node;
}

export async function getNode(redis: BerthRedis, nodeId: string): Promise<NodeRecord | null> {
  return decodeNode(await redis.hgetall(keys.node(nodeId)));
}

/** Nodes read per round trip: a thousand answers parsed at once would hold the event loop for milliseconds. */
const LIST_CHUNK = 200;

/** Every registered node, a pipelined round trip per LIST_CHUNK nodes after the id list. */
export async function listNodes(redis: BerthRedis): Promise<NodeRecord[]> {
  const ids = await redis.smembers(keys.nodes());
  const nodes: NodeRecord[] = [];
  for (let i = 0; i < ids.length; i += LIST_CHUNK) {
    const pipeline = redis.pipeline();
    for (const id of ids.slice(i, i + LIST_CHUNK)) pipeline.hgetall(keys.node(id));
    for (const [, hash] of (await pipeline.exec()) ?? []) {
      const node = decodeNode(hash as Record<string, string>);
      if (node) nodes.push(node);
    }
  }
  return nodes;
}

/** Queues a heartbeat of the node at `at` on a MULTI or pipeline: its record's heartbeatAt and its score in the set the liveness sweep reads. */
export function queueHeartbeat(commands: ChainableCommander, nodeId: string, at = new Date()): ChainableCommander {
  return commands.hset(keys.node(nodeId), 'heartbeatAt', at.toISOString()).zadd(keys.nodeHeartbeats(), at.getTime(), nodeId);
}

/**
 * Registers a node or refreshes its capacity, keeping what is reserved on it.
 * A node coming back after being LOST becomes ACTIVE again; a DRAINING one stays so.
 */
export async function registerNode(
  redis: BerthRedis,
  node: Pick<NodeRecord, 'nodeId' | 'address' | 'cpuTotal' | 'memoryTotal' | 'labels'>,
): Promise<void> {
  const at = new Date();
  const now = at.toISOString();
  const key = keys.node(node.nodeId);
  const status = (await redis.hget(key, 'status')) === 'DRAINING' ? 'DRAINING' : 'ACTIVE';
  await queueHeartbeat(redis.multi(), node.nodeId, at)
    .hsetnx(key, 'cpuReserved', '0')
    .hsetnx(key, 'memoryReserved', '0')
    .hsetnx(key, 'registeredAt', now)
    .hset(key, 'nodeId', node.nodeId, 'address', node.address, 'status', status,
      'cpuTotal', String(node.cpuTotal), 'memoryTotal', String(node.memoryTotal),
      'labels', JSON.stringify(node.labels))
    .sadd(keys.nodes(), node.nodeId)
    .exec();
}
