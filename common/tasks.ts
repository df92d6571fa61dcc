// The task store: task records in Redis hashes, and the one way to move a task
// through its lifecycle (common/lua/transition-task-4.lua).
import { CAPACITY_FREED_CHANNEL, keys } from './keys.ts';
import type { BerthRedis } from './redis.ts';
import type { HealthStatus, PlacementDemand, Task, TaskRecord, TaskStatus } from './types.ts';

const JSON_FIELDS = new Set(['spec', 'tags', 'placementStrategy', 'placementConstraints']);
const NUMBER_FIELDS = new Set(['revision', 'exitCode']);

function encode(record: Partial<TaskRecord>): string[] {
  const flat: string[] = [];
  for (const [field, value] of Object.entries(record)) {
    if (value === undefined) continue;
    flat.push(field, JSON_FIELDS.has(field) ? JSON.stringify(value) : String(value));
  }
  return flat;
}

function decode(hash: Record<string, string>): TaskRecord | null {
  if (!hash.taskId) return null;
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(hash)) {
    if (JSON_FIELDS.has(field)) out[field] = JSON.parse(value);
    else if (NUMBER_FIELDS.has(field)) out[field] = Number(value);
    else out[field] = value;
  }
  return out as unknown as TaskRecord;
}

export async function saveNewTasks(redis: BerthRedis, records: TaskRecord[]): Promise<void> {
  const multi = redis.multi();
  for (const r of records) {
    multi.hset(keys.task(r.taskId), ...encode(r));
    multi.zadd(keys.tenantTasks(r.tenant), Date.parse(r.createdAt), r.taskId);
  }
  await multi.exec();
}

export async function getTask(redis: BerthRedis, taskId: string): Promise<TaskRecord | null> {
  return decode(await redis.hgetall(keys.task(taskId)));
}

export type TransitionResult = 'moved' | 'unchanged' | 'missing';

/**
 * Moves a task forward to `status`, setting `fields` with it. Never moves a task
 * backwards; on STOPPED releases its node reservation exactly once.
 */
export async function transitionTask(
  redis: BerthRedis,
  taskId: string,
  status: TaskStatus,
  fields: Partial<TaskRecord> = {},
): Promise<TransitionResult> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const [placedOn, groupKey] = await redis.hmget(keys.task(taskId), 'nodeId', 'groupKey');
    const nodeId = placedOn ?? '';
    const code = await redis.transitionTask(
      keys.task(taskId), keys.node(nodeId), keys.nodeTasks(nodeId), groupKey ?? keys.task(taskId),
      nodeId, status, taskId, ...encode(fields),
    );
    if (code === 1) {
      // Whatever its node held for it is free now: a scheduler retries at once the tasks waiting for room.
      if (status === 'STOPPED' && nodeId !== '') void redis.publish(CAPACITY_FREED_CHANNEL, nodeId).catch(() => undefined);
      return 'moved';
    }
    if (code === 0) return 'unchanged';
    if (code === -1) return 'missing';
    // -2: placed on a node between our read and the script: read again.
  }
  throw new Error(`task ${taskId}: its node kept changing during a transition to ${status}`);
}

/** Records what the node's health checks found; a task that is not RUNNING keeps what it had. */
export async function recordTaskHealth(redis: BerthRedis, taskId: string, status: HealthStatus): Promise<boolean> {
  return (await redis.setTaskHealth(keys.task(taskId), status)) === 1;
}

export function taskGroup(task: Pick<TaskRecord, 'group' | 'family'>): string {
  return task.group ?? `family:${task.family}`;
}

export function placementDemand(task: TaskRecord): PlacementDemand {
  return {
    tenant: task.tenant, group: taskGroup(task), cpu: task.spec.cpu, memory: task.spec.memory, createdAt: task.createdAt,
    ...(task.placementStrategy ? { strategy: task.placementStrategy } : {}),
    ...(task.placementConstraints ? { constraints: task.placementConstraints } : {}),
  };
}

/** The API's view of a task record. */
export function toApiTask(r: TaskRecord): Task {
  return {
    taskId: r.taskId,
    taskDefinition: `${r.family}:${r.revision}`,
    family: r.family,
    revision: r.revision,
    lastStatus: r.lastStatus,
    desiredStatus: r.desiredStatus,
    nodeId: r.nodeId,
    cpu: r.spec.cpu,
    memory: r.spec.memory,
    image: r.spec.image,
    imageDigest: r.imageDigest,
    ipAddress: r.ipAddress,
    createdAt: r.createdAt,
    pullStartedAt: r.pullStartedAt,
    pullStoppedAt: r.pullStoppedAt,
    startedAt: r.startedAt,
    stoppingAt: r.stoppingAt,
    stoppedAt: r.stoppedAt,
    exitCode: r.exitCode,
    stopCode: r.stopCode,
    stoppedReason: r.stoppedReason,
    startedBy: r.startedBy,
    tags: r.tags,
    ...(r.spec.healthCheck ? { healthStatus: r.healthStatus ?? 'UNKNOWN' } : {}),
  };
}
