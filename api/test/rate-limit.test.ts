import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { buildApi, rateLimitFromEnv } from '../src/index.ts';
import { errorBody, startApi, type TestApi } from './helpers.ts';

let api: TestApi;

beforeAll(async () => {
  api = await startApi({ rateLimit: { rate: 5, burst: 5 } });
});
afterAll(async () => { await api.close(); });

describe('rate limit per API key', () => {
  it('answers 429 with Retry-After over the rate, per key, and lets requests through again', async () => {
    const one = await api.tenant();
    const two = await api.tenant();
    const codes: number[] = [];
    for (let i = 0; i < 8; i++) codes.push((await api.request(one.key, { url: '/v1/tasks' })).statusCode);
    expect(codes.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(codes.slice(5)).toEqual([429, 429, 429]);

    const limited = await api.request(one.key, { url: '/v1/tasks' });
    expect(limited.statusCode).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.json()).toEqual(errorBody('RATE_LIMITED', 'Over 5 requests per second for this API key'));

    // Another key has a bucket of its own; the service routes have none.
    expect((await api.request(two.key, { url: '/v1/tasks' })).statusCode).toBe(200);
    for (let i = 0; i < 20; i++) expect((await api.app.inject({ url: '/healthz' })).statusCode).toBe(200);

    // One token comes back every 200 ms.
    await new Promise((r) => setTimeout(r, 450));
    expect((await api.request(one.key, { url: '/v1/tasks' })).statusCode).toBe(200);
  });

  it('holds across API replicas sharing Redis', async () => {
    const k = await api.tenant();
    // A slow refill (one token per 5 s), so only the bucket's size decides.
    const replicas = await Promise.all([0, 1].map(() => buildApi({ redis: api.redis, logger: pino({ level: 'silent' }), rateLimit: { rate: 0.2, burst: 5 } })));
    try {
      const codes: number[] = [];
      for (let i = 0; i < 7; i++) {
        codes.push((await replicas[i % 2]!.inject({ url: '/v1/tasks', headers: { authorization: `Bearer ${k.key}` } })).statusCode);
      }
      expect(codes).toEqual([200, 200, 200, 200, 200, 429, 429]);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });
});

describe('rateLimitFromEnv', () => {
  it('defaults to 50 requests per second with bursts of 100', () => {
    expect(rateLimitFromEnv({})).toEqual({ rate: 50, burst: 100 });
  });

  it('reads BERTH_RATE_LIMIT and BERTH_RATE_BURST; 0 turns the limit off', () => {
    expect(rateLimitFromEnv({ BERTH_RATE_LIMIT: '10' })).toEqual({ rate: 10, burst: 20 });
    expect(rateLimitFromEnv({ BERTH_RATE_LIMIT: '10', BERTH_RATE_BURST: '15' })).toEqual({ rate: 10, burst: 15 });
    expect(rateLimitFromEnv({ BERTH_RATE_LIMIT: '0' }).rate).toBe(0);
    expect(() => rateLimitFromEnv({ BERTH_RATE_LIMIT: 'fast' })).toThrow('BERTH_RATE_LIMIT: expected a number >= 0, got "fast"');
  });
});
