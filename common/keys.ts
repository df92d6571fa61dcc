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
} as const;

// Queue names are hash tags so each queue's keys share one Redis Cluster slot
// while different queues spread over the shards.
export const queues = {
  placement: '{placement}',
  node: (nodeId: string) => `{node-${nodeId}}`,
} as const;

export const BULLMQ_PREFIX = 'berth-q';
