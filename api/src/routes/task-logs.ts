// A task's logs: pages of its Redis stream, or a follow stream (NDJSON) that
// ends once the task is STOPPED and everything it printed has been sent.
import { keys } from '../../../common/keys.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { LogEvent } from '../../../common/types.ts';
import { principal } from '../auth.ts';
import type { Handlers, Params, Query } from '../handlers.ts';
import { findTask } from '../task-service.ts';

type StreamEntry = [id: string, fields: string[]];

export function toLogEvent([id, fields]: StreamEntry): LogEvent & { id: string } {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  return { id, time: f.t ?? '', stream: f.s === 'stderr' ? 'stderr' : 'stdout', message: f.m ?? '' };
}

export interface LogDeps {
  redis: BerthRedis;
  /** How long one blocking read waits before looking at the task's status again. */
  followPollMs?: number;
  /** Open follow streams, each by the function that ends it (the app ends them all on close). */
  follows?: Set<() => void>;
}

export function taskLogHandlers(deps: LogDeps): Handlers {
  const { redis } = deps;
  const pollMs = deps.followPollMs ?? 1000;

  async function* follow(taskId: string, after: string, isClosed: () => boolean, conn: BerthRedis): AsyncGenerator<string> {
    const key = keys.taskLogs(taskId);
    let last = after;
    while (!isClosed()) {
      const res = (await conn.xread('COUNT', 1000, 'BLOCK', pollMs, 'STREAMS', key, last)) as [string, StreamEntry[]][] | null;
      const entries = res?.[0]?.[1] ?? [];
      if (entries.length > 0) {
        last = entries[entries.length - 1]![0];
        yield entries.map((e) => JSON.stringify(toLogEvent(e))).join('\n') + '\n';
        continue;
      }
      const status = await redis.hget(keys.task(taskId), 'lastStatus');
      if (status === null || status === 'STOPPED') {
        // The agent writes a task's last lines before it records STOPPED: drain them.
        for (;;) {
          const rest = (await redis.xrange(key, `(${last}`, '+', 'COUNT', 1000)) as StreamEntry[];
          if (rest.length === 0) return;
          last = rest[rest.length - 1]![0];
          yield rest.map((e) => JSON.stringify(toLogEvent(e))).join('\n') + '\n';
        }
      }
    }
  }

  return {
    async getTaskLogs(request, reply) {
      const { taskId } = request.params as Params<'getTaskLogs'>;
      const q = request.query as Query<'getTaskLogs'>;
      await findTask(redis, principal(request).tenant, taskId);

      if (q.follow && request.method === 'HEAD') {
        return reply.code(200).type('application/x-ndjson').header('cache-control', 'no-store').send('');
      }
      if (q.follow) {
        // Streamed by hand so the headers go out at once, before the first line exists.
        reply.hijack();
        const res = reply.raw;
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        res.flushHeaders();
        // A blocking read needs a connection of its own; it goes when the client does.
        const conn = redis.duplicate() as BerthRedis;
        let closed = false;
        const close = () => {
          closed = true;
          conn.disconnect();
        };
        res.once('close', close);
        deps.follows?.add(close);
        try {
          for await (const chunk of follow(taskId, q.after ?? '0-0', () => closed, conn)) {
            if (closed) break;
            if (!res.write(chunk)) await new Promise((resolve) => { res.once('drain', resolve); res.once('close', resolve); });
          }
        } catch (err) {
          if (!closed) request.log.warn({ err, taskId }, 'log follow ended early');
        } finally {
          close();
          deps.follows?.delete(close);
          res.end();
        }
        return reply;
      }

      const limit = q.limit ?? 1000;
      const entries = (await redis.xrange(keys.taskLogs(taskId), q.after ? `(${q.after}` : '-', '+', 'COUNT', limit)) as StreamEntry[];
      const events = entries.map(toLogEvent);
      const nextToken = events.length > 0 ? events[events.length - 1]!.id : q.after;
      return { events, ...(nextToken ? { nextToken } : {}) };
    },
  };
}
