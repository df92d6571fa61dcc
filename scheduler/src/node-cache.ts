// A recent view of the nodes, refreshed in the background, so a placement does
// not read every node from Redis. The view may be stale: that is safe, because
// reserve-capacity-4.lua re-checks the real numbers and refuses when they no
// longer fit (the optimistic approach Nomad's workers take).
import { listNodes } from '../../common/nodes.ts';
import type { BerthRedis } from '../../common/redis.ts';
import type { NodeRecord } from '../../common/types.ts';

export class NodeCache {
  private nodes: NodeRecord[] = [];
  private loadedAt = 0;
  private loading: Promise<NodeRecord[]> | undefined;

  constructor(private readonly redis: BerthRedis, private readonly maxAgeMs: number) {}

  /** Nodes no older than maxAgeMs; at most one reload runs at a time. */
  async get(): Promise<NodeRecord[]> {
    if (Date.now() - this.loadedAt <= this.maxAgeMs) return this.nodes;
    this.loading ??= listNodes(this.redis)
      .then((nodes) => {
        this.nodes = nodes;
        this.loadedAt = Date.now();
        return nodes;
      })
      .finally(() => { this.loading = undefined; });
    return this.loading;
  }

  /** Counts a reservation this process just made, until the next reload. */
  reserved(nodeId: string, cpu: number, memory: number): void {
    const node = this.nodes.find((n) => n.nodeId === nodeId);
    if (node) {
      node.cpuReserved += cpu;
      node.memoryReserved += memory;
    }
  }

  /** Forgets the view, e.g. after the script said a node no longer fits. */
  invalidate(): void {
    this.loadedAt = 0;
  }
}
