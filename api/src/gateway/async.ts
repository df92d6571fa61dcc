// Asynchronous invocations (X-Berth-Invocation-Type: Event): the request is
// kept in Redis (6 h, as Lambda keeps events), a job goes on the function's
// BullMQ queue, and a worker in every API replica runs it through the gateway
// with the function's retries and exponential backoff. A 5xx answer, a crash or
// a timeout fails an attempt; after the last one the invocation is dead-lettered,
// where the API lists it and can replay it.
import { randomBytes } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { BerthError } from '../../../common/errors.ts';
import { fnId, getFunction, parseFnId, type FunctionRecord } from '../../../common/functions.ts';
import { BULLMQ_PREFIX, keys, queues } from '../../../common/keys.ts';
import type { Logger } from '../../../common/log.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import { NEVER_GONE } from './client-gone.ts';
import type { FunctionGateway } from './gateway.ts';

const KEEP_S = 6 * 3600;
/** Largest answer body kept with an invocation. */
const MAX_RESULT_BYTES = 1024 * 1024;

export interface StoredRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  /** base64 */
  body: string;
}

export interface InvocationView {
  invocationId: string;
  function: string;
  status: 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  attempts: number;
  createdAt: string;
  completedAt?: string;
  durationMs?: number;
  error?: string;
  result?: { statusCode: number; headers: Record<string, string>; body: string; bodyEncoding: 'utf8' | 'base64' };
}

interface InvocationJob {
  invocationId: string;
}

export interface AsyncOptions {
  redis: BerthRedis;
  logger: Logger;
  gateway: FunctionGateway;
  /** First retry delay, doubled each time. BERTH_FN_ASYNC_BACKOFF_MS. @defaultValue 1000 */
  backoffMs?: number;
  /** Jobs one replica runs at once per function. @defaultValue 16 */
  concurrency?: number;
  /** How often the set of functions is read to start or stop workers. @defaultValue 5000 */
  syncMs?: number;
}

export class AsyncInvocations {
  private readonly workers = new Map<string, Worker<InvocationJob>>();
  private readonly queuesByFn = new Map<string, Queue<InvocationJob>>();
  private readonly sync: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: AsyncOptions) {
    this.sync = setInterval(() => { void this.syncWorkers(); }, o.syncMs ?? 5000);
    this.sync.unref();
    void this.syncWorkers();
  }

  private queue(tenant: string, name: string): Queue<InvocationJob> {
    const id = fnId(tenant, name);
    let q = this.queuesByFn.get(id);
    if (!q) {
      q = new Queue<InvocationJob>(queues.fn(tenant, name), { connection: this.o.redis, prefix: BULLMQ_PREFIX });
      this.queuesByFn.set(id, q);
    }
    return q;
  }

  /** Starts this replica's worker for the function's queue (once). */
  ensureWorker(tenant: string, name: string): void {
    const id = fnId(tenant, name);
    if (this.closed || this.workers.has(id)) return;
    const worker = new Worker<InvocationJob>(queues.fn(tenant, name), (job) => this.run(tenant, name, job), {
      connection: this.o.redis, prefix: BULLMQ_PREFIX, concurrency: this.o.concurrency ?? 16,
    });
    worker.on('error', (err) => this.o.logger.warn({ function: id, err: err.message }, 'async worker error'));
    this.workers.set(id, worker);
  }

  private async syncWorkers(): Promise<void> {
    try {
      const all = new Set(await this.o.redis.smembers(keys.functions()));
      for (const id of all) {
        const { tenant, name } = parseFnId(id);
        this.ensureWorker(tenant, name);
      }
      for (const [id, worker] of this.workers) {
        if (all.has(id)) continue;
        this.workers.delete(id);
        await worker.close();
      }
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, 'syncing async workers failed');
    }
  }

  async enqueue(fn: FunctionRecord, request: StoredRequest): Promise<string> {
    const invocationId = randomBytes(16).toString('hex');
    const key = keys.invocation(invocationId);
    await this.o.redis.multi()
      .hset(key, 'invocationId', invocationId, 'tenant', fn.tenant, 'function', fn.name, 'status', 'QUEUED', 'attempts', '0',
        'createdAt', new Date().toISOString(), 'request', JSON.stringify(request))
      .expire(key, KEEP_S)
      .exec();
    await this.add(fn, invocationId, `inv-${invocationId}`);
    return invocationId;
  }

  private async add(fn: FunctionRecord, invocationId: string, jobId: string): Promise<void> {
    this.ensureWorker(fn.tenant, fn.name);
    await this.queue(fn.tenant, fn.name).add('invoke', { invocationId }, {
      jobId,
      attempts: fn.config.asyncRetries + 1,
      backoff: { type: 'exponential', delay: this.o.backoffMs ?? 1000 },
      removeOnComplete: true,
      removeOnFail: true,
    });
  }

  /** One attempt. Throws to let BullMQ retry; dead-letters after the last attempt. */
  private async run(tenant: string, name: string, job: Job<InvocationJob>): Promise<void> {
    const { invocationId } = job.data;
    const key = keys.invocation(invocationId);
    const raw = await this.o.redis.hget(key, 'request');
    if (!raw) return; // expired
    const attempt = job.attemptsMade + 1;
    const lastAttempt = attempt >= (job.opts.attempts ?? 1);
    await this.o.redis.hset(key, 'status', 'RUNNING', 'attempts', String(attempt));
    const fn = await getFunction(this.o.redis, tenant, name);
    if (!fn) {
      await this.o.redis.hset(key, 'status', 'FAILED', 'error', 'The function was deleted', 'completedAt', new Date().toISOString());
      return;
    }
    const request = JSON.parse(raw) as StoredRequest;
    const started = Date.now();
    let error: string | undefined;
    const fields: string[] = [];
    try {
      const answer = await this.o.gateway.forward(fn, {
        method: request.method, path: request.path, headers: request.headers, body: Buffer.from(request.body, 'base64'),
      }, NEVER_GONE);
      const body = await answer.body.read(MAX_RESULT_BYTES);
      await answer.finished;
      const text = body.toString('utf8');
      const isText = Buffer.from(text, 'utf8').equals(body);
      const headers = Object.fromEntries(Object.entries(answer.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
      fields.push('result', JSON.stringify({ statusCode: answer.statusCode, headers, body: isText ? text : body.toString('base64'), bodyEncoding: isText ? 'utf8' : 'base64' }));
      if (answer.statusCode >= 500) error = `The function answered ${answer.statusCode}`;
    } catch (err) {
      error = err instanceof BerthError ? `${err.code}: ${err.message}` : (err as Error).message;
    }
    fields.push('durationMs', String(Date.now() - started));
    if (!error) {
      await this.o.redis.hset(key, ...fields, 'status', 'SUCCEEDED', 'completedAt', new Date().toISOString());
      await this.o.redis.hdel(key, 'error');
      return;
    }
    if (lastAttempt) {
      await this.o.redis.multi()
        .hset(key, ...fields, 'status', 'FAILED', 'error', error, 'completedAt', new Date().toISOString())
        .zadd(keys.fnDeadLetters(tenant, name), Date.now(), invocationId)
        .exec();
      this.o.logger.warn({ function: fnId(tenant, name), invocationId, attempts: attempt, error }, 'asynchronous invocation dead-lettered');
    } else {
      await this.o.redis.hset(key, ...fields, 'status', 'QUEUED', 'error', error);
    }
    throw new Error(error);
  }

  async get(tenant: string, name: string, invocationId: string): Promise<InvocationView> {
    const h = await this.o.redis.hgetall(keys.invocation(invocationId));
    if (!h.invocationId || h.tenant !== tenant || h.function !== name) {
      throw new BerthError('INVOCATION_NOT_FOUND', `No invocation ${invocationId} of ${name}`);
    }
    return view(h);
  }

  async deadLetters(tenant: string, name: string): Promise<InvocationView[]> {
    const ids = await this.o.redis.zrevrange(keys.fnDeadLetters(tenant, name), 0, 999);
    const hashes = await Promise.all(ids.map((id) => this.o.redis.hgetall(keys.invocation(id))));
    const expired = ids.filter((_, i) => !hashes[i]!.invocationId);
    if (expired.length > 0) await this.o.redis.zrem(keys.fnDeadLetters(tenant, name), ...expired);
    return hashes.filter((h) => h.invocationId).map(view);
  }

  /** Queues a dead-lettered invocation again, with fresh retries. */
  async replay(fn: FunctionRecord, invocationId: string): Promise<void> {
    const removed = await this.o.redis.zrem(keys.fnDeadLetters(fn.tenant, fn.name), invocationId);
    const h = await this.o.redis.hgetall(keys.invocation(invocationId));
    if (removed === 0 || !h.invocationId || h.tenant !== fn.tenant) {
      throw new BerthError('INVOCATION_NOT_FOUND', `No dead-lettered invocation ${invocationId} of ${fn.name}`);
    }
    const replays = await this.o.redis.hincrby(keys.invocation(invocationId), 'replays', 1);
    await this.o.redis.multi()
      .hset(keys.invocation(invocationId), 'status', 'QUEUED', 'attempts', '0')
      .hdel(keys.invocation(invocationId), 'completedAt')
      .expire(keys.invocation(invocationId), KEEP_S)
      .exec();
    await this.add(fn, invocationId, `inv-${invocationId}-replay-${replays}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sync);
    await Promise.all([...this.workers.values()].map((w) => w.close()));
    await Promise.all([...this.queuesByFn.values()].map((q) => q.close()));
    this.workers.clear();
    this.queuesByFn.clear();
  }
}

function view(h: Record<string, string>): InvocationView {
  const v: InvocationView = {
    invocationId: h.invocationId!,
    function: h.function!,
    status: h.status as InvocationView['status'],
    attempts: Number(h.attempts ?? 0),
    createdAt: h.createdAt!,
  };
  if (h.completedAt) v.completedAt = h.completedAt;
  if (h.durationMs) v.durationMs = Number(h.durationMs);
  if (h.error) v.error = h.error;
  if (h.result) v.result = JSON.parse(h.result) as InvocationView['result'];
  return v;
}
