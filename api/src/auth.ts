// Authentication (bearer API keys), the admin check and the per-key rate limit,
// as one onRequest hook. Which routes are public or admin-only comes from the
// spec (`security: []`, `x-berth-admin: true`), carried in each route's config.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { lookupApiKey, lookupApiKeyCached, type ApiKeyRecord, type RevocationListener } from '../../common/apikeys.ts';
import { BerthError } from '../../common/errors.ts';
import { keys } from '../../common/keys.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { apiScripts } from './scripts.ts';

export type Principal = ApiKeyRecord;

export interface RouteAccess {
  public?: boolean;
  admin?: boolean;
}

export interface RateLimit {
  /** Requests per second per key (BERTH_RATE_LIMIT); 0 turns the limit off. */
  rate: number;
  /** Bucket size (BERTH_RATE_BURST). */
  burst: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export function rateLimitFromEnv(env: NodeJS.ProcessEnv = process.env): RateLimit {
  const num = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name}: expected a number >= 0, got "${raw}"`);
    return n;
  };
  const rate = num('BERTH_RATE_LIMIT', 50);
  return { rate, burst: Math.max(1, num('BERTH_RATE_BURST', rate * 2)) };
}

/** The principal of an authenticated request (routes behind auth only). */
export function principal(request: FastifyRequest): Principal {
  if (!request.principal) throw new BerthError('UNAUTHORIZED');
  return request.principal;
}

const BEARER = /^Bearer +(\S{1,512})$/i;

/** Who a request is, or why it may not go on (with the seconds to wait when over the rate). */
export type AuthResult = { principal: Principal } | { error: BerthError; retryAfterS?: number };

/**
 * Checks a request's Authorization header and takes one token of its key's rate
 * limit. With `revocations` (the function URL's hot path), a found key is
 * trusted for API_KEY_CACHE_MS (common/apikeys.ts) without asking Redis again.
 */
export function createAuthenticator(deps: { redis: BerthRedis; rateLimit: RateLimit; revocations?: RevocationListener }): (authorization: string | undefined) => Promise<AuthResult> {
  const scripts = apiScripts(deps.redis);
  const { revocations } = deps;
  const lookup = (key: string) => (revocations ? lookupApiKeyCached(deps.redis, key, revocations) : lookupApiKey(deps.redis, key));
  return async (authorization) => {
    const match = BEARER.exec(authorization ?? '');
    const record = match ? await lookup(match[1]!) : null;
    if (!record) return { error: new BerthError('UNAUTHORIZED') };
    if (deps.rateLimit.rate > 0) {
      const [allowed, retryAfterMs] = await scripts.tokenBucket(keys.rateLimit(record.keyId), deps.rateLimit.rate, deps.rateLimit.burst);
      if (allowed !== 1) {
        return {
          error: new BerthError('RATE_LIMITED', `Over ${deps.rateLimit.rate} requests per second for this API key`),
          retryAfterS: Math.max(1, Math.ceil(retryAfterMs / 1000)),
        };
      }
    }
    return { principal: record };
  };
}

export function installAuth(app: FastifyInstance, deps: { redis: BerthRedis; rateLimit: RateLimit }): void {
  const authenticate = createAuthenticator(deps);
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (request, reply) => {
    const access = request.routeOptions.config?.access;
    const url = request.routeOptions.url;
    if (access?.public || url === '/docs' || url?.startsWith('/docs/')) return;

    const auth = await authenticate(request.headers.authorization);
    if ('error' in auth) {
      if (auth.retryAfterS !== undefined) reply.header('retry-after', String(auth.retryAfterS));
      throw auth.error;
    }
    request.principal = auth.principal;
    if (access?.admin && !auth.principal.admin) throw new BerthError('FORBIDDEN', 'This route needs an admin API key');
  });
}
