// Orders candidate nodes for a task. Strategies are best effort (as ECS's):
// they only order the nodes that fit; constraints (issue-level work) filter them.
import type { NodeRecord, PlacementStrategy } from '../../common/types.ts';

export type { PlacementStrategy };

export const DEFAULT_STRATEGY: PlacementStrategy = { type: 'binpack', field: 'memory' };

export interface Demand {
  cpu: number;
  memory: number;
}

export function fits(node: NodeRecord, demand: Demand): boolean {
  return (
    node.status === 'ACTIVE' &&
    node.cpuReserved + demand.cpu <= node.cpuTotal &&
    node.memoryReserved + demand.memory <= node.memoryTotal
  );
}

/** Which resource no ACTIVE node has enough of, for the stop reason. */
export function shortResource(nodes: NodeRecord[], demand: Demand): string {
  const active = nodes.filter((n) => n.status === 'ACTIVE');
  if (active.length === 0) return 'no ACTIVE node';
  const cpu = active.some((n) => n.cpuReserved + demand.cpu <= n.cpuTotal);
  const memory = active.some((n) => n.memoryReserved + demand.memory <= n.memoryTotal);
  if (!cpu && !memory) return `CPU (${demand.cpu} units) and memory (${demand.memory} MiB)`;
  if (!cpu) return `CPU (${demand.cpu} units)`;
  if (!memory) return `memory (${demand.memory} MiB)`;
  return `CPU (${demand.cpu} units) and memory (${demand.memory} MiB) together on one node`;
}

/**
 * `groupCounts` is how many live tasks of the task's group each node runs:
 * spread puts the next one where the group has fewest (per node or per value
 * of a node label).
 */
export function orderNodes(
  nodes: NodeRecord[],
  strategy: PlacementStrategy,
  groupCounts: Map<string, number> = new Map(),
  random = Math.random,
): NodeRecord[] {
  const out = [...nodes];
  switch (strategy.type) {
    case 'binpack': {
      // Least remaining of the field first, so nodes fill up one by one.
      const remaining = strategy.field === 'cpu'
        ? (n: NodeRecord) => n.cpuTotal - n.cpuReserved
        : (n: NodeRecord) => n.memoryTotal - n.memoryReserved;
      return out.sort((a, b) => remaining(a) - remaining(b) || a.nodeId.localeCompare(b.nodeId));
    }
    case 'spread': {
      const label = strategy.field.startsWith('attribute:') ? strategy.field.slice('attribute:'.length) : undefined;
      const bucket = (n: NodeRecord) => (label === undefined ? n.nodeId : n.labels[label] ?? '');
      const perBucket = new Map<string, number>();
      for (const n of nodes) perBucket.set(bucket(n), (perBucket.get(bucket(n)) ?? 0) + (groupCounts.get(n.nodeId) ?? 0));
      const load = (n: NodeRecord) => perBucket.get(bucket(n)) ?? 0;
      // Fewest of the group first; then the emptier node, so unrelated load spreads too.
      return out.sort((a, b) => load(a) - load(b)
        || (b.memoryTotal - b.memoryReserved) - (a.memoryTotal - a.memoryReserved)
        || a.nodeId.localeCompare(b.nodeId));
    }
    case 'random': {
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    }
  }
}
