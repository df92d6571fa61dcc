// GET /v1/events: live updates as server-sent events. Each connection polls
// Redis (the agent writes a task's sample once a second, the task record on
// each transition) and sends only what changed since it last looked.
import { Readable } from 'node:stream';
import { BerthError } from '../../../common/errors.ts';
import { keys } from '../../../common/keys.ts';
import { listNodes } from '../../../common/nodes.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import { principal } from '../auth.ts';
import type { Handlers, Query } from '../handlers.ts';
import { findTasks, toApiTaskView } from '../task-service.ts';

export interface EventOptions {
  redis: BerthRedis;
  /** How often the stats of watched tasks are read. @defaultValue 500 ms */
  statsPollMs?: number;
  /** How often the tenant's task records are read. @defaultValue 1000 ms */
  tasksPollMs?: number;
  /** How often the node list is read (admin keys). @defaultValue 2000 ms */
  nodesPollMs?: number;
  /** A comment line after this long without an event. @defaultValue 15 s */
  keepAliveMs?: number;
}

/** The tenant's newest tasks watched for `task` events. */
const RECENT_TASKS = 100;
/** Samples read per watched task and poll: more than a poll can miss at one sample a second. */
const SAMPLES_PER_POLL = 30;

/** One server-sent event; JSON data never holds a raw newline. */
export function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

interface Watch {
  tenant: string;
  admin: boolean;
  taskIds: string[];
  closed(): boolean;
  /** Resolves after `ms`, or at once when the client goes. */
  sleep(ms: number): Promise<void>;
}

function parseSample(raw: string): { time: string } | null {
  try {
    const v = JSON.parse(raw) as { time?: unknown };
    return v && typeof v === 'object' && typeof v.time === 'string' ? (v as { time: string }) : null;
  } catch {
    return null;
  }
}

export function eventHandlers(o: EventOptions): { handlers: Handlers; close(): void } {
  const { redis } = o;
  const statsPollMs = o.statsPollMs ?? 500;
  const tasksPollMs = o.tasksPollMs ?? 1000;
  const nodesPollMs = o.nodesPollMs ?? 2000;
  const keepAliveMs = o.keepAliveMs ?? 15_000;
  const open = new Set<() => void>();

  async function taskEvents(w: Watch, sent: Map<string, string>): Promise<string[]> {
    const recent = await redis.zrevrange(keys.tenantTasks(w.tenant), 0, RECENT_TASKS - 1);
    const ids = [...new Set([...recent, ...w.taskIds])];
    const { found } = await findTasks(redis, w.tenant, ids);
    const out: string[] = [];
    // Oldest first, so a client that appends keeps creation order.
    for (const record of found.reverse()) {
      const task = toApiTaskView(record);
      const json = JSON.stringify(task);
      if (sent.get(task.taskId) === json) continue;
      sent.set(task.taskId, json);
      out.push(`event: task\ndata: ${json}\n\n`);
    }
    return out;
  }

  async function statsEvents(w: Watch, lastTime: Map<string, string>): Promise<string[]> {
    if (w.taskIds.length === 0) return [];
    const pipe = redis.pipeline();
    for (const id of w.taskIds) pipe.lrange(keys.taskStatsHistory(id), 0, SAMPLES_PER_POLL - 1);
    const results = (await pipe.exec()) ?? [];
    const out: string[] = [];
    w.taskIds.forEach((taskId, i) => {
      const raw = (results[i]?.[1] as string[] | undefined) ?? [];
      const samples = raw.map(parseSample).filter((s) => s !== null);
      const last = lastTime.get(taskId);
      // Newest first in Redis; the first poll sends only the newest (the history is a GET away),
      // or, for a task without samples yet, marks that every later one is new.
      const fresh = last === undefined ? samples.slice(0, 1) : samples.filter((s) => s.time > last);
      if (fresh.length === 0) {
        if (last === undefined) lastTime.set(taskId, '');
        return;
      }
      lastTime.set(taskId, fresh[0]!.time);
      for (const sample of fresh.reverse()) out.push(sse('stats', { taskId, sample }));
    });
    return out;
  }

  async function nodeEvents(last: { json: string }): Promise<string[]> {
    const nodes = (await listNodes(redis))
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
      .map((n) => Object.fromEntries(Object.entries(n).filter(([, v]) => v !== undefined)));
    const json = JSON.stringify({ nodes });
    if (json === last.json) return [];
    last.json = json;
    return [`event: nodes\ndata: ${json}\n\n`];
  }

  async function* stream(w: Watch): AsyncGenerator<string> {
    yield 'retry: 2000\n\n';
    const sentTasks = new Map<string, string>();
    const lastSample = new Map<string, string>();
    const nodes = { json: '' };
    let tasksAt = 0;
    let nodesAt = 0;
    let quietSince = Date.now();
    while (!w.closed()) {
      const now = Date.now();
      const out: string[] = [];
      if (now - tasksAt >= tasksPollMs) {
        tasksAt = now;
        out.push(...await taskEvents(w, sentTasks));
      }
      out.push(...await statsEvents(w, lastSample));
      if (w.admin && now - nodesAt >= nodesPollMs) {
        nodesAt = now;
        out.push(...await nodeEvents(nodes));
      }
      if (out.length > 0) {
        quietSince = now;
        yield out.join('');
      } else if (now - quietSince >= keepAliveMs) {
        quietSince = now;
        yield ': keep-alive\n\n';
      }
      await w.sleep(statsPollMs);
    }
  }

  const handlers: Handlers = {
    async streamEvents(request, reply) {
      const who = principal(request);
      const q = request.query as Query<'streamEvents'>;
      const taskIds = q.tasks ? [...new Set(q.tasks.split(','))] : [];
      const { missing } = await findTasks(redis, who.tenant, taskIds);
      if (missing.length > 0) throw new BerthError('TASK_NOT_FOUND', `No task ${missing[0]}`);

      let closed = false;
      let wake: (() => void) | undefined;
      const close = () => {
        closed = true;
        wake?.();
        open.delete(close);
      };
      open.add(close);
      reply.raw.once('close', close);
      const watch: Watch = {
        tenant: who.tenant,
        admin: who.admin,
        taskIds,
        closed: () => closed,
        sleep: (ms) => new Promise<void>((resolve) => {
          const timer = setTimeout(() => { wake = undefined; resolve(); }, ms);
          wake = () => { clearTimeout(timer); wake = undefined; resolve(); };
        }),
      };
      const body = Readable.from((async function* () {
        try {
          yield* stream(watch);
        } catch (err) {
          if (!closed) request.log.warn({ err }, 'event stream ended early');
        } finally {
          close();
        }
      })());
      return reply.code(200)
        .type('text/event-stream; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-accel-buffering', 'no')
        .send(body);
    },
  };
  return {
    handlers,
    /** Ends every open stream (the app is closing). */
    close() {
      for (const c of [...open]) c();
    },
  };
}
