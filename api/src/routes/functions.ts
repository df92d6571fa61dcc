// Functions: deploy (create or new version), list, describe, delete, stats,
// asynchronous invocations and their dead letters; and the gateway's raw routes
// (POST /v1/functions/{name}/invoke and the function URL /fn/{name}/…), which
// take any body as a stream and so live in their own plugin, outside the
// JSON-only handler table.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { BerthError } from '../../../common/errors.ts';
import {
  deleteFunction, ensureAgentToken, functionKeys, getFunction, listFunctions, saveFunction, stopInstanceTask,
  type FunctionConfig, type FunctionRecord,
} from '../../../common/functions.ts';
import type { Logger } from '../../../common/log.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import { principal } from '../auth.ts';
import type { Body, Handlers, Params } from '../handlers.ts';
import { checkCpuMemory, checkImageReference } from '../limits.ts';
import { invalidField } from '../paging.ts';
import type { TaskQueues } from '../queues.ts';
import { AsyncInvocations, type StoredRequest } from '../gateway/async.ts';
import { FunctionCache, FunctionGateway, type ForwardRequest } from '../gateway/gateway.ts';
import { createGatewayMetrics } from '../gateway/metrics.ts';
import { SlotWaiters } from '../gateway/waiters.ts';
import type { SecretBox } from '../../../common/secret-box.ts';
import { sealCredentials } from './credentials.ts';

type FunctionInput = Body<'deployFunction'>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Largest body of an asynchronous invocation (Lambda's is 256 KiB; Berth keeps 1 MiB). */
const MAX_EVENT_BYTES = 1024 * 1024;

export interface FunctionDeps {
  redis: BerthRedis;
  /** Seals the registry password of a function's image. */
  secretBox: SecretBox | null;
  logger: Logger;
  queues: TaskQueues;
  registry: Registry;
  env?: NodeJS.ProcessEnv;
}

function toConfig(input: FunctionInput): FunctionConfig {
  const config: FunctionConfig = {
    name: input.name,
    image: input.image,
    environment: input.environment ?? [],
    cpu: input.cpu ?? 256,
    memory: input.memory ?? 256,
    timeout: input.timeout ?? 30,
    concurrency: input.concurrency ?? 1,
    minInstances: input.minInstances ?? 0,
    maxInstances: input.maxInstances ?? 10,
    idleTimeout: input.idleTimeout ?? 60,
    port: input.port ?? 8080,
    readiness: { ...(input.readiness?.path ? { path: input.readiness.path } : {}), timeout: input.readiness?.timeout ?? 60 },
    asyncRetries: input.asyncRetries ?? 2,
  };
  if (input.command) config.command = input.command;
  if (input.entryPoint) config.entryPoint = input.entryPoint;
  if (input.repositoryCredentials) config.repositoryCredentials = input.repositoryCredentials;
  return config;
}

async function counts(redis: BerthRedis, fn: FunctionRecord) {
  const k = functionKeys(fn.tenant, fn.name);
  const [live, ready, draining, inflight] = await Promise.all([
    redis.smembers(k.live), redis.zrange(k.ready, 0, -1), redis.scard(k.draining), redis.hvals(k.inflight),
  ]);
  const liveSet = new Set(live);
  const readyLive = ready.filter((id) => liveSet.has(id)).length;
  return {
    instances: live.length,
    instanceCounts: { ready: readyLive, starting: live.length - readyLive, draining, inFlight: inflight.reduce((n, v) => n + Number(v), 0) },
  };
}

async function toApiFunction(redis: BerthRedis, fn: FunctionRecord) {
  const { repositoryCredentials, ...config } = fn.config;
  const out = {
    ...config,
    ...(repositoryCredentials ? { repositoryCredentials: { username: repositoryCredentials.username } } : {}),
    version: fn.version,
    status: 'ACTIVE' as const,
    url: `/fn/${fn.name}/`,
    ...(await counts(redis, fn)),
    createdAt: fn.createdAt,
    updatedAt: fn.updatedAt,
  };
  return out;
}

function percentileOf(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export interface FunctionsApi {
  handlers: Handlers;
  /** Operations answered by the raw routes below rather than the handler table. */
  rawOperations: Set<string>;
}

export function installFunctions(app: FastifyInstance, deps: FunctionDeps): FunctionsApi {
  const { redis, logger } = deps;
  const env = deps.env ?? process.env;
  const positive = (name: string, fallback: number) => {
    const n = Number(env[name]);
    return env[name] && Number.isFinite(n) && n > 0 ? n : fallback;
  };
  let token: Promise<string> | undefined;
  const waiters = new SlotWaiters(() => redis.duplicate(), logger);
  const gateway = new FunctionGateway({
    redis, logger, waiters,
    metrics: createGatewayMetrics(deps.registry),
    place: (ids) => deps.queues.place(ids.map((taskId) => ({ taskId }))),
    stopOnNode: (nodeId, taskId, reason) => deps.queues.stop(nodeId, taskId, reason),
    agentToken: () => (token ??= ensureAgentToken(redis)),
    queueTimeoutMs: positive('BERTH_FN_QUEUE_TIMEOUT_S', 30) * 1000,
    maxQueue: positive('BERTH_FN_MAX_QUEUE', 1000),
  });
  const cache = new FunctionCache((tenant, name) => getFunction(redis, tenant, name));
  const invocations = new AsyncInvocations({ redis, logger, gateway, backoffMs: positive('BERTH_FN_ASYNC_BACKOFF_MS', 1000) });
  app.addHook('onClose', async () => {
    waiters.close();
    await gateway.close();
    await invocations.close();
  });

  async function findFunction(tenant: string, name: string, cached = false): Promise<FunctionRecord> {
    const fn = NAME.test(name) ? await (cached ? cache.get(tenant, name) : getFunction(redis, tenant, name)) : null;
    if (!fn) throw new BerthError('FUNCTION_NOT_FOUND', `No function ${name}`);
    return fn;
  }

  /** Runs one invocation for the raw routes: synchronous (streamed) or queued (202). */
  async function invoke(request: FastifyRequest, reply: FastifyReply, name: string, path: string): Promise<FastifyReply | void> {
    const tenant = principal(request).tenant;
    const fn = await findFunction(tenant, name, true);
    const body = request.body as NodeJS.ReadableStream | undefined;
    const forwarded: ForwardRequest['headers'] = {
      ...request.headers,
      'x-forwarded-for': request.ip,
      'x-forwarded-proto': request.protocol,
      'x-forwarded-host': request.headers.host ?? '',
    };

    if (String(request.headers['x-berth-invocation-type'] ?? '').toLowerCase() === 'event') {
      const chunks: Buffer[] = [];
      let size = 0;
      if (body) {
        for await (const chunk of body) {
          size += (chunk as Buffer).length;
          if (size > MAX_EVENT_BYTES) throw new BerthError('BODY_TOO_LARGE', `An asynchronous invocation's body is at most ${MAX_EVENT_BYTES} bytes`);
          chunks.push(chunk as Buffer);
        }
      }
      const headers = Object.fromEntries(Object.entries(forwarded).filter(([k, v]) => v !== undefined && k !== 'authorization' && k !== 'content-length')) as StoredRequest['headers'];
      const invocationId = await invocations.enqueue(fn, { method: request.method, path, headers, body: Buffer.concat(chunks).toString('base64') });
      return reply.code(202).header('x-berth-invocation-id', invocationId).send({ invocationId });
    }

    const gone = new AbortController();
    const onClose = () => { if (!reply.raw.writableFinished) gone.abort(); };
    reply.raw.once('close', onClose);
    let answer;
    try {
      answer = await gateway.forward(fn, { method: request.method, path, headers: forwarded, body: body as ForwardRequest['body'] }, gone.signal);
    } catch (err) {
      reply.raw.off('close', onClose);
      if (err instanceof BerthError && err.code === 'FUNCTION_THROTTLED') {
        reply.header('retry-after', String((err.details as { retryAfter?: number } | undefined)?.retryAfter ?? 1));
      }
      if (gone.signal.aborted) return;
      throw err;
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(answer.statusCode, answer.headers);
    answer.body.pipe(res);
    answer.body.once('error', () => res.destroy());
  }

  // The raw routes: any content type, the body as a stream, no JSON schema.
  void app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    raw.post('/v1/functions/:name/invoke', async (request, reply) => {
      const { name } = request.params as { name: string };
      const query = request.url.indexOf('?');
      return invoke(request, reply, name, query >= 0 ? `/${request.url.slice(query)}` : '/');
    });
    const fnUrl = async (request: FastifyRequest, reply: FastifyReply) => {
      const { name } = request.params as { name: string };
      const prefix = `/fn/${name}`;
      const rest = request.url.startsWith(prefix) ? request.url.slice(prefix.length) : '/';
      return invoke(request, reply, name, rest.startsWith('/') ? rest : `/${rest}`);
    };
    raw.all('/fn/:name', fnUrl);
    raw.all('/fn/:name/*', fnUrl);
  });

  const handlers: Handlers = {
    async deployFunction(request, reply) {
      const tenant = principal(request).tenant;
      const input = request.body as FunctionInput;
      checkImageReference(input.image);
      const config = toConfig(input);
      if (config.repositoryCredentials) config.repositoryCredentials = sealCredentials(deps.secretBox, tenant, config.repositoryCredentials);
      checkCpuMemory(config.cpu, config.memory, { cpu: 'body/cpu', memory: 'body/memory' });
      if (config.minInstances > config.maxInstances) throw invalidField('body/minInstances', `must be <= maxInstances (${config.maxInstances})`);
      const { record, created } = await saveFunction(redis, tenant, config);
      cache.forget(tenant, config.name);
      invocations.ensureWorker(tenant, config.name);
      request.log.info({ function: config.name, version: record.version }, created ? 'function created' : 'function updated');
      return reply.code(created ? 201 : 200).send(await toApiFunction(redis, record));
    },

    async listFunctions(request) {
      const tenant = principal(request).tenant;
      const fns = await listFunctions(redis, tenant);
      return { functions: await Promise.all(fns.map((f) => toApiFunction(redis, f))) };
    },

    async getFunction(request) {
      const { name } = request.params as Params<'getFunction'>;
      return toApiFunction(redis, await findFunction(principal(request).tenant, name));
    },

    async deleteFunction(request, reply) {
      const { name } = request.params as Params<'deleteFunction'>;
      const tenant = principal(request).tenant;
      await findFunction(tenant, name);
      const instances = await deleteFunction(redis, tenant, name);
      cache.forget(tenant, name);
      await Promise.all(instances.map((id) => stopInstanceTask(redis, id, `Function ${name} deleted`, (nodeId, taskId, reason) => deps.queues.stop(nodeId, taskId, reason))));
      request.log.info({ function: name, instances: instances.length }, 'function deleted');
      return reply.code(204).send();
    },

    async getFunctionStats(request) {
      const { name } = request.params as Params<'getFunctionStats'>;
      const fn = await findFunction(principal(request).tenant, name);
      const k = functionKeys(fn.tenant, fn.name);
      const [stats, durations, live] = await Promise.all([redis.hgetall(k.stats), redis.lrange(k.durations, 0, -1), redis.scard(k.live)]);
      const sorted = durations.map(Number).sort((a, b) => a - b);
      const n = (f: string) => Number(stats[f] ?? 0);
      return {
        invocations: n('invocations'), errors: n('errors'), coldStarts: n('coldStarts'), timeouts: n('timeouts'), throttles: n('throttles'),
        instances: live,
        ...(sorted.length > 0 ? { latency: { p50: percentileOf(sorted, 50), p95: percentileOf(sorted, 95), p99: percentileOf(sorted, 99) } } : {}),
      };
    },

    async getInvocation(request) {
      const { name, invocationId } = request.params as Params<'getInvocation'>;
      const tenant = principal(request).tenant;
      await findFunction(tenant, name);
      return invocations.get(tenant, name, invocationId);
    },

    async listDeadLetters(request) {
      const { name } = request.params as Params<'listDeadLetters'>;
      const tenant = principal(request).tenant;
      await findFunction(tenant, name);
      return { invocations: await invocations.deadLetters(tenant, name) };
    },

    async replayDeadLetter(request, reply) {
      const { name, invocationId } = request.params as Params<'replayDeadLetter'>;
      const fn = await findFunction(principal(request).tenant, name);
      await invocations.replay(fn, invocationId);
      return reply.code(202).header('x-berth-invocation-id', invocationId).send({ invocationId });
    },
  };
  return { handlers, rawOperations: new Set(['invokeFunction']) };
}
