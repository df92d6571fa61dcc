// The function store and the instance routing table, shared by the API (deploy,
// gateway), the scheduler (autoscaler) and the agent (readiness, proxy).
//
// A function is a tenant's named, versioned config. Each instance of it is a
// task record (kind 'function') placed by the scheduler and started by an
// agent like any task; once its readiness check passes the agent makes it
// routable. Which instance has a free concurrency slot is decided by the Lua
// scripts common/lua/acquire-slot-6.lua and friends, over the keys below.
import { randomBytes } from 'node:crypto';
import { FUNCTION_EVENTS_CHANNEL, FUNCTIONS_CHANGED_CHANNEL, keys } from './keys.ts';
import type { BerthRedis } from './redis.ts';
import { getTask, placementDemand, saveNewTasks, transitionTask } from './tasks.ts';
import type { PlacementDemand, Schemas, TaskContainerSpec, TaskRecord } from './types.ts';

type FunctionInput = Schemas['FunctionInput'];

/** A function as deployed: the API's FunctionInput with its defaults filled. */
export type FunctionConfig =
  Pick<FunctionInput, 'name' | 'image' | 'command' | 'entryPoint' | 'repositoryCredentials'>
  & Required<Pick<FunctionInput, 'environment' | 'cpu' | 'memory' | 'timeout' | 'concurrency' | 'minInstances'
    | 'maxInstances' | 'idleTimeout' | 'port' | 'asyncRetries'>>
  & { readiness: { path?: string; timeout: number } };

export interface FunctionRecord {
  tenant: string;
  name: string;
  version: number;
  config: FunctionConfig;
  createdAt: string;
  updatedAt: string;
}

/** The fields an instance's task record carries besides a task's. */
export interface InstanceFields {
  kind: 'function';
  functionName: string;
  functionVersion: string;
  functionPort: string;
  /** JSON of FunctionConfig['readiness']. */
  functionReadiness: string;
}

export type InstanceRecord = TaskRecord & InstanceFields;

/** Where the gateway reaches a ready instance. */
export interface InstanceRoute {
  nodeId: string;
  /** host:port of the node agent's HTTP server (its /v1/proxy). */
  agent: string;
  ip: string;
  port: number;
  version: number;
  readyAt: string;
}

/** Headers between the gateway and the agents' /v1/proxy (the last two reach the caller too). */
export const PROXY_HEADERS = {
  /** The cluster's agent token, which the proxy requires. */
  agentToken: 'x-berth-agent-token',
  /** Set by the proxy when it could not reach the instance: the cause's code. */
  proxyError: 'x-berth-proxy-error',
  /** Milliseconds until the instance's response headers. */
  duration: 'x-berth-duration-ms',
  /** The instance's peak memory so far. */
  maxMemory: 'x-berth-max-memory-used-mib',
} as const;

/** Headers that belong to one connection, never forwarded (RFC 9110 7.6.1). */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** An instance as the agent running it reaches it. */
export interface LocalInstance {
  ip: string;
  port: number;
  /** The instance's peak memory so far (MiB), what X-Berth-Max-Memory-Used-MiB reports. */
  peakMemoryMiB(): number | undefined;
}

/**
 * A node whose instances this process reaches itself: an agent in this very
 * process, or on this host (the all-in-one's API workers). The gateway calls the
 * instances of such a node directly, saving the HTTP hop through the agent's
 * /v1/proxy; instances on any other node are reached through their agent.
 */
export interface LocalNode {
  /**
   * The instance when it runs on this node, else undefined. `route`: where it
   * listens, as its slot came with it from Redis (then nothing is read).
   */
  instance(taskId: string, route?: Pick<InstanceRoute, 'ip' | 'port'>): Promise<LocalInstance | undefined>;
}

const localNodes = new Map<string, LocalNode>();

/** Makes a node local to this process; returns the undo. */
export function registerLocalNode(nodeId: string, node: LocalNode): () => void {
  localNodes.set(nodeId, node);
  return () => {
    if (localNodes.get(nodeId) === node) localNodes.delete(nodeId);
  };
}

export function localNode(nodeId: string): LocalNode | undefined {
  return localNodes.get(nodeId);
}

export interface FunctionKeys {
  live: string;
  ready: string;
  inflight: string;
  instances: string;
  draining: string;
  lastUsed: string;
  waiters: string;
  leases: string;
  stats: string;
  durations: string;
  deadLetters: string;
}

/** The key names of recent functions: every invocation needs them, twice. */
const keysOf = new Map<string, FunctionKeys>();

export function functionKeys(tenant: string, name: string): FunctionKeys {
  const id = `${tenant}\n${name}`;
  const known = keysOf.get(id);
  if (known) return known;
  if (keysOf.size >= 10_000) keysOf.clear();
  const k: FunctionKeys = Object.freeze({
    live: keys.fnLive(tenant, name),
    ready: keys.fnReady(tenant, name),
    inflight: keys.fnInflight(tenant, name),
    instances: keys.fnInstances(tenant, name),
    draining: keys.fnDraining(tenant, name),
    lastUsed: keys.fnLastUsed(tenant, name),
    waiters: keys.fnWaiters(tenant, name),
    leases: keys.fnLeases(tenant, name),
    stats: keys.fnStats(tenant, name),
    durations: keys.fnDurations(tenant, name),
    deadLetters: keys.fnDeadLetters(tenant, name),
  });
  keysOf.set(id, k);
  return k;
}

/** The scripts of common/lua/*slot*.lua, as connectRedis defines them. */
interface SlotScripts {
  acquireSlot(ready: string, inflight: string, lastUsed: string, waiters: string, leases: string, instances: string,
    concurrency: number, now: number, waiterId: string, nonce: string, expiry: number): Promise<[number, string, string]>;
  releaseSlot(ready: string, inflight: string, lastUsed: string, waiters: string, leases: string,
    lease: string, now: number, channel: string, message: string): Promise<number>;
  slotRequestInstance(live: string, ready: string, waiters: string, max: number, concurrency: number, id: string, now: number): Promise<number>;
  slotRegisterInstance(live: string, ready: string, inflight: string, instances: string, id: string, route: string, channel: string, message: string): Promise<number>;
  slotDrainInstance(live: string, ready: string, inflight: string, draining: string, id: string, onlyIdle: '0' | '1'): Promise<number>;
  slotAddInstances(live: string, cap: number, ...ids: string[]): Promise<string[]>;
  renewSlots(ready: string, leaseSet: string, id: string, expiry: number, ...leases: string[]): Promise<number>;
}

const scripts = (redis: BerthRedis) => redis as unknown as SlotScripts;

export const fnId = (tenant: string, name: string) => `${tenant}/${name}`;

export function parseFnId(id: string): { tenant: string; name: string } {
  const slash = id.indexOf('/');
  return { tenant: id.slice(0, slash), name: id.slice(slash + 1) };
}

export function newInstanceId(): string {
  return randomBytes(16).toString('hex');
}

// ---- the function store ----

export async function getFunction(redis: BerthRedis, tenant: string, name: string): Promise<FunctionRecord | null> {
  const h = await redis.hgetall(keys.fn(tenant, name));
  if (!h.config) return null;
  return { tenant, name, version: Number(h.version), config: JSON.parse(h.config) as FunctionConfig, createdAt: h.createdAt!, updatedAt: h.updatedAt! };
}

/** Creates the function or makes `config` its next version. */
export async function saveFunction(redis: BerthRedis, tenant: string, config: FunctionConfig): Promise<{ record: FunctionRecord; created: boolean }> {
  const now = new Date().toISOString();
  const key = keys.fn(tenant, config.name);
  const json = JSON.stringify(config);
  const res = await redis.multi()
    .hincrby(key, 'version', 1)
    .hset(key, 'config', json, 'updatedAt', now)
    .hsetnx(key, 'createdAt', now)
    .zadd(keys.tenantFunctions(tenant), 'NX', Date.now(), config.name)
    .sadd(keys.functions(), fnId(tenant, config.name))
    .exec();
  const version = Number(res?.[0]?.[1]);
  await redis.hset(keys.fnVersions(tenant, config.name), String(version), json);
  await redis.publish(FUNCTIONS_CHANGED_CHANNEL, fnId(tenant, config.name));
  return { record: (await getFunction(redis, tenant, config.name))!, created: version === 1 };
}

export async function listFunctions(redis: BerthRedis, tenant: string): Promise<FunctionRecord[]> {
  const names = await redis.zrange(keys.tenantFunctions(tenant), 0, -1);
  const records = await Promise.all(names.map((n) => getFunction(redis, tenant, n)));
  return records.filter((r): r is FunctionRecord => r !== null);
}

/** Forgets the function and its routing; returns every instance that must be stopped. */
export async function deleteFunction(redis: BerthRedis, tenant: string, name: string): Promise<string[]> {
  const k = functionKeys(tenant, name);
  const [live, ready, draining, inflight] = await Promise.all([
    redis.smembers(k.live), redis.zrange(k.ready, 0, -1), redis.smembers(k.draining), redis.hkeys(k.inflight),
  ]);
  await redis.multi()
    .del(keys.fn(tenant, name), keys.fnVersions(tenant, name), k.live, k.ready, k.inflight, k.instances, k.draining,
      k.lastUsed, k.waiters, k.leases, k.stats, k.durations, k.deadLetters)
    .zrem(keys.tenantFunctions(tenant), name)
    .srem(keys.functions(), fnId(tenant, name))
    .publish(FUNCTIONS_CHANGED_CHANNEL, fnId(tenant, name))
    .exec();
  return [...new Set([...live, ...ready, ...draining, ...inflight])];
}

// ---- instances ----

export function instanceSpec(c: FunctionConfig): TaskContainerSpec {
  const env = new Map(c.environment.map((e) => [e.name, e.value] as const));
  env.set('PORT', String(c.port));
  const spec: TaskContainerSpec = {
    image: c.image,
    environment: [...env].map(([name, value]) => ({ name, value })),
    cpu: c.cpu,
    memory: c.memory,
    pidsLimit: 1024,
    ulimits: [],
    portMappings: [],
    networkMode: 'bridge',
    readonlyRootFilesystem: false,
    stopTimeout: 3,
  };
  if (c.command) spec.command = c.command;
  if (c.entryPoint) spec.entryPoint = c.entryPoint;
  if (c.repositoryCredentials) spec.repositoryCredentials = c.repositoryCredentials;
  return spec;
}

/** Queues new instances for placement, with what each needs (so the scheduler need not read their tasks). */
export type PlaceInstances = (taskIds: string[], demand: PlacementDemand) => Promise<void>;

/**
 * Creates the task records of new instances (ids already in the live set) and
 * queues them for placement, spread over the nodes.
 */
export async function createInstanceTasks(
  redis: BerthRedis,
  place: PlaceInstances,
  fn: FunctionRecord,
  ids: string[],
): Promise<void> {
  if (ids.length === 0) return;
  const createdAt = new Date().toISOString();
  const spec = instanceSpec(fn.config);
  const records: InstanceRecord[] = ids.map((taskId) => ({
    taskId,
    tenant: fn.tenant,
    family: `fn-${fn.name}`,
    revision: fn.version,
    spec,
    lastStatus: 'PROVISIONING',
    desiredStatus: 'RUNNING',
    createdAt,
    startedBy: `function:${fn.name}`,
    group: `fn:${fn.name}`,
    placementStrategy: { type: 'spread', field: 'node' },
    kind: 'function',
    functionName: fn.name,
    functionVersion: String(fn.version),
    functionPort: String(fn.config.port),
    functionReadiness: JSON.stringify(fn.config.readiness),
  }));
  await saveNewTasks(redis, records);
  await place(ids, placementDemand(records[0]!));
}

/**
 * Adds up to `count` instances to the live set, never past `cap`, and creates
 * them (the autoscaler's path; the gateway's goes through requestInstance).
 */
export async function addInstances(
  redis: BerthRedis, place: PlaceInstances, fn: FunctionRecord, count: number, cap: number,
): Promise<string[]> {
  if (count <= 0) return [];
  const ids = await scripts(redis).slotAddInstances(keys.fnLive(fn.tenant, fn.name), cap, ...Array.from({ length: count }, newInstanceId));
  if (ids.length > 0) await createInstanceTasks(redis, place, fn, ids);
  return ids;
}

/** The task record of an instance, when it is one. */
export function asInstance(task: TaskRecord | null): InstanceRecord | null {
  const t = task as InstanceRecord | null;
  return t && t.kind === 'function' && t.functionName ? t : null;
}

/**
 * Stops an instance's task: one not yet on a node is STOPPED here, one on a
 * node gets a stop job for its agent (`stopOnNode`).
 */
export async function stopInstanceTask(
  redis: BerthRedis,
  taskId: string,
  reason: string,
  stopOnNode: (nodeId: string, taskId: string, reason: string) => Promise<void>,
): Promise<void> {
  const key = keys.task(taskId);
  const res = await redis.multi().hget(key, 'lastStatus').hget(key, 'desiredStatus').hget(key, 'nodeId')
    .hset(key, 'desiredStatus', 'STOPPED').hsetnx(key, 'stoppedReason', reason).exec();
  const status = res?.[0]?.[1] as string | null;
  // Gone, stopped, or already being stopped by someone else (whose reason stands).
  if (!status || status === 'STOPPED' || res?.[1]?.[1] === 'STOPPED') return;
  const nodeId = res?.[2]?.[1] as string | null;
  if (!nodeId) {
    await transitionTask(redis, taskId, 'STOPPED', { stopCode: 'UserInitiated', stoppedReason: reason, stoppedAt: new Date().toISOString() });
  } else {
    await stopOnNode(nodeId, taskId, reason);
  }
}

/** Forgets an instance in the routing table (its task stopped). */
export async function removeInstance(redis: BerthRedis, tenant: string, name: string, id: string): Promise<void> {
  const k = functionKeys(tenant, name);
  await redis.multi()
    .srem(k.live, id).zrem(k.ready, id).hdel(k.inflight, id).hdel(k.instances, id).srem(k.draining, id).hdel(k.lastUsed, id)
    .publish(FUNCTION_EVENTS_CHANNEL, fnId(tenant, name))
    .exec();
}

// ---- slots ----

/** A slot taken: the instance, the lease that gives the slot back, and the instance's route (InstanceRoute as JSON) when it has one. */
export type AcquireResult = { ok: true; instanceId: string; lease: string; routeJson?: string } | { ok: false; reason: 'busy' | 'none' };

/**
 * How long after a request's timeout its slot is given back anyway: the API
 * replica holding it died (a live one always gives it back by the timeout).
 */
export const SLOT_LEASE_MARGIN_MS = 60_000;

/**
 * Takes a slot for a request that may run `timeoutMs`; a request that waited
 * names its entry in the waiting set (`waiterId`), which leaves it with the slot.
 */
/** Lease nonces: unique per process (random) and per request (a counter), without a random draw each. */
const leasePrefix = randomBytes(6).toString('hex');
let leaseCount = 0;

export async function acquireSlot(redis: BerthRedis, tenant: string, name: string, concurrency: number, timeoutMs: number, waiterId = ''): Promise<AcquireResult> {
  const k = functionKeys(tenant, name);
  const now = Date.now();
  const [code, lease, route] = await scripts(redis).acquireSlot(k.ready, k.inflight, k.lastUsed, k.waiters, k.leases, k.instances,
    concurrency, now, waiterId, `${leasePrefix}${(leaseCount++).toString(36)}`, now + timeoutMs + SLOT_LEASE_MARGIN_MS);
  if (code === 1) {
    const slot = { ok: true as const, instanceId: lease.slice(0, lease.lastIndexOf('/')), lease };
    return route ? { ...slot, routeJson: route } : slot;
  }
  return { ok: false, reason: code === 0 ? 'busy' : 'none' };
}

/** Gives a slot back, once: -2 when its lease was given back already. */
export async function releaseSlot(redis: BerthRedis, tenant: string, name: string, lease: string): Promise<number> {
  const k = functionKeys(tenant, name);
  return scripts(redis).releaseSlot(k.ready, k.inflight, k.lastUsed, k.waiters, k.leases, lease, Date.now(), FUNCTION_EVENTS_CHANNEL, fnId(tenant, name));
}

/**
 * Extends the leases of slots kept on an instance while it is routable: true
 * when it is (the slots may go on being reused), false when it is out of
 * routing (give them back).
 */
export async function renewSlots(redis: BerthRedis, tenant: string, name: string, instanceId: string, leases: string[], timeoutMs: number): Promise<boolean> {
  const k = functionKeys(tenant, name);
  return (await scripts(redis).renewSlots(k.ready, k.leases, instanceId, Date.now() + timeoutMs + SLOT_LEASE_MARGIN_MS, ...leases)) === 1;
}

/** Gives back the slots whose leases expired (their API replica died holding them); how many. */
export async function reapSlots(redis: BerthRedis, tenant: string, name: string, now = Date.now()): Promise<number> {
  const expired = await redis.zrangebyscore(functionKeys(tenant, name).leases, '-inf', now, 'LIMIT', 0, 1000);
  let reaped = 0;
  for (const lease of expired) if ((await releaseSlot(redis, tenant, name, lease)) !== -2) reaped++;
  return reaped;
}

/** True when the caller must create the task of `id` (a cold start). */
export async function requestInstance(redis: BerthRedis, tenant: string, name: string, max: number, concurrency: number, id: string): Promise<boolean> {
  const k = functionKeys(tenant, name);
  return (await scripts(redis).slotRequestInstance(k.live, k.ready, k.waiters, max, concurrency, id, Date.now())) === 1;
}

export async function registerInstance(redis: BerthRedis, tenant: string, name: string, id: string, route: InstanceRoute): Promise<boolean> {
  const k = functionKeys(tenant, name);
  return (await scripts(redis).slotRegisterInstance(k.live, k.ready, k.inflight, k.instances, id, JSON.stringify(route), FUNCTION_EVENTS_CHANNEL, fnId(tenant, name))) === 1;
}

/** Takes an instance out of routing; the requests in flight on it (or -1 when onlyIdle refused). */
export async function drainInstance(redis: BerthRedis, tenant: string, name: string, id: string, onlyIdle: boolean): Promise<number> {
  const k = functionKeys(tenant, name);
  return scripts(redis).slotDrainInstance(k.live, k.ready, k.inflight, k.draining, id, onlyIdle ? '1' : '0');
}

export async function getRoute(redis: BerthRedis, tenant: string, name: string, id: string): Promise<InstanceRoute | null> {
  const raw = await redis.hget(keys.fnInstances(tenant, name), id);
  return raw ? (JSON.parse(raw) as InstanceRoute) : null;
}

/** The shared secret of the agents' /v1/proxy: made once by whoever asks first. */
export async function ensureAgentToken(redis: BerthRedis): Promise<string> {
  await redis.set(keys.agentToken(), randomBytes(32).toString('hex'), 'NX');
  return (await redis.get(keys.agentToken()))!;
}

/** The reason an instance's task stopped, waiting up to `waitMs` for it to be recorded. */
export async function stoppedReason(redis: BerthRedis, taskId: string, waitMs: number): Promise<string | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const task = await getTask(redis, taskId);
    if (!task) return undefined;
    // STOPPING with an exit code: the agent saw the container exit and is releasing what it held.
    if (task.lastStatus === 'STOPPED' || (task.lastStatus === 'STOPPING' && task.exitCode !== undefined)) {
      const reason = task.stoppedReason ?? 'stopped';
      return task.exitCode !== undefined && !/exit code/.test(reason) ? `${reason} (exit code ${task.exitCode})` : reason;
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
}
