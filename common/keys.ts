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
  apiKey: (keyHash: string) => `${P}:apikey:${keyHash}`,
} as const;

// Queue names are hash tags so each queue's keys share one Redis Cluster slot
// while different queues spread over the shards.
export const queues = {
  placement: '{placement}',
  node: (nodeId: string) => `{node-${nodeId}}`,
} as const;

export const BULLMQ_PREFIX = 'berth-q';
