import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../common/apikeys.ts';
import { TS_LOADER } from '../../common/daemons.ts';
import { keys } from '../../common/keys.ts';
import { registerNode } from '../../common/nodes.ts';
import { ensureAdminKey } from '../src/index.ts';
import { errorBody, startApi, type TestApi } from './helpers.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let api: TestApi;
let tenantKey: string;

beforeAll(async () => {
  api = await startApi();
  ({ key: tenantKey } = await api.tenant());
});
afterAll(async () => { await api.close(); });

const UNAUTHORIZED = errorBody('UNAUTHORIZED', 'A valid API key is required as a bearer token');

describe('authentication', () => {
  it.each([
    ['no header', undefined],
    ['another scheme', 'Basic dXNlcjpwYXNz'],
    ['a malformed key', 'Bearer nope'],
    ['an unknown key', `Bearer berth_${'A'.repeat(43)}`],
    ['an empty bearer', 'Bearer '],
  ])('answers 401 for %s', async (_name, authorization) => {
    const res = await api.app.inject({ url: '/v1/tasks', headers: authorization === undefined ? {} : { authorization } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(res.json()).toEqual(UNAUTHORIZED);
  });

  it('answers 401 before reading the body, even on unknown routes', async () => {
    expect((await api.app.inject({ method: 'POST', url: '/v1/tasks', payload: '{bad' , headers: { 'content-type': 'application/json' } })).statusCode).toBe(401);
    expect((await api.app.inject({ url: '/v1/nothing-here' })).statusCode).toBe(401);
  });

  it('stores only the hash of a key', async () => {
    const all = await api.redis.keys('*');
    const dump = (await Promise.all(all.map(async (k) => {
      const type = await api.redis.type(k);
      if (type === 'hash') return JSON.stringify(await api.redis.hgetall(k));
      if (type === 'string') return (await api.redis.get(k)) ?? '';
      return '';
    }))).join('\n');
    expect(dump).not.toContain(tenantKey);
    expect(dump).not.toContain(api.adminKey);
    expect(await api.redis.exists(keys.apiKey(hashApiKey(tenantKey)))).toBe(1);
  });
});

describe('ensureAdminKey', () => {
  it('writes the key once, mode 0600, and returns the same key after', async () => {
    const file = path.join(api.stateDir, 'admin-key');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toBe(api.adminKey);
    expect(await ensureAdminKey(api.redis, api.stateDir)).toBe(api.adminKey);
    expect((await api.request(api.adminKey, { url: '/v1/nodes' })).statusCode).toBe(200);
  });

  it('gives two processes starting at once the same key', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-admin-'));
    try {
      const [one, two] = await Promise.all([ensureAdminKey(api.redis, dir), ensureAdminKey(api.redis, dir)]);
      expect(one).toBe(two);
      expect((await readFile(path.join(dir, 'admin-key'), 'utf8')).trim()).toBe(one);
      expect((await api.request(one, { url: '/v1/nodes' })).statusCode).toBe(200);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a file that does not hold a key', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-admin-'));
    try {
      await writeFile(path.join(dir, 'admin-key'), 'password123\n');
      await expect(ensureAdminKey(api.redis, dir)).rejects.toThrow('does not hold a Berth API key');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('registers the key of an existing file with a fresh Redis', async () => {
    await api.redis.del(keys.apiKey(hashApiKey(api.adminKey)));
    expect((await api.request(api.adminKey, { url: '/v1/nodes' })).statusCode).toBe(401);
    expect(await ensureAdminKey(api.redis, api.stateDir)).toBe(api.adminKey);
    expect((await api.request(api.adminKey, { url: '/v1/nodes' })).statusCode).toBe(200);
  });
});

describe('API keys (admin only)', () => {
  it('creates a key shown once, lists keys without secrets, revokes at once', async () => {
    const created = await api.request(api.adminKey, { method: 'POST', url: '/v1/api-keys', payload: { tenant: 'acme', name: 'ci' } });
    expect(created.statusCode).toBe(201);
    const body = created.json();
    expect(body).toEqual({ keyId: expect.stringMatching(/^[a-f0-9]{16}$/), tenant: 'acme', name: 'ci', admin: false, createdAt: expect.any(String), apiKey: expect.stringMatching(/^berth_[A-Za-z0-9_-]{43}$/) });
    expect((await api.request(body.apiKey, { url: '/v1/tasks' })).statusCode).toBe(200);

    const listed = await api.request(api.adminKey, { url: '/v1/api-keys?tenant=acme' });
    expect(listed.json()).toEqual({ apiKeys: [{ keyId: body.keyId, tenant: 'acme', name: 'ci', admin: false, createdAt: body.createdAt }] });
    expect((await api.request(api.adminKey, { url: '/v1/api-keys' })).body).not.toContain(body.apiKey);

    expect((await api.request(api.adminKey, { method: 'DELETE', url: `/v1/api-keys/${body.keyId}` })).statusCode).toBe(204);
    expect((await api.request(body.apiKey, { url: '/v1/tasks' })).statusCode).toBe(401);
    const again = await api.request(api.adminKey, { method: 'DELETE', url: `/v1/api-keys/${body.keyId}` });
    expect(again.statusCode).toBe(404);
    expect(again.json()).toEqual(errorBody('API_KEY_NOT_FOUND', `No API key ${body.keyId}`));
  });

  it('on the function URL, a key revoked through another API replica stops working at once', async () => {
    await api.app.listen({ host: '127.0.0.1', port: 0 });
    const fnUrl = `http://127.0.0.1:${(api.app.server.address() as { port: number }).port}/fn/nothing/`;
    const call = async (key: string) => (await fetch(fnUrl, { headers: { authorization: `Bearer ${key}` } })).status;
    const newKey = async (name: string) => (await api.request(api.adminKey, { method: 'POST', url: '/v1/api-keys', payload: { tenant: 'revoke', name } })).json();
    // The function URL's cache is trusted once its revocation subscriber is in place.
    for (let i = 0; i < 100 && Number((await api.redis.pubsub('NUMSUB', 'berth:apikeys-revoked'))[1]) < 1; i++) await new Promise((r) => setTimeout(r, 50));

    // The cache is in play: a key deleted from Redis behind the API's back (nothing published) still passes for a while.
    const behindBack = await newKey('behind-back');
    expect(await call(behindBack.apiKey)).toBe(404); // authenticated; no such function
    await api.redis.del(keys.apiKey(hashApiKey(behindBack.apiKey)));
    expect(await call(behindBack.apiKey)).toBe(404);

    // Revoked by another process (another replica): refused here within moments, not after the cache's 5 s.
    const revoked = await newKey('revoked');
    expect(await call(revoked.apiKey)).toBe(404);
    const script = `import { deleteApiKey } from './common/apikeys.ts'; import { connectRedis } from './common/redis.ts';
      const redis = connectRedis(${JSON.stringify(api.server.url)}); if (!(await deleteApiKey(redis, ${JSON.stringify(revoked.keyId)}))) process.exit(1); redis.disconnect();`;
    execFileSync(process.execPath, ['--import', TS_LOADER, '--input-type=module', '-e', script], { cwd: repo });
    const since = Date.now();
    let status = await call(revoked.apiKey);
    while (status !== 401 && Date.now() - since < 1000) status = await call(revoked.apiKey);
    expect(status).toBe(401);
    expect(Date.now() - since).toBeLessThan(1000);
  });

  it('creates admin keys on request', async () => {
    const created = await api.request(api.adminKey, { method: 'POST', url: '/v1/api-keys', payload: { tenant: 'ops', name: 'root', admin: true } });
    expect(created.json().admin).toBe(true);
    expect((await api.request(created.json().apiKey, { url: '/v1/nodes' })).statusCode).toBe(200);
  });

  it('refuses bad input', async () => {
    const res = await api.request(api.adminKey, { method: 'POST', url: '/v1/api-keys', payload: { tenant: 'Bad Tenant', name: 'x' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toBe('body/tenant must match pattern "^[a-z0-9][a-z0-9_-]{0,62}$"');
  });

  it.each([
    ['POST', '/v1/api-keys', { tenant: 'x', name: 'y' }],
    ['GET', '/v1/api-keys', undefined],
    ['DELETE', '/v1/api-keys/0123456789abcdef', undefined],
    ['GET', '/v1/nodes', undefined],
    ['GET', '/v1/nodes/n1', undefined],
    ['POST', '/v1/nodes/n1/drain', undefined],
  ] as const)('answers 403 to a tenant key: %s %s', async (method, url, payload) => {
    const res = await api.request(tenantKey, { method, url, ...(payload ? { payload } : {}) });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual(errorBody('FORBIDDEN', 'This route needs an admin API key'));
  });
});

describe('nodes (admin only)', () => {
  it('lists, describes and drains nodes; a LOST node stays LOST', async () => {
    await registerNode(api.redis, { nodeId: 'node-b', address: '10.0.0.2', cpuTotal: 4096, memoryTotal: 8192, labels: { zone: 'b' } });
    await registerNode(api.redis, { nodeId: 'node-a', address: '10.0.0.1', cpuTotal: 2048, memoryTotal: 4096, labels: {} });
    const list = await api.request(api.adminKey, { url: '/v1/nodes' });
    expect(list.json().nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['node-a', 'node-b']);
    const one = await api.request(api.adminKey, { url: '/v1/nodes/node-b' });
    expect(one.json()).toMatchObject({ nodeId: 'node-b', address: '10.0.0.2', status: 'ACTIVE', cpuTotal: 4096, memoryTotal: 8192, cpuReserved: 0, memoryReserved: 0, labels: { zone: 'b' } });

    const drained = await api.request(api.adminKey, { method: 'POST', url: '/v1/nodes/node-b/drain' });
    expect(drained.statusCode).toBe(200);
    expect(drained.json()).toMatchObject({ nodeId: 'node-b', status: 'DRAINING' });

    await api.redis.hset(keys.node('node-a'), 'status', 'LOST');
    expect((await api.request(api.adminKey, { method: 'POST', url: '/v1/nodes/node-a/drain' })).json()).toMatchObject({ status: 'LOST' });
  });

  it('answers 404 for unknown nodes and 400 for bad ids', async () => {
    const res = await api.request(api.adminKey, { method: 'POST', url: '/v1/nodes/ghost/drain' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(errorBody('NODE_NOT_FOUND', 'No node ghost'));
    expect(await api.redis.exists(keys.node('ghost'))).toBe(0);
    expect((await api.request(api.adminKey, { url: '/v1/nodes/ghost' })).statusCode).toBe(404);
    expect((await api.request(api.adminKey, { url: '/v1/nodes/-bad' })).statusCode).toBe(400);
  });
});

describe('secrets', () => {
  it('stores, lists, describes and deletes; the value never comes back', async () => {
    const put = await api.request(tenantKey, { method: 'POST', url: '/v1/secrets', payload: { name: 'db.pw', value: 'very-secret-value' } });
    expect(put.statusCode).toBe(201);
    expect(put.json()).toEqual({ name: 'db.pw', createdAt: expect.any(String), updatedAt: expect.any(String) });
    const replaced = await api.request(tenantKey, { method: 'POST', url: '/v1/secrets', payload: { name: 'db.pw', value: 'other-secret-value' } });
    expect(replaced.json().createdAt).toBe(put.json().createdAt);

    const list = await api.request(tenantKey, { url: '/v1/secrets' });
    expect(list.json()).toEqual({ secrets: [replaced.json()] });
    const one = await api.request(tenantKey, { url: '/v1/secrets/db.pw' });
    expect(one.json()).toEqual(replaced.json());
    for (const res of [put, replaced, list, one]) expect(res.body).not.toMatch(/secret-value/);

    expect((await api.request(tenantKey, { method: 'DELETE', url: '/v1/secrets/db.pw' })).statusCode).toBe(204);
    const gone = await api.request(tenantKey, { url: '/v1/secrets/db.pw' });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toEqual(errorBody('SECRET_NOT_FOUND', 'No secret db.pw'));
    expect((await api.request(tenantKey, { method: 'DELETE', url: '/v1/secrets/db.pw' })).statusCode).toBe(404);
  });

  it('refuses bad names and missing values', async () => {
    const res = await api.request(tenantKey, { method: 'POST', url: '/v1/secrets', payload: { name: 'a/b', value: 'x' } });
    expect(res.json().error.message).toBe('body/name must match pattern "^[A-Za-z0-9_.-]{1,128}$"');
    const missing = await api.request(tenantKey, { method: 'POST', url: '/v1/secrets', payload: { name: 'ok' } });
    expect(missing.json().error.message).toBe('body/value is required');
  });
});
