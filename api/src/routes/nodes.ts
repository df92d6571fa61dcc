// Nodes (admin only): list, describe, drain.
import { BerthError } from '../../../common/errors.ts';
import { keys } from '../../../common/keys.ts';
import { getNode, listNodes } from '../../../common/nodes.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { NodeRecord } from '../../../common/types.ts';
import type { Handlers, Params } from '../handlers.ts';
import { apiScripts } from '../scripts.ts';

function toApiNode(n: NodeRecord) {
  return Object.fromEntries(Object.entries(n).filter(([, v]) => v !== undefined));
}

export function nodeHandlers(deps: { redis: BerthRedis }): Handlers {
  const { redis } = deps;
  const scripts = apiScripts(redis);
  const find = async (nodeId: string) => {
    const node = await getNode(redis, nodeId);
    if (!node) throw new BerthError('NODE_NOT_FOUND', `No node ${nodeId}`);
    return node;
  };
  return {
    async listNodes() {
      const nodes = await listNodes(redis);
      return { nodes: nodes.sort((a, b) => a.nodeId.localeCompare(b.nodeId)).map(toApiNode) };
    },

    async describeNode(request) {
      const { nodeId } = request.params as Params<'describeNode'>;
      return toApiNode(await find(nodeId));
    },

    async drainNode(request) {
      const { nodeId } = request.params as Params<'drainNode'>;
      const code = await scripts.drainNode(keys.node(nodeId));
      if (code === -1) throw new BerthError('NODE_NOT_FOUND', `No node ${nodeId}`);
      request.log.info({ nodeId, drained: code === 1 }, 'node drain requested');
      return toApiNode(await find(nodeId));
    },
  };
}
