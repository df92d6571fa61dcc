// The node store: node records in Redis hashes (flat fields, labels as JSON).
import { keys } from './keys.ts';
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

/** Every registered node, in one round trip after the id list. */
export async function listNodes(redis: BerthRedis): Promise<NodeRecord[]> {
  const ids = await redis.smembers(keys.nodes());
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hgetall(keys.node(id));
  const results = (await pipeline.exec()) ?? [];
  return results.map(([, hash]) => decodeNode(hash as Record<string, string>)).filter((n): n is NodeRecord => n !== null);
}

/**
 * Registers a node or refreshes its capacity, keeping what is reserved on it.
 * A node coming back after being LOST becomes ACTIVE again; a DRAINING one stays so.
 */
export async function registerNode(
  redis: BerthRedis,
  node: Pick<NodeRecord, 'nodeId' | 'address' | 'cpuTotal' | 'memoryTotal' | 'labels'>,
): Promise<void> {
  const now = new Date().toISOString();
  const key = keys.node(node.nodeId);
  const status = (await redis.hget(key, 'status')) === 'DRAINING' ? 'DRAINING' : 'ACTIVE';
  await redis
    .multi()
    .hsetnx(key, 'cpuReserved', '0')
    .hsetnx(key, 'memoryReserved', '0')
    .hsetnx(key, 'registeredAt', now)
    .hset(key, 'nodeId', node.nodeId, 'address', node.address, 'status', status,
      'cpuTotal', String(node.cpuTotal), 'memoryTotal', String(node.memoryTotal),
      'labels', JSON.stringify(node.labels), 'heartbeatAt', now)
    .sadd(keys.nodes(), node.nodeId)
    .exec();
}
