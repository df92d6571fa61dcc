// Tenant isolation: every route of the spec, called with another tenant's key
// against tenant A's resources, answers exactly as for resources that do not
// exist (404, or 403 on admin routes), never 2xx on A's resources, and never
// carries A's data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../common/keys.ts';
import { registerNode } from '../../common/nodes.ts';
import { getTask } from '../../common/tasks.ts';
import { getTaskDefinition } from '../../common/taskdefs.ts';
import { sealedSecrets } from '../../common/secrets.ts';
import { loadSpec, specOperations, type SpecOperation } from '../src/spec.ts';
import { startApi, type TestApi } from './helpers.ts';
import { sampleRequest, type SampleRequest } from './spec-samples.ts';

let api: TestApi;
let a: { tenant: string; key: string };
let b: { tenant: string; key: string };
let aTaskId: string;
let aKeyId: string;

// What only tenant A's resources hold; none of it may reach another tenant.
const A_MARKERS = ['a-private-image', 'a-env-value-7731', 'a-registry-password', 'a-secret-value-5150', 'a log line 9921', '424242', 'a-started-by', 'a-tag-value'];
const MISSING_TASK = 'e'.repeat(32);

beforeAll(async () => {
  api = await startApi();
  a = await api.tenant();
  b = await api.tenant();
  const created = await api.request(api.adminKey, { method: 'POST', url: '/v1/api-keys', payload: { tenant: a.tenant, name: 'a-second' } });
  aKeyId = created.json().keyId;
  await api.request(a.key, { method: 'POST', url: '/v1/secrets', payload: { name: 'a-secret', value: 'a-secret-value-5150' } });
  for (let i = 0; i < 3; i++) {
    const def = await api.request(a.key, {
      method: 'POST', url: '/v1/task-definitions',
      payload: {
        family: 'afam', image: 'a-private-image:1', environment: [{ name: 'E', value: 'a-env-value-7731' }],
        secrets: [{ name: 'S', valueFrom: 'a-secret' }], repositoryCredentials: { username: 'a', password: 'a-registry-password' },
        tags: [{ key: 'k', value: 'a-tag-value' }],
      },
    });
    expect(def.statusCode).toBe(201);
  }
  const run = await api.request(a.key, { method: 'POST', url: '/v1/tasks', payload: { taskDefinition: 'afam', startedBy: 'a-started-by', tags: [{ key: 'k', value: 'a-tag-value' }] } });
  aTaskId = run.json().tasks[0].taskId;
  await api.redis.hset(keys.task(aTaskId), 'nodeId', 'node-1', 'lastStatus', 'RUNNING');
  await api.redis.xadd(keys.taskLogs(aTaskId), '*', 't', new Date().toISOString(), 's', 'stdout', 'm', 'a log line 9921');
  await api.redis.set(keys.taskStats(aTaskId), JSON.stringify({ time: new Date().toISOString(), memoryBytes: 424242 }));
  await api.redis.lpush(keys.taskStatsHistory(aTaskId), JSON.stringify({ time: new Date().toISOString(), memoryBytes: 424242 }));
  await registerNode(api.redis, { nodeId: 'node-1', address: '10.0.0.1', cpuTotal: 1024, memoryTotal: 1024, labels: {} });
  if (operations.some((op) => op.operationId === 'deployFunction')) {
    const fn = await api.request(a.key, { method: 'POST', url: '/v1/functions', payload: { name: 'afn', image: 'a-private-image:1', environment: [{ name: 'E', value: 'a-env-value-7731' }] } });
    expect(fn.statusCode, fn.body).toBe(201);
  }
});
afterAll(async () => { await api.close(); });

/** The request aimed at A's resources, and the same aimed at resources that do not exist. */
function requests(op: SpecOperation): { aimed: SampleRequest; missing: SampleRequest } {
  const fn = op.path.startsWith('/v1/functions');
  const aimed = {
    path: { taskId: aTaskId, taskDefinition: 'afam:2', name: fn ? 'afn' : 'a-secret', keyId: aKeyId, nodeId: 'node-1' },
    body: { taskDefinition: 'afam', taskIds: [aTaskId], family: 'afam', name: fn ? 'afn' : 'a-secret' },
    query: { ids: aTaskId, family: 'afam', tasks: aTaskId, startedBy: 'a-started-by', tenant: a.tenant },
  };
  const missing = {
    path: { taskId: MISSING_TASK, taskDefinition: 'nofam:2', name: fn ? 'nofn' : 'no-secret', keyId: 'f'.repeat(16), nodeId: 'node-9' },
    body: { taskDefinition: 'nofam', taskIds: [MISSING_TASK], family: 'nofam', name: fn ? 'nofn' : 'no-secret' },
    query: { ids: MISSING_TASK, family: 'nofam', tasks: MISSING_TASK, startedBy: 'nobody', tenant: 'no-tenant' },
  };
  return {
    aimed: sampleRequest(op, aimed.path, aimed.body, aimed.query),
    missing: sampleRequest(op, missing.path, missing.body, missing.query),
  };
}

/** A's identifiers replaced by the missing ones, so both answers can be compared. */
function normalize(body: string): string {
  return body.replaceAll(aTaskId, MISSING_TASK).replaceAll('afam', 'nofam').replaceAll('a-secret', 'no-secret')
    .replaceAll(aKeyId, 'f'.repeat(16)).replaceAll('node-1', 'node-9').replaceAll(a.tenant, 'no-tenant').replaceAll('afn', 'nofn');
}

const operations = specOperations().filter((op) => !op.public);
// Creating routes (a POST without path parameters that can answer 201) make the caller's own
// resources; they run last and are checked apart.
const spec = loadSpec();
const CREATES = new Set(operations
  .filter((op) => op.method === 'POST' && !op.path.includes('{') && (spec.paths[op.path]?.post?.responses as Record<string, unknown> | undefined)?.['201'])
  .map((op) => op.operationId));

describe.each([
  ['a tenant key', () => b.key, false],
  ['the admin key (tenant default)', () => api.adminKey, true],
])('with %s', (_name, foreignKey, isAdmin) => {
  it.each(operations.filter((op) => !CREATES.has(op.operationId)).map((op) => [`${op.method} ${op.path}`, op] as const))(
    '%s: answers as for a missing resource, never with A\'s data', async (_label, op) => {
      if (op.admin && isAdmin) return; // an admin may manage every key and node: that is its job
      const { aimed, missing } = requests(op);
      const res = await api.request(foreignKey(), aimed as never);
      const ref = await api.request(foreignKey(), missing as never);
      for (const marker of A_MARKERS) expect(res.body, `${op.operationId} leaked ${marker}`).not.toContain(marker);
      if (op.admin && !isAdmin) {
        expect(res.statusCode).toBe(403);
        return;
      }
      expect(res.statusCode, res.body).toBe(ref.statusCode);
      expect(normalize(res.body)).toBe(ref.body);
      if (/\{(taskId|taskDefinition|name)\}/.test(op.path)) expect(res.statusCode).toBe(404);
    });

  // runTask first: once the caller has registered its own `afam`, running it is its own business.
  it.each(operations.filter((op) => CREATES.has(op.operationId)).sort((x, y) => Number(y.operationId === 'runTask') - Number(x.operationId === 'runTask')).map((op) => [`${op.method} ${op.path}`, op] as const))(
    '%s: makes the caller\'s own resources, never touches A\'s', async (_label, op) => {
      if (op.admin && isAdmin) return;
      const { aimed } = requests(op);
      const res = await api.request(foreignKey(), aimed as never);
      if (op.admin) expect(res.statusCode).toBe(403);
      expect(res.statusCode).toBeLessThan(500);
      for (const marker of A_MARKERS) expect(res.body, `${op.operationId} leaked ${marker}`).not.toContain(marker);
      if (op.operationId === 'runTask') expect(res.statusCode).toBe(404); // A's family is not the caller's
    });
});

it('left every resource of A as it was', async () => {
  const task = await getTask(api.redis, aTaskId);
  expect(task).toMatchObject({ lastStatus: 'RUNNING', desiredStatus: 'RUNNING', tenant: a.tenant });
  expect((await getTaskDefinition(api.redis, a.tenant, 'afam', 2))?.status).toBe('ACTIVE');
  expect((await getTaskDefinition(api.redis, a.tenant, 'afam'))?.revision).toBe(3);
  const sealed = (await sealedSecrets(api.redis, api.secretBox, a.tenant, ['a-secret'])).get('a-secret')!;
  expect(api.secretBox.open(sealed, a.tenant, 'a-secret')).toBe('a-secret-value-5150');
  expect((await api.request(a.key, { url: '/v1/tasks' })).json().tasks).toHaveLength(1);
  // A's keys all still work.
  expect((await api.request(a.key, { url: `/v1/tasks/${aTaskId}` })).statusCode).toBe(200);
  expect(await api.redis.get(keys.apiKeyId(aKeyId))).not.toBeNull();
  // B's registration of a family of the same name started its own revisions.
  const own = await api.request(b.key, { url: '/v1/task-definitions/afam' });
  expect(own.statusCode).toBe(200);
  expect(own.json()).toMatchObject({ revision: 1, image: 'x' });
});
