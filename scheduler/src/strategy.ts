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

type Compare = (a: NodeRecord, b: NodeRecord) => number;

/**
 * How the strategy ranks two nodes (negative: `a` first). `groupCounts` is how
 * many live tasks of the task's group each node runs: spread puts the next one
 * where the group has fewest (per node or per value of a node label).
 */
function comparator(nodes: NodeRecord[], strategy: PlacementStrategy, groupCounts: Map<string, number>): Compare | null {
  const byId: Compare = (a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0);
  switch (strategy.type) {
    case 'binpack': {
      // Least remaining of the field first, so nodes fill up one by one.
      const remaining = strategy.field === 'cpu'
        ? (n: NodeRecord) => n.cpuTotal - n.cpuReserved
        : (n: NodeRecord) => n.memoryTotal - n.memoryReserved;
      return (a, b) => remaining(a) - remaining(b) || byId(a, b);
    }
    case 'spread': {
      const label = strategy.field.startsWith('attribute:') ? strategy.field.slice('attribute:'.length) : undefined;
      const bucket = (n: NodeRecord) => (label === undefined ? n.nodeId : n.labels[label] ?? '');
      const perBucket = new Map<string, number>();
      for (const n of nodes) perBucket.set(bucket(n), (perBucket.get(bucket(n)) ?? 0) + (groupCounts.get(n.nodeId) ?? 0));
      const load = (n: NodeRecord) => perBucket.get(bucket(n)) ?? 0;
      // Fewest of the group first; then the emptier node, so unrelated load spreads too.
      return (a, b) => load(a) - load(b)
        || (b.memoryTotal - b.memoryReserved) - (a.memoryTotal - a.memoryReserved)
        || byId(a, b);
    }
    case 'random':
      return null;
  }
}

/** All the nodes, best first. */
export function orderNodes(
  nodes: NodeRecord[],
  strategy: PlacementStrategy,
  groupCounts: Map<string, number> = new Map(),
  random = Math.random,
): NodeRecord[] {
  const out = [...nodes];
  const compare = comparator(nodes, strategy, groupCounts);
  if (compare) return out.sort(compare);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The nodes in the strategy's order, lazily: the best one by a linear scan
 * (almost always the one that gets the task), the rest sorted only if needed.
 */
export function* candidates(
  nodes: NodeRecord[],
  strategy: PlacementStrategy,
  groupCounts: Map<string, number> = new Map(),
): Generator<NodeRecord> {
  if (nodes.length === 0) return;
  const compare = comparator(nodes, strategy, groupCounts);
  let best = nodes[Math.floor(Math.random() * nodes.length)]!;
  if (compare) for (const n of nodes) if (compare(n, best) < 0) best = n;
  yield best;
  yield* orderNodes(nodes.filter((n) => n !== best), strategy, groupCounts);
}
