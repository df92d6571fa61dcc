// A recent view of the nodes, refreshed in the background, so a placement does
// not read every node from Redis nor wait while the view is reloaded. The view
// may be stale: that is safe, because reserve-capacity-4.lua re-checks the real
// numbers and refuses when they no longer fit (the optimistic approach Nomad's
// workers take); a refusal asks for a reload. Stale the other way (a node freed
// room since), it is reloaded before a placement says no node has room.
import { listNodes } from '../../common/nodes.ts';
import type { BerthRedis } from '../../common/redis.ts';
import type { NodeRecord } from '../../common/types.ts';

export class NodeCache {
  private nodes: NodeRecord[] = [];
  private loadedAt = 0;
  private loading: Promise<NodeRecord[]> | undefined;

  constructor(private readonly redis: BerthRedis, private readonly maxAgeMs: number) {}

  /**
   * The view; only the first call waits for a load. A view older than maxAgeMs
   * is returned as it is while one reload runs in the background.
   */
  async get(): Promise<NodeRecord[]> {
    if (this.loadedAt === 0) return this.reload();
    if (Date.now() - this.loadedAt > this.maxAgeMs) void this.reload().catch(() => undefined);
    return this.nodes;
  }

  /** Loads the view now (one load at a time: callers meanwhile share it). */
  reload(): Promise<NodeRecord[]> {
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

  /** True when the view was loaded within the last `maxAgeMs` and not invalidated since. */
  loadedWithin(maxAgeMs: number): boolean {
    return Date.now() - this.loadedAt <= maxAgeMs;
  }

  /** Asks for a fresh view, e.g. after the script said a node no longer fits. */
  invalidate(): void {
    if (this.loadedAt !== 0) this.loadedAt = 1;
  }
}
