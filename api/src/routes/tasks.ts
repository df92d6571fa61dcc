// Tasks: run, list, describe (one or many), stop.
import type { SecretBox } from '../../../common/secret-box.ts';
import { keys } from '../../../common/keys.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { RunTaskInput } from '../../../common/types.ts';
import { principal } from '../auth.ts';
import type { Body, Handlers, Params, Query } from '../handlers.ts';
import { decodeToken, encodeToken } from '../paging.ts';
import type { TaskQueues } from '../queues.ts';
import {
  createTasks, DEFAULT_STOP_REASON, findTask, findTasks, once, stopTask, toApiTaskView, type TaskView,
} from '../task-service.ts';
import { findTaskDefinition } from './task-definitions.ts';

const isCursor = (v: unknown): v is { s: number; id: string } =>
  typeof v === 'object' && v !== null && typeof (v as { s: unknown }).s === 'number' && typeof (v as { id: unknown }).id === 'string';

/** How many tasks one list request may look at before it returns a short page. */
const SCAN_BUDGET = 2000;
const CHUNK = 200;

export function taskHandlers(deps: { redis: BerthRedis; queues: TaskQueues; secretBox: SecretBox | null }): Handlers {
  const { redis } = deps;

  /**
   * The next tenant task ids after the cursor, newest first. By the cursor's
   * rank while it is in the set (new tasks only shift ranks before it), else by
   * its creation time.
   */
  async function nextChunk(tenant: string, cursor: { s: number; id: string } | undefined): Promise<{ id: string; s: number }[]> {
    const key = keys.tenantTasks(tenant);
    let raw: string[];
    if (!cursor) {
      raw = await redis.zrevrange(key, 0, CHUNK - 1, 'WITHSCORES');
    } else {
      const rank = await redis.zrevrank(key, cursor.id);
      raw = rank !== null
        ? await redis.zrevrange(key, rank + 1, rank + CHUNK, 'WITHSCORES')
        : await redis.zrevrangebyscore(key, `(${cursor.s}`, '-inf', 'WITHSCORES', 'LIMIT', 0, CHUNK);
    }
    const entries: { id: string; s: number }[] = [];
    for (let i = 0; i < raw.length; i += 2) entries.push({ id: raw[i]!, s: Number(raw[i + 1]) });
    return entries;
  }

  /** Newest first; filters applied to each record. */
  async function list(tenant: string, q: Query<'listTasks'>) {
    const limit = q.limit ?? 100;
    let cursor = q.nextToken ? decodeToken(q.nextToken, isCursor) : undefined;
    const matches = (t: TaskView) =>
      (q.family === undefined || t.family === q.family) &&
      (q.status === undefined || t.lastStatus === q.status) &&
      (q.desiredStatus === undefined || t.desiredStatus === q.desiredStatus) &&
      (q.nodeId === undefined || t.nodeId === q.nodeId) &&
      (q.startedBy === undefined || t.startedBy === q.startedBy);
    const out: TaskView[] = [];
    let examined = 0;
    while (examined < SCAN_BUDGET) {
      const entries = await nextChunk(tenant, cursor);
      if (entries.length === 0) return { tasks: out };
      const { found } = await findTasks(redis, tenant, entries.map((e) => e.id));
      const byId = new Map(found.map((t) => [t.taskId, t]));
      for (const [i, e] of entries.entries()) {
        examined++;
        cursor = e;
        const t = byId.get(e.id);
        if (t && matches(t)) out.push(t);
        if (out.length >= limit || examined >= SCAN_BUDGET) {
          const atEnd = i === entries.length - 1 && entries.length < CHUNK;
          return atEnd ? { tasks: out } : { tasks: out, nextToken: encodeToken(cursor) };
        }
      }
      if (entries.length < CHUNK) return { tasks: out };
    }
    return { tasks: out, nextToken: encodeToken(cursor) };
  }

  return {
    async runTask(request, reply) {
      const tenant = principal(request).tenant;
      const input = request.body as Body<'runTask'> as RunTaskInput;
      const idempotencyKey = (request.headers['idempotency-key'] as string | undefined) || undefined;
      const { tasks, replayed } = await once(redis, tenant, idempotencyKey, input, async () => {
        const def = await findTaskDefinition(redis, tenant, input.taskDefinition);
        return createTasks(deps, tenant, def, input);
      });
      if (!replayed) request.log.info({ taskIds: tasks.map((t) => t.taskId), taskDefinition: input.taskDefinition }, 'tasks created');
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send({ tasks: tasks.map(toApiTaskView) });
    },

    async listTasks(request) {
      const tenant = principal(request).tenant;
      const q = request.query as Query<'listTasks'>;
      if (q.ids !== undefined) {
        const { found, missing } = await findTasks(redis, tenant, q.ids.split(','));
        return { tasks: found.map(toApiTaskView), failures: missing.map((taskId) => ({ taskId, reason: 'MISSING' })) };
      }
      const page = await list(tenant, q);
      return { tasks: page.tasks.map(toApiTaskView), ...(page.nextToken ? { nextToken: page.nextToken } : {}) };
    },

    async describeTasks(request) {
      const { taskIds } = request.body as Body<'describeTasks'>;
      const { found, missing } = await findTasks(redis, principal(request).tenant, taskIds);
      return { tasks: found.map(toApiTaskView), failures: missing.map((taskId) => ({ taskId, reason: 'MISSING' })) };
    },

    async describeTask(request) {
      const { taskId } = request.params as Params<'describeTask'>;
      return toApiTaskView(await findTask(redis, principal(request).tenant, taskId));
    },

    async stopTask(request) {
      const { taskId } = request.params as Params<'stopTask'>;
      const reason = (request.body as { reason?: string } | undefined)?.reason || DEFAULT_STOP_REASON;
      const task = await findTask(redis, principal(request).tenant, taskId);
      const stopped = await stopTask(deps, task, reason);
      request.log.info({ taskId, lastStatus: stopped.lastStatus }, 'task stop requested');
      return toApiTaskView(stopped);
    },
  };
}
