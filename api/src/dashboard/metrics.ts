// Cluster gauges on the API's /metrics, read from Redis at scrape time: each
// node's capacity, reservations, status and task count, and each function's
// instances by state. Series are rebuilt on every scrape, so a node or a
// function that is gone leaves none behind. (Per-task series come from the
// agents, which remove them when a task stops; per-invocation series from the
// function gateway, api/src/gateway/metrics.ts.) With several API workers
// (api/src/workers.ts) every worker reads the same values: the first is kept.
import { Gauge, type Registry } from 'prom-client';
import { keys } from '../../../common/keys.ts';
import { listNodes } from '../../../common/nodes.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { NodeRecord } from '../../../common/types.ts';

const STATUSES = ['ACTIVE', 'DRAINING', 'LOST'] as const;
const MIB = 2 ** 20;
/** A scrape never waits longer than this for Redis. */
const READ_TIMEOUT_MS = 2000;

interface FunctionInstances {
  /** `<tenant>/<name>`, as the gateway's series label functions. */
  id: string;
  ready: number;
  starting: number;
  draining: number;
  inFlight: number;
}

interface Snapshot {
  nodes: NodeRecord[];
  tasks: number[];
  functions: FunctionInstances[];
}

/** At most this many functions get series (the set is walked in one SMEMBERS). */
const MAX_FUNCTIONS = 10_000;

async function readFunctions(redis: BerthRedis): Promise<FunctionInstances[]> {
  const ids = (await redis.smembers(keys.functions())).sort().slice(0, MAX_FUNCTIONS);
  const named = ids.map((id) => ({ id, tenant: id.slice(0, id.indexOf('/')), name: id.slice(id.indexOf('/') + 1) }))
    .filter((f) => f.tenant && f.name);
  if (named.length === 0) return [];
  const pipe = redis.pipeline();
  for (const f of named) {
    pipe.scard(keys.fnLive(f.tenant, f.name)); // set
    pipe.zcard(keys.fnReady(f.tenant, f.name)); // sorted set, score = requests in flight
    pipe.scard(keys.fnDraining(f.tenant, f.name)); // set
    pipe.hvals(keys.fnInflight(f.tenant, f.name)); // instance -> requests in flight
  }
  const replies = ((await pipe.exec()) ?? []).map(([err, v]) => (err ? null : v));
  return named.map((f, i) => {
    const [live, ready, draining, inflight] = replies.slice(i * 4, i * 4 + 4);
    const n = (v: unknown) => (typeof v === 'number' ? v : 0);
    const inFlight = Array.isArray(inflight) ? inflight.reduce((sum: number, v) => sum + Math.max(0, Number(v) || 0), 0) : 0;
    return { id: f.id, ready: n(ready), starting: Math.max(0, n(live) - n(ready)), draining: n(draining), inFlight };
  });
}

export function installClusterMetrics(registry: Registry, redis: BerthRedis): void {
  if (registry.getSingleMetric('berth_node_cpu_capacity_units')) return;
  let pending: Promise<Snapshot | null> | undefined;

  // One Redis read per scrape, shared by every gauge's collect().
  const snapshot = (): Promise<Snapshot | null> => {
    pending ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const read = (async () => {
        const nodes = await listNodes(redis);
        const pipe = redis.pipeline();
        for (const n of nodes) pipe.scard(keys.nodeTasks(n.nodeId));
        const counts = (await pipe.exec()) ?? [];
        return { nodes, tasks: counts.map(([, n]) => Number(n ?? 0)), functions: await readFunctions(redis) };
      })();
      try {
        return await Promise.race([read, new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), READ_TIMEOUT_MS); })]);
      } catch {
        return null;
      } finally {
        clearTimeout(timer);
        setImmediate(() => { pending = undefined; });
      }
    })();
    return pending;
  };

  const nodeGauge = (name: string, help: string, value: (n: NodeRecord, i: number, s: Snapshot) => number) => new Gauge({
    name, help, labelNames: ['node_id'], registers: [registry], aggregator: 'first',
    async collect() {
      this.reset();
      const s = await snapshot();
      s?.nodes.forEach((n, i) => this.set({ node_id: n.nodeId }, value(n, i, s)));
    },
  });

  nodeGauge('berth_node_cpu_capacity_units', 'CPU units (1024 = one vCPU) the node offers', (n) => n.cpuTotal);
  nodeGauge('berth_node_cpu_reserved_units', 'CPU units reserved by the tasks placed on the node', (n) => n.cpuReserved);
  nodeGauge('berth_node_memory_capacity_bytes', 'Memory the node offers to tasks', (n) => n.memoryTotal * MIB);
  nodeGauge('berth_node_memory_reserved_bytes', 'Memory reserved by the tasks placed on the node', (n) => n.memoryReserved * MIB);
  nodeGauge('berth_node_tasks', 'Tasks placed on the node and not yet stopped', (_n, i, s) => s.tasks[i] ?? 0);
  new Gauge({
    name: 'berth_function_instances', help: 'Instances of a function, by state (starting, ready, draining)',
    labelNames: ['function', 'state'], registers: [registry], aggregator: 'first',
    async collect() {
      this.reset();
      for (const f of (await snapshot())?.functions ?? []) {
        this.set({ function: f.id, state: 'starting' }, f.starting);
        this.set({ function: f.id, state: 'ready' }, f.ready);
        this.set({ function: f.id, state: 'draining' }, f.draining);
      }
    },
  });
  new Gauge({
    name: 'berth_function_requests_in_flight', help: 'Requests a function\'s instances are serving now',
    labelNames: ['function'], registers: [registry], aggregator: 'first',
    async collect() {
      this.reset();
      for (const f of (await snapshot())?.functions ?? []) this.set({ function: f.id }, f.inFlight);
    },
  });
  new Gauge({
    name: 'berth_node_status', help: 'The node\'s status: 1 for the one it has, 0 for the others',
    labelNames: ['node_id', 'status'], registers: [registry], aggregator: 'first',
    async collect() {
      this.reset();
      const s = await snapshot();
      for (const n of s?.nodes ?? []) {
        for (const status of STATUSES) this.set({ node_id: n.nodeId, status }, n.status === status ? 1 : 0);
      }
    },
  });
}
