// Running, stopping and finding tasks, for the routes in routes/tasks.ts.
import { createHash, randomBytes } from 'node:crypto';
import { BerthError } from '../../common/errors.ts';
import { keys } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';
import type { SecretBox } from '../../common/secret-box.ts';
import { sealedSecrets } from '../../common/secrets.ts';
import type { StoredTaskDefinition } from '../../common/taskdefs.ts';
import { getTask, placementDemand, toApiTask, transitionTask } from '../../common/tasks.ts';
import type { PlacementConstraint, PlacementStrategy, RunTaskInput, Task, TaskContainerSpec, TaskRecord } from '../../common/types.ts';
import { checkCpuMemory, MAX_MIB_PER_CPU_UNIT } from './limits.ts';
import { invalidField } from './paging.ts';
import type { TaskQueues } from './queues.ts';

export type { PlacementConstraint, PlacementStrategy };

/** A record as the API reads it. */
export type TaskView = TaskRecord;

const IDEMPOTENCY_TTL_S = 24 * 3600;
const IDEMPOTENCY_PENDING_TTL_S = 60;

export function newTaskId(): string {
  return randomBytes(16).toString('hex');
}

export function toApiTaskView(r: TaskView): Task {
  const task = toApiTask(r) as Task & { group?: string };
  if (r.placementStrategy) task.placementStrategy = r.placementStrategy as Task['placementStrategy'];
  if (r.placementConstraints) task.placementConstraints = r.placementConstraints as Task['placementConstraints'];
  if (r.group) task.group = r.group;
  // Drop absent fields so the JSON carries only what is known.
  return Object.fromEntries(Object.entries(task).filter(([, v]) => v !== undefined)) as Task;
}

/** A task of the tenant, or 404 TASK_NOT_FOUND (also when it is another tenant's). */
export async function findTask(redis: BerthRedis, tenant: string, taskId: string): Promise<TaskView> {
  const record = (await getTask(redis, taskId)) as TaskView | null;
  if (!record || record.tenant !== tenant) throw new BerthError('TASK_NOT_FOUND', `No task ${taskId}`);
  return record;
}

/** The tenant's tasks among `ids`, in that order, and the ids it has no task for. */
export async function findTasks(redis: BerthRedis, tenant: string, ids: string[]): Promise<{ found: TaskView[]; missing: string[] }> {
  const unique = [...new Set(ids)];
  const records = await Promise.all(unique.map((id) => getTask(redis, id) as Promise<TaskView | null>));
  const found: TaskView[] = [];
  const missing: string[] = [];
  records.forEach((r, i) => (r && r.tenant === tenant ? found.push(r) : missing.push(unique[i]!)));
  return { found, missing };
}

type StrategyInput = NonNullable<RunTaskInput['placementStrategy']>;
type ConstraintInput = NonNullable<RunTaskInput['placementConstraints']>[number];

function normalizeStrategy(s: StrategyInput | undefined): PlacementStrategy | undefined {
  if (!s) return undefined;
  switch (s.type) {
    case 'binpack':
      if (s.field !== undefined && s.field !== 'cpu' && s.field !== 'memory') throw invalidField('body/placementStrategy/field', 'must be cpu or memory for binpack');
      return { type: 'binpack', field: s.field ?? 'memory' };
    case 'spread':
      if (s.field === 'cpu' || s.field === 'memory') throw invalidField('body/placementStrategy/field', 'must be node or attribute:<label> for spread');
      return { type: 'spread', field: s.field ?? 'node' };
    default:
      if (s.field !== undefined) throw invalidField('body/placementStrategy/field', 'is not allowed for random');
      return { type: 'random' };
  }
}

function normalizeConstraints(cs: ConstraintInput[] | undefined): PlacementConstraint[] | undefined {
  if (!cs?.length) return undefined;
  return cs.map((c, i) => {
    if (c.type === 'memberOf') {
      if (!c.expression) throw invalidField(`body/placementConstraints/${i}/expression`, 'is required for memberOf');
      return { type: 'memberOf', expression: c.expression };
    }
    if (c.expression !== undefined) throw invalidField(`body/placementConstraints/${i}/expression`, 'is not allowed for distinctInstance');
    return { type: 'distinctInstance' };
  });
}

/** The definition with the run's overrides applied, secrets looked up (still sealed), defaults filled. */
export async function buildSpec(
  deps: { redis: BerthRedis; secretBox: SecretBox | null }, tenant: string, def: StoredTaskDefinition, input: RunTaskInput,
): Promise<TaskContainerSpec> {
  const o = input.overrides ?? {};
  const cpu = o.cpu ?? def.cpu;
  const memory = o.memory ?? def.memory;
  if (memory > cpu * MAX_MIB_PER_CPU_UNIT) {
    // The definition itself passed this check, so an override is the cause.
    if (o.memory !== undefined) checkCpuMemory(cpu, memory, { cpu: 'body/overrides/cpu', memory: 'body/overrides/memory' });
    throw invalidField('body/overrides/cpu', `must be >= ${Math.ceil(memory / MAX_MIB_PER_CPU_UNIT)} for the task definition's ${memory} MiB of memory (at most ${MAX_MIB_PER_CPU_UNIT} MiB per CPU unit)`);
  }

  const env = new Map<string, string>();
  for (const e of def.environment ?? []) env.set(e.name, e.value);
  // A secret replaces the definition's variable of the same name; a run's override replaces both.
  const overridden = new Set((o.environment ?? []).map((e) => e.name));
  const refs = (def.secrets ?? []).filter((s) => !overridden.has(s.name));
  for (const s of refs) env.delete(s.name);
  for (const e of o.environment ?? []) env.set(e.name, e.value);
  let secrets: TaskContainerSpec['sealedSecrets'];
  if (refs.length > 0) {
    if (!deps.secretBox) throw new BerthError('SECRETS_KEY_MISSING', 'This API has no secrets key, so no task with secrets can run (see BERTH_SECRETS_KEY_FILE)');
    const sealed = await sealedSecrets(deps.redis, deps.secretBox, tenant, refs.map((s) => s.valueFrom));
    const missing = [...new Set(refs.filter((s) => !sealed.has(s.valueFrom)).map((s) => s.valueFrom))];
    if (missing.length > 0) {
      throw new BerthError('SECRET_REFERENCE_NOT_FOUND', `The task definition refers to secrets that do not exist: ${missing.join(', ')}`, { secrets: missing });
    }
    secrets = refs.map((s) => ({ name: s.name, secret: s.valueFrom, sealed: sealed.get(s.valueFrom)! }));
  }

  const spec: TaskContainerSpec = {
    image: def.image,
    environment: [...env].map(([name, value]) => ({ name, value })),
    cpu,
    memory,
    pidsLimit: def.pidsLimit ?? 1024,
    ulimits: def.ulimits ?? [],
    portMappings: def.portMappings ?? [],
    networkMode: def.networkMode ?? 'bridge',
    readonlyRootFilesystem: def.readonlyRootFilesystem ?? false,
    stopTimeout: def.stopTimeout ?? 30,
  };
  const command = o.command ?? def.command;
  if (command) spec.command = command;
  if (def.entryPoint) spec.entryPoint = def.entryPoint;
  if (def.workingDirectory) spec.workingDirectory = def.workingDirectory;
  if (def.user) spec.user = def.user;
  if (def.repositoryCredentials) spec.repositoryCredentials = def.repositoryCredentials;
  if (def.healthCheck) spec.healthCheck = def.healthCheck;
  if (def.tmpfs?.length) spec.tmpfs = def.tmpfs;
  if (def.volumes?.length) spec.volumes = def.volumes;
  if (def.mountPoints?.length) spec.mountPoints = def.mountPoints;
  if (secrets) spec.sealedSecrets = secrets;
  return spec;
}

/** Creates the tasks, PROVISIONING, and queues them for placement. */
export async function createTasks(
  deps: { redis: BerthRedis; queues: TaskQueues; secretBox: SecretBox | null },
  tenant: string,
  def: StoredTaskDefinition,
  input: RunTaskInput,
): Promise<TaskView[]> {
  if (def.status !== 'ACTIVE') {
    throw new BerthError('TASK_DEFINITION_INACTIVE', `Task definition ${def.family}:${def.revision} is INACTIVE; no task can run from it`);
  }
  const strategy = normalizeStrategy(input.placementStrategy);
  const constraints = normalizeConstraints(input.placementConstraints);
  const spec = await buildSpec(deps, tenant, def, input);
  const createdAt = new Date().toISOString();
  const records: TaskRecord[] = Array.from({ length: input.count ?? 1 }, () => ({
    taskId: newTaskId(),
    tenant,
    family: def.family,
    revision: def.revision,
    spec,
    lastStatus: 'PROVISIONING',
    desiredStatus: 'RUNNING',
    createdAt,
    ...(input.startedBy !== undefined ? { startedBy: input.startedBy } : {}),
    ...(input.tags?.length ? { tags: input.tags } : {}),
    ...(input.group !== undefined ? { group: input.group } : {}),
    ...(strategy ? { placementStrategy: strategy } : {}),
    ...(constraints ? { placementConstraints: constraints } : {}),
  }));
  // One job for the run: its tasks share one demand, and one job places them all.
  await deps.queues.place([{
    taskId: records[0]!.taskId, demand: placementDemand(records[0]!),
    ...(records.length > 1 ? { taskIds: records.map((r) => r.taskId) } : {}),
  }], records);
  return records;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

interface IdempotencyRecord {
  body: string;
  taskIds?: string[];
}

/**
 * Runs `work` at most once per (tenant, Idempotency-Key) within 24 h: a retry
 * gets the task ids of the first run. The same key with another body is refused.
 */
export async function once(
  redis: BerthRedis,
  tenant: string,
  idempotencyKey: string | undefined,
  body: unknown,
  work: () => Promise<TaskView[]>,
): Promise<{ tasks: TaskView[]; replayed: boolean }> {
  if (idempotencyKey === undefined) return { tasks: await work(), replayed: false };
  const key = keys.idempotency(tenant, createHash('sha256').update(idempotencyKey).digest('hex'));
  const bodyHash = createHash('sha256').update(canonical(body)).digest('hex');
  const pending = JSON.stringify({ body: bodyHash } satisfies IdempotencyRecord);

  for (let attempt = 0; ; attempt++) {
    if (await redis.set(key, pending, 'EX', IDEMPOTENCY_PENDING_TTL_S, 'NX')) break;
    const existing = JSON.parse((await redis.get(key)) ?? 'null') as IdempotencyRecord | null;
    if (!existing) continue; // expired meanwhile: try to take it again
    if (existing.body !== bodyHash) throw new BerthError('IDEMPOTENCY_KEY_REUSED');
    if (existing.taskIds) {
      const { found } = await findTasks(redis, tenant, existing.taskIds);
      return { tasks: found, replayed: true };
    }
    if (attempt >= 50) throw new BerthError('IDEMPOTENCY_IN_PROGRESS');
    await new Promise((r) => setTimeout(r, 100));
  }

  try {
    const tasks = await work();
    await redis.set(key, JSON.stringify({ body: bodyHash, taskIds: tasks.map((t) => t.taskId) } satisfies IdempotencyRecord), 'EX', IDEMPOTENCY_TTL_S);
    return { tasks, replayed: false };
  } catch (err) {
    await redis.del(key);
    throw err;
  }
}

export const DEFAULT_STOP_REASON = 'Task stopped by user';

/**
 * Stops a task: desiredStatus STOPPED at once; a task not yet on a node is
 * STOPPED here, one on a node gets a stop job for its agent.
 */
export async function stopTask(deps: { redis: BerthRedis; queues: TaskQueues }, task: TaskView, reason: string): Promise<TaskView> {
  if (task.lastStatus === 'STOPPED') return task;
  const key = keys.task(task.taskId);
  // One step, so the scheduler either placed the task before (we see its node)
  // or sees desiredStatus STOPPED and leaves it.
  const res = await deps.redis.multi()
    .hset(key, 'desiredStatus', 'STOPPED', 'stoppedReason', reason)
    .hget(key, 'nodeId')
    .exec();
  const nodeId = res?.[1]?.[1] as string | null | undefined;
  if (!nodeId) {
    await transitionTask(deps.redis, task.taskId, 'STOPPED', { stopCode: 'UserInitiated', stoppedReason: reason, stoppedAt: new Date().toISOString() });
  } else {
    await deps.queues.stop(nodeId, task.taskId, reason);
  }
  return ((await getTask(deps.redis, task.taskId)) as TaskView | null) ?? task;
}
