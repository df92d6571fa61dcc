// A task's resource samples, as its node's agent writes them.
import { keys } from '../../../common/keys.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import { principal } from '../auth.ts';
import type { Handlers, Params, Query } from '../handlers.ts';
import { findTask } from '../task-service.ts';

function parseSample(raw: string | null): Record<string, unknown> | null {
  if (raw === null) return null;
  try {
    const v = JSON.parse(raw) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function taskStatsHandlers(deps: { redis: BerthRedis }): Handlers {
  const { redis } = deps;
  return {
    async getTaskStats(request) {
      const { taskId } = request.params as Params<'getTaskStats'>;
      const { limit = 900 } = request.query as Query<'getTaskStats'>;
      await findTask(redis, principal(request).tenant, taskId);
      const [current, history] = await Promise.all([
        redis.get(keys.taskStats(taskId)),
        limit > 0 ? redis.lrange(keys.taskStatsHistory(taskId), 0, limit - 1) : Promise.resolve([]),
      ]);
      return {
        current: parseSample(current),
        history: history.map(parseSample).filter((s) => s !== null),
      };
    },
  };
}
