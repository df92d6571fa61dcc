// Every Redis key and queue name Berth uses, in one place.
// Queue names carry a hash tag so one queue stays on one Redis Cluster shard.

const P = 'berth';

export const keys = {
  task: (taskId: string) => `${P}:task:${taskId}`,
  /** Sorted set of a tenant's task ids by creation time (ms). */
  tenantTasks: (tenant: string) => `${P}:tenant:${tenant}:tasks`,
  taskLogs: (taskId: string) => `${P}:task:${taskId}:logs`,
  taskDefinitions: (tenant: string, family: string) => `${P}:tenant:${tenant}:taskdef:${family}`,
  taskDefinitionSeq: (tenant: string, family: string) => `${P}:tenant:${tenant}:taskdef:${family}:seq`,
  families: (tenant: string) => `${P}:tenant:${tenant}:families`,
  node: (nodeId: string) => `${P}:node:${nodeId}`,
  nodes: () => `${P}:nodes`,
  /** Sorted set of node id → its last heartbeat (ms): the liveness sweep reads only the overdue ones. */
  nodeHeartbeats: () => `${P}:nodes:heartbeats`,
  nodeTasks: (nodeId: string) => `${P}:node:${nodeId}:tasks`,
  /** Hash of node id → how many live tasks of the group run there (spread, distinctInstance). */
  groupNodes: (tenant: string, group: string) => `${P}:tenant:${tenant}:group:${group}:nodes`,
  apiKey: (keyHash: string) => `${P}:apikey:${keyHash}`,
  /** Latest stats sample of a task (JSON string), written by the agent. */
  taskStats: (taskId: string) => `${P}:task:${taskId}:stats`,
  /** Recent stats samples of a task, newest first (LPUSH, LTRIM 900). */
  taskStatsHistory: (taskId: string) => `${P}:task:${taskId}:stats:history`,
  /** Sorted set of a family's ACTIVE revisions (score = revision). */
  taskDefinitionActive: (tenant: string, family: string) => `${P}:tenant:${tenant}:taskdef:${family}:active`,
  /** API key id -> the key's hash (for DELETE /v1/api-keys/{keyId}). */
  apiKeyId: (keyId: string) => `${P}:apikeyid:${keyId}`,
  /** Sorted set of every API key id by creation time (ms). */
  apiKeyIds: () => `${P}:apikeys`,
  /** Hash of a tenant's secrets: name -> JSON { value, createdAt, updatedAt }. */
  secrets: (tenant: string) => `${P}:tenant:${tenant}:secrets`,
  /** An idempotency record of POST /v1/tasks (24 h). */
  idempotency: (tenant: string, keyHash: string) => `${P}:tenant:${tenant}:idem:${keyHash}`,
  /** Token bucket of one API key's request rate. */
  rateLimit: (keyId: string) => `${P}:ratelimit:${keyId}`,
  // Functions (common/functions.ts). `fn` is one function of one tenant; the
  // routing keys below are what the slot scripts (common/lua/*slot*.lua) change.
  /** Hash: config (JSON), version, createdAt, updatedAt. */
  fn: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}`,
  /** Hash of version -> that version's config (JSON). */
  fnVersions: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:versions`,
  /** Sorted set of a tenant's function names by creation time (ms). */
  tenantFunctions: (tenant: string) => `${P}:tenant:${tenant}:functions`,
  /** Set of every function as `<tenant>/<name>` (the autoscaler and async workers walk it). */
  functions: () => `${P}:functions`,
  /** Set of the function's wanted instances (starting or ready; not draining). */
  fnLive: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:live`,
  /** Sorted set of routable instances, score = requests in flight. */
  fnReady: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:ready`,
  /** Hash of instance id -> requests in flight (ready and draining instances). */
  fnInflight: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:inflight`,
  /** Hash of instance id -> route JSON { nodeId, agent, ip, port, version, readyAt }. */
  fnInstances: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:instances`,
  /** Set of instances taken out of routing, stopped once their last request ends. */
  fnDraining: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:draining`,
  /** Hash of instance id -> last slot taken or released (ms); field `_fn` for the function. */
  fnLastUsed: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:lastused`,
  /** Sorted set of requests waiting for a slot, score = their deadline (ms). */
  fnWaiters: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:waiters`,
  /** Sorted set of the slots taken (`<instance>/<nonce>`) by their expiry (ms). */
  fnLeases: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:leases`,
  /** Hash of counters: invocations, errors, coldStarts, timeouts, throttles. */
  fnStats: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:stats`,
  /** Recent invocation durations (ms), newest first (LTRIM 1000). */
  fnDurations: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:durations`,
  /** Sorted set of dead-lettered asynchronous invocation ids by time (ms). */
  fnDeadLetters: (tenant: string, name: string) => `${P}:tenant:${tenant}:fn:${name}:dead-letters`,
  /** An asynchronous invocation (hash, kept 6 h as Lambda keeps events). */
  invocation: (id: string) => `${P}:invocation:${id}`,
  /** The token an agent's /v1/proxy wants in `x-berth-agent-token` (set once, shared by every agent and API). */
  agentToken: () => `${P}:agent-token`,
  /** The scheduler replica that runs the function autoscaler (SET NX PX lease). */
  autoscalerLeader: () => `${P}:autoscaler:leader`,
} as const;

/** Pub/sub channel: a message `<tenant>/<name>` whenever a slot frees or an instance becomes ready. */
export const FUNCTION_EVENTS_CHANNEL = `${P}:fn-events`;
/** Pub/sub channel of revoked API keys (their hashes): replicas drop them from their caches. */
export const API_KEYS_REVOKED_CHANNEL = `${P}:apikeys-revoked`;
/** Pub/sub channel: `<tenant>/<name>` of a function deployed again or deleted: replicas drop their cached record. */
export const FUNCTIONS_CHANGED_CHANNEL = `${P}:functions-changed`;
/** Pub/sub channel: the id of a node a task just stopped on (its reservation released): schedulers retry the tasks waiting for room at once. */
export const CAPACITY_FREED_CHANNEL = `${P}:capacity-freed`;

// Queue names are hash tags so each queue's keys share one Redis Cluster slot
// while different queues spread over the shards.
export const queues = {
  placement: '{placement}',
  node: (nodeId: string) => `{node-${nodeId}}`,
  /** A function's asynchronous invocations. */
  fn: (tenant: string, name: string) => `{fn-${tenant}.${name}}`,
} as const;

export const BULLMQ_PREFIX = 'berth-q';
