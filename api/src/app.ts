// buildApi: the fastify instance with every route of api/openapi.yaml, wired
// in plain sight: external plugins, hooks (auth, metrics), then the handler table.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Logger } from '../../common/log.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { installAuth, rateLimitFromEnv, type RateLimit } from './auth.ts';
import { BerthError } from '../../common/errors.ts';
import type { SecretBox } from '../../common/secret-box.ts';
import { installErrorHandling, sendError, toBerthError } from './errors.ts';
import type { Handler, Handlers } from './handlers.ts';
import { installDashboard } from './dashboard/index.ts';
import { installMetrics, routeMetrics } from './metrics.ts';
import { bullTaskQueues, type TaskQueues } from './queues.ts';
import { apiKeyHandlers } from './routes/api-keys.ts';
import { FN_PREFIX, installFunctions } from './routes/functions.ts';
import { nodeHandlers } from './routes/nodes.ts';
import { secretHandlers } from './routes/secrets.ts';
import { serviceHandlers } from './routes/service.ts';
import { taskDefinitionHandlers } from './routes/task-definitions.ts';
import { taskLogHandlers } from './routes/task-logs.ts';
import { taskStatsHandlers } from './routes/task-stats.ts';
import { taskHandlers } from './routes/tasks.ts';
import { createValidators, loadSpec, specOperations, type HttpPart } from './spec.ts';

export interface ApiDeps {
  redis: BerthRedis;
  logger: Logger;
  /** Where tasks go to be placed and stopped; BullMQ queues on `redis` by default (closed with the app). */
  queues?: TaskQueues;
  /** Requests per second per API key; BERTH_RATE_LIMIT / BERTH_RATE_BURST by default. */
  rateLimit?: RateLimit;
  /** A registry to add the request metrics to; a new one with process metrics by default. */
  metricsRegistry?: Registry;
  /** What /metrics answers; the registry's series by default (an API worker: every worker's, api/src/workers.ts). */
  metricsText?: () => Promise<string>;
  /** Largest request body in bytes (1 MiB). */
  bodyLimit?: number;
  /** How long a log follow's blocking read waits between status checks (1000 ms). */
  followPollMs?: number;
  /** Seals secret values (common/secret-box.ts); without it secrets cannot be stored or used. */
  secretBox?: SecretBox | null;
}

/** How long an idle keep-alive connection stays open: fastify's default (72 s, past common load balancers' 60 s). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

function notImplemented(operationId: string): Handler {
  return async () => { throw new BerthError('NOT_IMPLEMENTED', `${operationId} is not implemented yet`); };
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const spec = loadSpec();
  // The function URL is answered in front of fastify (routes/functions.ts, functionUrl).
  const front: { functionUrl?: (req: IncomingMessage, res: ServerResponse) => void } = {};
  const app = Fastify({
    serverFactory: (handler) => {
      const server = http.createServer((req, res) => {
        if (front.functionUrl && req.url?.startsWith(FN_PREFIX) && req.url.length > FN_PREFIX.length) front.functionUrl(req, res);
        else handler(req, res);
      });
      // fastify's own defaults, which it sets only on a server it makes itself.
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      server.requestTimeout = 0;
      return server;
    },
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // Never a stack trace for JSON like {"__proto__": …}: refuse it as bad JSON.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    routerOptions: { maxParamLength: 1024 },
    // Bad percent-encoding or an over-long parameter, caught by the router before any route.
    frameworkErrors: (err, _request, reply) => {
      void sendError(reply, toBerthError(err) ?? new BerthError('BAD_REQUEST'));
    },
  });
  // JSON only: anything else is 415 rather than a string the schema then refuses.
  app.removeContentTypeParser('text/plain');

  const validators = createValidators(spec);
  app.setValidatorCompiler(({ schema, httpPart }) => validators.compile(schema, httpPart as HttpPart));

  const routes: { re: RegExp; method: string }[] = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const re = new RegExp(`^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z0-9_]+/g, '[^/]+')}$`);
    for (const method of methods) routes.push({ re, method });
  });
  installErrorHandling(app, () => routes);

  const registry = installMetrics(app, deps.metricsRegistry);
  const rateLimit = deps.rateLimit ?? rateLimitFromEnv();
  installAuth(app, { redis: deps.redis, rateLimit });

  const ownQueues = deps.queues === undefined;
  const queues = deps.queues ?? bullTaskQueues(deps.redis);
  if (ownQueues) app.addHook('onClose', async () => { await queues.close(); });

  // The docs page: Swagger UI from the package's own files (no CDN), reading this spec.
  await app.register(swagger, { mode: 'static', specification: { document: spec as never } });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const dashboard = installDashboard(app, { redis: deps.redis, registry });
  // Functions: its handlers, plus the gateway's raw routes (invoke, /fn/{name}/…) in their own plugin.
  const functions = installFunctions(app, {
    redis: deps.redis, logger: deps.logger, queues, registry, secretBox: deps.secretBox ?? null,
    rateLimit, requestMetrics: (route) => routeMetrics(registry, route),
  });
  front.functionUrl = functions.functionUrl;
  // Log follows last as long as their task: end them on close, then cut what is left after a grace.
  const follows = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of follows) end();
    setTimeout(() => app.server.closeAllConnections?.(), 2000).unref();
  });

  const handlers: Handlers = {
    ...taskDefinitionHandlers({ redis: deps.redis, secretBox: deps.secretBox ?? null }),
    ...taskHandlers({ redis: deps.redis, queues, secretBox: deps.secretBox ?? null }),
    ...taskLogHandlers({ redis: deps.redis, followPollMs: deps.followPollMs, follows }),
    ...taskStatsHandlers({ redis: deps.redis }),
    ...secretHandlers({ redis: deps.redis, secretBox: deps.secretBox ?? null }),
    ...apiKeyHandlers({ redis: deps.redis }),
    ...nodeHandlers({ redis: deps.redis }),
    ...serviceHandlers({ redis: deps.redis, registry, spec, metricsText: deps.metricsText }),
    ...dashboard,
    ...functions.handlers,
  };

  for (const op of specOperations(spec)) {
    if (functions.rawOperations.has(op.operationId)) continue;
    // An operation the spec has and no code yet answers 501 (api/test/service.test.ts insists there is none).
    const handler = handlers[op.operationId as keyof Handlers] ?? notImplemented(op.operationId);
    app.route({
      method: op.method,
      url: op.url,
      schema: op.schema,
      config: { access: { public: op.public, admin: op.admin } },
      handler,
    });
  }
  return app;
}
