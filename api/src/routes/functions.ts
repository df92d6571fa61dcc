// Functions: deploy (create or new version), list, describe, delete, stats,
// asynchronous invocations and their dead letters; and the gateway's raw routes
// (POST /v1/functions/{name}/invoke and the function URL /fn/{name}/…), which
// take any body as a stream and so live in their own plugin, outside the
// JSON-only handler table.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { BerthError } from '../../../common/errors.ts';
import {
  deleteFunction, ensureAgentToken, functionKeys, getFunction, listFunctions, saveFunction, stopInstanceTask,
  type FunctionConfig, type FunctionRecord,
} from '../../../common/functions.ts';
import type { Logger } from '../../../common/log.ts';
import { closeRedis, type BerthRedis } from '../../../common/redis.ts';
import { createAuthenticator, principal, type RateLimit } from '../auth.ts';
import { toBerthError } from '../errors.ts';
import type { Body, Handlers, Params } from '../handlers.ts';
import { checkCpuMemory, checkImageReference } from '../limits.ts';
import { invalidField } from '../paging.ts';
import type { TaskQueues } from '../queues.ts';
import { AsyncInvocations, type StoredRequest } from '../gateway/async.ts';
import { ClientGone } from '../gateway/client-gone.ts';
import { FunctionCache } from '../gateway/function-cache.ts';
import { FunctionGateway, type ForwardRequest } from '../gateway/gateway.ts';
import { createGatewayMetrics } from '../gateway/metrics.ts';
import { SlotWaiters } from '../gateway/waiters.ts';
import { RevocationListener } from '../../../common/apikeys.ts';
import type { SecretBox } from '../../../common/secret-box.ts';
import { sealCredentials } from './credentials.ts';

type FunctionInput = Body<'deployFunction'>;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Where function URLs start; the server hands these requests to functionUrl. */
export const FN_PREFIX = '/fn/';
/** Largest body of an asynchronous invocation (Lambda's is 256 KiB; Berth keeps 1 MiB). */
const MAX_EVENT_BYTES = 1024 * 1024;

export interface FunctionDeps {
  redis: BerthRedis;
  /** Seals the registry password of a function's image. */
  secretBox: SecretBox | null;
  logger: Logger;
  queues: TaskQueues;
  registry: Registry;
  rateLimit: RateLimit;
  /** Request metrics of a route answered outside fastify. */
  requestMetrics?: (route: string) => (method: string, status: number, seconds: number) => void;
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
  /** Answers a request for the function URL (`/fn/{name}/…`, FN_PREFIX), in front of fastify. */
  functionUrl(req: IncomingMessage, res: ServerResponse): void;
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
  // The slots' own connection, so a slow command elsewhere (a log follow's blocking read) never delays them.
  const slotRedis = redis.duplicate() as BerthRedis;
  const gateway = new FunctionGateway({
    redis: slotRedis, logger, waiters,
    metrics: createGatewayMetrics(deps.registry),
    place: (ids, demand) => deps.queues.place(ids.map((taskId) => ({ taskId, demand }))),
    stopOnNode: (nodeId, taskId, reason) => deps.queues.stop(nodeId, taskId, reason),
    agentToken: () => (token ??= ensureAgentToken(redis)),
    queueTimeoutMs: positive('BERTH_FN_QUEUE_TIMEOUT_S', 30) * 1000,
    maxQueue: positive('BERTH_FN_MAX_QUEUE', 1000),
  });
  const cache = new FunctionCache(redis, (tenant, name) => getFunction(redis, tenant, name),
    (err) => logger.warn({ err: err.message }, 'function changes subscriber'));
  const invocations = new AsyncInvocations({ redis, logger, gateway, backoffMs: positive('BERTH_FN_ASYNC_BACKOFF_MS', 1000) });
  const revocations = new RevocationListener(redis, (err) => logger.warn({ err: err.message }, 'API key revocations subscriber'));
  app.addHook('onClose', async () => {
    revocations.close();
    cache.close();
    waiters.close();
    await gateway.close();
    await invocations.close();
    await closeRedis(slotRedis);
  });

  async function findFunction(tenant: string, name: string, cached = false): Promise<FunctionRecord> {
    const fn = NAME.test(name) ? await (cached ? cache.get(tenant, name) : getFunction(redis, tenant, name)) : null;
    if (!fn) throw new BerthError('FUNCTION_NOT_FOUND', `No function ${name}`);
    return fn;
  }

  interface Invocation {
    tenant: string;
    name: string;
    method: string;
    /** Path and query as the instance sees them. */
    path: string;
    headers: IncomingHttpHeaders;
    body: Readable | undefined;
    ip: string;
    protocol: string;
  }

  /**
   * Runs one invocation: synchronous, streamed into `res` (resolves once the
   * answer's head is written), or queued (resolves with its id, for a 202).
   * Throws BerthError before anything is written.
   */
  async function invoke(inv: Invocation, res: ServerResponse, beforeAnswer?: () => void): Promise<{ invocationId: string } | undefined> {
    const fn = await findFunction(inv.tenant, inv.name, true);
    const forwarded: ForwardRequest['headers'] = {
      ...inv.headers,
      'x-forwarded-for': inv.ip,
      'x-forwarded-proto': inv.protocol,
      'x-forwarded-host': inv.headers.host ?? '',
    };

    if (String(inv.headers['x-berth-invocation-type'] ?? '').toLowerCase() === 'event') {
      const chunks: Buffer[] = [];
      let size = 0;
      if (inv.body) {
        for await (const chunk of inv.body) {
          size += (chunk as Buffer).length;
          if (size > MAX_EVENT_BYTES) throw new BerthError('BODY_TOO_LARGE', `An asynchronous invocation's body is at most ${MAX_EVENT_BYTES} bytes`);
          chunks.push(chunk as Buffer);
        }
      }
      const headers = Object.fromEntries(Object.entries(forwarded).filter(([k, v]) => v !== undefined && k !== 'authorization' && k !== 'content-length')) as StoredRequest['headers'];
      return { invocationId: await invocations.enqueue(fn, { method: inv.method, path: inv.path, headers, body: Buffer.concat(chunks).toString('base64') }) };
    }

    const gone = new ClientGone();
    const onClose = () => { if (!res.writableFinished) gone.abort(); };
    res.once('close', onClose);
    let answer;
    try {
      answer = await gateway.forward(fn, { method: inv.method, path: inv.path, headers: forwarded, body: inv.body }, gone);
    } catch (err) {
      res.off('close', onClose);
      if (gone.aborted) return undefined;
      throw err;
    }
    beforeAnswer?.();
    res.writeHead(answer.statusCode, answer.headers);
    answer.body.pipe(res);
    return undefined;
  }

  /** Sends a BerthError as the API's error handler does (the function URL answers outside fastify). */
  function sendRawError(res: ServerResponse, err: BerthError, retryAfterS?: number): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: OutgoingHttpHeaders = { 'content-type': 'application/json; charset=utf-8' };
    if (err.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer';
    if (retryAfterS !== undefined) headers['retry-after'] = String(retryAfterS);
    res.writeHead(err.status, headers).end(JSON.stringify(err));
  }

  const authenticate = createAuthenticator({ redis, rateLimit: deps.rateLimit, revocations });
  const fnUrlRequests = deps.requestMetrics?.('/fn/:name/*');

  /**
   * The function URL `/fn/{name}/…`, answered in front of fastify: its routing,
   * hooks and reply objects would cost more than the gateway itself. Same
   * authentication, rate limit, errors and request metrics as the routes, but a
   * key found is trusted for API_KEY_CACHE_MS while revocations are heard: one
   * revoked through any API replica stops here at once; one deleted from Redis
   * behind the API's back (no revocation published) works here that long.
   */
  function functionUrl(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    res.once('finish', () => fnUrlRequests?.(req.method ?? 'GET', res.statusCode, Number(process.hrtime.bigint() - started) / 1e9));
    const url = req.url ?? '/';
    const slash = url.indexOf('/', FN_PREFIX.length);
    const query = url.indexOf('?', FN_PREFIX.length);
    const nameEnd = Math.min(slash < 0 ? url.length : slash, query < 0 ? url.length : query);
    let name: string;
    try {
      name = decodeURIComponent(url.slice(FN_PREFIX.length, nameEnd));
    } catch {
      sendRawError(res, new BerthError('BAD_REQUEST', 'The URL is not valid (bad percent-encoding?)'));
      req.resume();
      return;
    }
    const rest = url.slice(nameEnd);
    const path = rest.startsWith('/') ? rest : `/${rest}`;
    void (async () => {
      const auth = await authenticate(req.headers.authorization);
      if ('error' in auth) {
        sendRawError(res, auth.error, auth.retryAfterS);
        req.resume();
        return;
      }
      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      const accepted = await invoke({
        tenant: auth.principal.tenant, name, method: req.method ?? 'GET', path, headers: req.headers,
        body: hasBody ? req : undefined, ip: req.socket.remoteAddress ?? '', protocol: 'http',
      }, res);
      if (accepted) {
        res.writeHead(202, { 'content-type': 'application/json; charset=utf-8', 'x-berth-invocation-id': accepted.invocationId })
          .end(JSON.stringify(accepted));
      }
    })().catch((err: Error) => {
      const known = toBerthError(err);
      if (!known) logger.error({ err, route: '/fn/:name/*' }, 'request failed');
      const sent = known ?? new BerthError('INTERNAL');
      sendRawError(res, sent, sent.code === 'FUNCTION_THROTTLED' ? (sent.details as { retryAfter?: number } | undefined)?.retryAfter ?? 1 : undefined);
      req.resume();
    });
  }

  // The raw routes: any content type, the body as a stream, no JSON schema.
  void app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    const route = async (request: FastifyRequest, reply: FastifyReply, name: string, path: string) => {
      try {
        const accepted = await invoke({
          tenant: principal(request).tenant, name, method: request.method, path,
          headers: request.headers, body: request.body as Readable | undefined, ip: request.ip, protocol: request.protocol,
        }, reply.raw, () => reply.hijack());
        if (accepted) return await reply.code(202).header('x-berth-invocation-id', accepted.invocationId).send(accepted);
      } catch (err) {
        if (err instanceof BerthError && err.code === 'FUNCTION_THROTTLED') {
          reply.header('retry-after', String((err.details as { retryAfter?: number } | undefined)?.retryAfter ?? 1));
        }
        throw err;
      }
      return undefined;
    };
    raw.post('/v1/functions/:name/invoke', async (request, reply) => {
      const { name } = request.params as { name: string };
      const query = request.url.indexOf('?');
      return route(request, reply, name, query >= 0 ? `/${request.url.slice(query)}` : '/');
    });
    // The server hands these to functionUrl before fastify; they answer inject() and any other caller.
    const fnUrl = async (request: FastifyRequest, reply: FastifyReply) => {
      const { name } = request.params as { name: string };
      const prefix = `/fn/${name}`;
      const rest = request.url.startsWith(prefix) ? request.url.slice(prefix.length) : '/';
      return route(request, reply, name, rest.startsWith('/') ? rest : `/${rest}`);
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
  return { handlers, functionUrl, rawOperations: new Set(['invokeFunction']) };
}
