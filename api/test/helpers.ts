// One API on a real redis-server per test file, with an admin key and helpers
// to make tenant keys and send requests through inject().
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { pino } from 'pino';
import { createApiKey } from '../../common/apikeys.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { loadSecretBox, type SecretBox } from '../../common/secret-box.ts';
import { startRedis, type TestRedis } from '../../test/harness/redis.ts';
import { buildApi, ensureAdminKey, type ApiDeps } from '../src/index.ts';

export interface TestApi {
  app: FastifyInstance;
  redis: BerthRedis;
  server: TestRedis;
  stateDir: string;
  adminKey: string;
  /** The key the API seals secrets with, made in `stateDir` as the API daemon makes it. */
  secretBox: SecretBox;
  /** A fresh tenant with one key. */
  tenant(name?: string): Promise<{ tenant: string; key: string }>;
  request(key: string | null, options: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

let counter = 0;

export async function startApi(options: Partial<ApiDeps> = {}): Promise<TestApi> {
  const server = await startRedis();
  const redis = connectRedis(server.url);
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'berth-api-'));
  const secretBox = (await loadSecretBox(path.join(stateDir, 'secrets.key'), { create: true }))!;
  const app = await buildApi({
    redis,
    secretBox,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    rateLimit: { rate: 0, burst: 1 },
    followPollMs: 100,
    ...options,
  });
  await app.ready();
  const adminKey = await ensureAdminKey(redis, stateDir);
  return {
    app, redis, server, stateDir, adminKey, secretBox,
    async tenant(name) {
      const tenant = name ?? `t${process.pid}-${++counter}`;
      const { apiKey } = await createApiKey(redis, { tenant, name: 'test', admin: false });
      return { tenant, key: apiKey };
    },
    request(key, opts) {
      const headers = { ...(opts.headers ?? {}), ...(key ? { authorization: `Bearer ${key}` } : {}) };
      return app.inject({ ...opts, headers });
    },
    async close() {
      await app.close();
      redis.disconnect();
      await server.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** A valid task definition body; fields override. */
export function taskDef(family: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { family, image: 'registry.local:5000/berth/busybox:1.36', command: ['sh', '-c', 'echo hi'], cpu: 256, memory: 512, ...extra };
}

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, ...(details === undefined ? {} : { details }) } };
}
