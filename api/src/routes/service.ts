// Liveness, readiness, metrics and the spec itself; no API key needed.
import type { Registry } from 'prom-client';
import { BerthError } from '../../../common/errors.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { Handlers } from '../handlers.ts';
import type { OpenApiDocument } from '../spec.ts';

export function serviceHandlers(deps: {
  redis: BerthRedis; registry: Registry; spec: OpenApiDocument; readyTimeoutMs?: number; metricsText?: () => Promise<string>;
}): Handlers {
  const timeout = deps.readyTimeoutMs ?? 1000;
  return {
    async healthz() {
      return { status: 'ok' };
    },

    async readyz() {
      // A connection that is down would queue the PING until Redis is back.
      if (deps.redis.status !== 'ready') throw new BerthError('UNAVAILABLE', 'Redis does not answer');
      let timer: NodeJS.Timeout | undefined;
      const ok = await Promise.race([
        deps.redis.ping().then((r) => r === 'PONG', () => false),
        new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeout); }),
      ]);
      clearTimeout(timer);
      if (!ok) throw new BerthError('UNAVAILABLE', 'Redis does not answer');
      return { status: 'ok' };
    },

    async metrics(_request, reply) {
      return reply.type(deps.registry.contentType).send(await (deps.metricsText ? deps.metricsText() : deps.registry.metrics()));
    },

    async openapi() {
      return deps.spec;
    },
  };
}
