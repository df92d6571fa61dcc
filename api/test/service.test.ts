import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis } from '../../common/redis.ts';
import { freePort } from '../../test/harness/processes.ts';
import { buildApi } from '../src/index.ts';
import { loadSpec, specOperations } from '../src/spec.ts';
import { errorBody, startApi, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;

beforeAll(async () => {
  api = await startApi();
  ({ key } = await api.tenant());
});
afterAll(async () => { await api.close(); });

describe('service routes (no key needed)', () => {
  it('/healthz and /readyz answer ok', async () => {
    expect((await api.app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await api.app.inject({ url: '/readyz' })).json()).toEqual({ status: 'ok' });
  });

  it('/readyz answers 503 when Redis is unreachable', async () => {
    const dead = connectRedis(`redis://127.0.0.1:${await freePort()}`, { lazy: true });
    dead.on('error', () => {});
    const app = await buildApi({ redis: dead, logger: pino({ level: 'silent' }), queues: { place: async () => {}, stop: async () => {}, close: async () => {} } });
    try {
      const res = await app.inject({ url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual(errorBody('UNAVAILABLE', 'Redis does not answer'));
      expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await app.close();
      dead.disconnect();
    }
  });

  it('/metrics counts requests by route pattern, never the raw URL', async () => {
    const id = 'b'.repeat(32);
    await api.request(key, { url: `/v1/tasks/${id}` });
    const res = await api.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.body).toContain('http_requests_total{route="/v1/tasks/:taskId",method="GET",status="404"} 1');
    expect(res.body).toMatch(/http_request_duration_seconds_bucket\{le="[0-9.]+",route="\/v1\/tasks\/:taskId",method="GET",status="404"\}/);
    expect(res.body).not.toContain(id);
  });

  it('/openapi.json is the spec; /docs is Swagger UI served from the package', async () => {
    const spec = await api.app.inject({ url: '/openapi.json' });
    expect(spec.json()).toEqual(JSON.parse(JSON.stringify(loadSpec())));
    const docs = await api.app.inject({ url: '/docs' });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers['content-type']).toContain('text/html');
    expect(docs.body).not.toMatch(/https?:\/\/(cdn|unpkg|cdnjs)/);
    const css = await api.app.inject({ url: '/docs/static/swagger-ui.css' });
    expect(css.statusCode).toBe(200);
    const json = await api.app.inject({ url: '/docs/json' });
    expect(json.json().info.title).toBe('Berth API');
  });
});

describe('every operation in the spec has a handler', () => {
  it.each(specOperations().map((op) => [op.operationId, op] as const))('%s', async (_id, op) => {
    const url = op.path.replace(/\{[^}]+\}/g, 'x');
    // A stream that stays open is asked with a query it refuses, which still reaches its route.
    const res = await api.request(api.adminKey, { method: op.method, url: op.streaming ? `${url}?unknown-parameter=1` : url });
    expect(res.statusCode).not.toBe(501);
  });
});

describe('errors a client can cause', () => {
  it('unknown routes: 404 JSON', async () => {
    const res = await api.request(key, { url: '/v1/unknown' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(errorBody('NOT_FOUND', 'No such route'));
  });

  it('a trailing slash is another path: 404', async () => {
    const res = await api.request(key, { url: `/v1/tasks/${'a'.repeat(32)}/logs/` });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(errorBody('NOT_FOUND', 'No such route'));
  });

  it('wrong method: 405 JSON with Allow', async () => {
    const res = await api.request(key, { method: 'PUT', url: `/v1/tasks/${'a'.repeat(32)}` });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(res.json()).toEqual(errorBody('METHOD_NOT_ALLOWED', 'PUT is not allowed here; use GET, HEAD'));
  });

  it('bad JSON: 400 BAD_JSON', async () => {
    const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: '{"taskDefinition":', headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(errorBody('BAD_JSON', 'The request body is not valid JSON'));
  });

  it('empty JSON body: 400 BAD_JSON', async () => {
    const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: '', headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(errorBody('BAD_JSON', 'The body is empty; send JSON or no Content-Type'));
  });

  it('prototype poisoning: 400 BAD_JSON', async () => {
    const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: '{"__proto__":{"x":1}}', headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('BAD_JSON');
  });

  it('another content type: 415', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
      const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: 'a=b', headers: { 'content-type': type } });
      expect(res.statusCode, type).toBe(415);
      expect(res.json()).toEqual(errorBody('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json'));
    }
  });

  it('a body over 1 MiB: 413', async () => {
    const res = await api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: JSON.stringify({ family: 'x', image: 'y', command: ['a'.repeat(1100 * 1024)] }), headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual(errorBody('BODY_TOO_LARGE', 'The request body is too large'));
  });

  it('bad percent-encoding in the path: 400', async () => {
    const res = await api.request(key, { url: '/v1/tasks/%E0%A4%A' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(errorBody('BAD_REQUEST', 'The URL is not valid (bad percent-encoding?)'));
  });

  it('deep nesting: 400, not a crash', async () => {
    const deep = '['.repeat(50_000) + ']'.repeat(50_000);
    const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: `{"taskDefinition":"a","tags":${deep}}`, headers: { 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(400);
  });
});
