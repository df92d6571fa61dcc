import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRegistryCredentials } from '../../common/secret-box.ts';
import { getTaskDefinition } from '../../common/taskdefs.ts';
import { errorBody, startApi, taskDef, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let tenant: string;

beforeAll(async () => {
  api = await startApi();
  ({ key, tenant } = await api.tenant());
});
afterAll(async () => { await api.close(); });

const register = (body: unknown) => api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: body as object });

describe('POST /v1/task-definitions', () => {
  it('registers numbered revisions with defaults filled', async () => {
    const first = await register({ family: 'web', image: 'busybox' });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toEqual({
      family: 'web', image: 'busybox', taskDefinition: 'web:1', revision: 1, status: 'ACTIVE',
      registeredAt: expect.any(String),
      cpu: 256, memory: 512, pidsLimit: 1024, networkMode: 'bridge', readonlyRootFilesystem: false, stopTimeout: 30,
    });
    const second = await register(taskDef('web', { healthCheck: { command: ['true'] }, portMappings: [{ containerPort: 80 }] }));
    expect(second.statusCode).toBe(201);
    expect(second.json()).toMatchObject({
      revision: 2,
      taskDefinition: 'web:2',
      healthCheck: { command: ['true'], interval: 30, timeout: 5, retries: 3, startPeriod: 0 },
      portMappings: [{ containerPort: 80, protocol: 'tcp' }],
    });
  });

  it('allows the tiny 2-unit 6 MiB task', async () => {
    const res = await register({ family: 'tiny', image: 'busybox', cpu: 2, memory: 6 });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ cpu: 2, memory: 6 });
  });

  it('never returns the registry password', async () => {
    const res = await register(taskDef('private', { repositoryCredentials: { username: 'bob', password: 's3cret-pw' } }));
    expect(res.statusCode).toBe(201);
    expect(res.json().repositoryCredentials).toEqual({ username: 'bob' });
    expect(res.body).not.toContain('s3cret-pw');
    const described = await api.request(key, { url: '/v1/task-definitions/private:1' });
    expect(described.body).not.toContain('s3cret-pw');
    const listed = await api.request(key, { url: '/v1/task-definitions?family=private' });
    expect(listed.body).not.toContain('s3cret-pw');
    // Stored sealed for the tenant, so a task's agent can open it and nothing else reads it.
    const stored = (await getTaskDefinition(api.redis, tenant, 'private', 1))!.repositoryCredentials!;
    expect(stored.username).toBe('bob');
    expect(stored.password).not.toContain('s3cret-pw');
    expect(openRegistryCredentials(api.secretBox, tenant, stored).password).toBe('s3cret-pw');
    expect(() => openRegistryCredentials(api.secretBox, 'someone-else', stored)).toThrow(/sealed with another secrets key/);
  });

  it.each([
    [{ image: 'busybox' }, 'body/family is required', 'body/family', 'is required'],
    [{ family: 'x' }, 'body/image is required', 'body/image', 'is required'],
    [{ family: 'x', image: 'busybox', memory: 4 }, 'body/memory must be >= 6', 'body/memory', 'must be >= 6'],
    [{ family: 'x', image: 'busybox', memory: '512' }, 'body/memory must be integer', 'body/memory', 'must be integer'],
    [{ family: 'x', image: 'busybox', cpu: 1 }, 'body/cpu must be >= 2', 'body/cpu', 'must be >= 2'],
    [{ family: 'x', image: 'busybox', cpu: 99999 }, 'body/cpu must be <= 16384', 'body/cpu', 'must be <= 16384'],
    [{ family: 'x y', image: 'busybox' }, 'body/family must match pattern "^[A-Za-z0-9_-]{1,255}$"', 'body/family', 'must match pattern "^[A-Za-z0-9_-]{1,255}$"'],
    [{ family: 'x', image: 'busybox', bogus: 1 }, 'body/bogus is not allowed', 'body/bogus', 'is not allowed'],
    [{ family: 'x', image: 'busybox', networkMode: 'overlay' }, 'body/networkMode must be one of: bridge, none, host', 'body/networkMode', 'must be one of: bridge, none, host'],
    [{ family: 'x', image: 'busybox', environment: [{ name: '1BAD', value: 'v' }] }, 'body/environment/0/name must match pattern "^[A-Za-z_][A-Za-z0-9_]*$"', 'body/environment/0/name', 'must match pattern "^[A-Za-z_][A-Za-z0-9_]*$"'],
    [{ family: 'x', image: 'busybox', secrets: [{ name: 'DB' }] }, 'body/secrets/0/valueFrom is required', 'body/secrets/0/valueFrom', 'is required'],
    [{ family: 'x', image: 'busybox', healthCheck: { command: ['true'], interval: 1 } }, 'body/healthCheck/interval must be >= 5', 'body/healthCheck/interval', 'must be >= 5'],
    [{ family: 'x', image: 'busybox', stopTimeout: 121 }, 'body/stopTimeout must be <= 120', 'body/stopTimeout', 'must be <= 120'],
    [{ family: 'x', image: 'busybox', readonlyRootFilesystem: 'yes' }, 'body/readonlyRootFilesystem must be boolean', 'body/readonlyRootFilesystem', 'must be boolean'],
    [{ family: 'x', image: 'busybox', workingDirectory: 'relative' }, 'body/workingDirectory must match pattern "^/"', 'body/workingDirectory', 'must match pattern "^/"'],
    [[], 'body must be object', 'body', 'must be object'],
  ])('refuses %j with 400 naming the field', async (body, message, field, fieldMessage) => {
    const res = await register(body);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(errorBody('VALIDATION_ERROR', message, [{ field, message: fieldMessage }]));
  });

  it('refuses more than 8 MiB per CPU unit, naming memory', async () => {
    const res = await register({ family: 'x', image: 'busybox', cpu: 256, memory: 4096 });
    const message = 'must be <= 2048 for 256 CPU units (at most 8 MiB per unit); raise body/cpu to at least 512 or lower the memory';
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(errorBody('VALIDATION_ERROR', `body/memory ${message}`, [{ field: 'body/memory', message }]));
    // Fargate's largest combinations fit.
    expect((await register({ family: 'x', image: 'busybox', cpu: 256, memory: 2048 })).statusCode).toBe(201);
    expect((await register({ family: 'x', image: 'busybox', cpu: 16384, memory: 122880 })).statusCode).toBe(201);
  });

  it('refuses combinations the schema cannot express', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ulimits: [{ name: 'nofile', softLimit: 10, hardLimit: 5 }] }, 'body/ulimits/0/softLimit must be <= hardLimit'],
      [{ networkMode: 'none', portMappings: [{ containerPort: 80 }] }, 'body/portMappings must be empty when networkMode is none'],
      [{ networkMode: 'host', portMappings: [{ containerPort: 80, hostPort: 81 }] }, 'body/portMappings/0/hostPort must equal containerPort when networkMode is host'],
    ];
    for (const [extra, message] of cases) {
      const res = await register(taskDef('combo', extra));
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'VALIDATION_ERROR', message });
    }
  });

  it('refuses image references that are not references', async () => {
    for (const image of ['UPPER/case', 'busybox:', 'a b', 'busybox@sha256:123', '/abs']) {
      const res = await register({ family: 'img', image });
      expect(res.statusCode, image).toBe(400);
      expect(res.json().error.code).toBe('INVALID_IMAGE_REFERENCE');
      expect(res.json().error.details).toEqual([{ field: 'body/image', message: 'is not an image reference' }]);
    }
    for (const image of ['busybox', 'library/busybox:1.36', '127.0.0.1:5000/berth/node:20', 'localhost/a/b@sha256:' + 'a'.repeat(64), '[::1]:5000/x']) {
      expect((await register({ family: 'img', image })).statusCode, image).toBe(201);
    }
  });
});

describe('GET /v1/task-definitions/{taskDefinition}', () => {
  it('describes family:revision and the latest ACTIVE revision of a family', async () => {
    await register(taskDef('desc'));
    await register(taskDef('desc', { memory: 256 }));
    expect((await api.request(key, { url: '/v1/task-definitions/desc:1' })).json()).toMatchObject({ revision: 1, memory: 512 });
    expect((await api.request(key, { url: '/v1/task-definitions/desc' })).json()).toMatchObject({ revision: 2, memory: 256 });
  });

  it('answers 404 for a missing family or revision', async () => {
    const res = await api.request(key, { url: '/v1/task-definitions/nothing:3' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(errorBody('TASK_DEFINITION_NOT_FOUND', 'No task definition nothing:3'));
  });

  it('answers 400 for a malformed reference', async () => {
    const res = await api.request(key, { url: '/v1/task-definitions/web:0' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0].field).toBe('path/taskDefinition');
  });
});

describe('DELETE /v1/task-definitions/{taskDefinition}', () => {
  it('makes a revision INACTIVE: still described, no longer latest, not runnable', async () => {
    await register(taskDef('dereg'));
    await register(taskDef('dereg'));
    const res = await api.request(key, { method: 'DELETE', url: '/v1/task-definitions/dereg:2' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ revision: 2, status: 'INACTIVE', deregisteredAt: expect.any(String) });
    expect((await api.request(key, { url: '/v1/task-definitions/dereg:2' })).json()).toMatchObject({ status: 'INACTIVE' });
    expect((await api.request(key, { url: '/v1/task-definitions/dereg' })).json()).toMatchObject({ revision: 1 });

    const run = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: { taskDefinition: 'dereg:2' } });
    expect(run.statusCode).toBe(400);
    expect(run.json()).toEqual(errorBody('TASK_DEFINITION_INACTIVE', 'Task definition dereg:2 is INACTIVE; no task can run from it'));

    // Deregistering again is harmless.
    expect((await api.request(key, { method: 'DELETE', url: '/v1/task-definitions/dereg:2' })).statusCode).toBe(200);
    await api.request(key, { method: 'DELETE', url: '/v1/task-definitions/dereg:1' });
    expect((await api.request(key, { url: '/v1/task-definitions/dereg' })).statusCode).toBe(404);
  });

  it('needs a revision', async () => {
    const res = await api.request(key, { method: 'DELETE', url: '/v1/task-definitions/dereg' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual(errorBody('VALIDATION_ERROR', 'path/taskDefinition must name a revision (family:revision)',
      [{ field: 'path/taskDefinition', message: 'must name a revision (family:revision)' }]));
  });

  it('answers 404 for a missing revision', async () => {
    const res = await api.request(key, { method: 'DELETE', url: '/v1/task-definitions/dereg:9' });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('TASK_DEFINITION_NOT_FOUND');
  });
});

describe('GET /v1/task-definitions', () => {
  it('pages through families and revisions in order', async () => {
    const { key: own } = await api.tenant();
    for (const family of ['b', 'a', 'c']) {
      for (let i = 0; i < 3; i++) {
        await api.request(own, { method: 'POST', url: '/v1/task-definitions', payload: taskDef(family) });
      }
    }
    await api.request(own, { method: 'DELETE', url: '/v1/task-definitions/b:2' });
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const res = await api.request(own, { url: `/v1/task-definitions?limit=4${token ? `&nextToken=${token}` : ''}` });
      expect(res.statusCode).toBe(200);
      seen.push(...res.json().taskDefinitions.map((d: { taskDefinition: string }) => d.taskDefinition));
      token = res.json().nextToken;
      pages++;
    } while (token && pages < 10);
    expect(seen).toEqual(['a:1', 'a:2', 'a:3', 'b:1', 'b:2', 'b:3', 'c:1', 'c:2', 'c:3']);
    expect(pages).toBe(3);

    const inactive = await api.request(own, { url: '/v1/task-definitions?status=INACTIVE' });
    expect(inactive.json()).toEqual({ taskDefinitions: [expect.objectContaining({ taskDefinition: 'b:2' })] });
    const family = await api.request(own, { url: '/v1/task-definitions?family=c&limit=2' });
    expect(family.json().taskDefinitions.map((d: { revision: number }) => d.revision)).toEqual([1, 2]);
    const rest = await api.request(own, { url: `/v1/task-definitions?family=c&nextToken=${family.json().nextToken}` });
    expect(rest.json()).toEqual({ taskDefinitions: [expect.objectContaining({ taskDefinition: 'c:3' })] });
  });

  it('refuses a token it did not give out, and unknown query parameters', async () => {
    const bad = await api.request(key, { url: '/v1/task-definitions?nextToken=abc' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual(errorBody('VALIDATION_ERROR', 'query/nextToken is not a token this API gave out',
      [{ field: 'query/nextToken', message: 'is not a token this API gave out' }]));
    const unknown = await api.request(key, { url: '/v1/task-definitions?famly=x' });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error.message).toBe('query/famly is not allowed');
    const limit = await api.request(key, { url: '/v1/task-definitions?limit=abc' });
    expect(limit.json().error.message).toBe('query/limit must be integer');
  });
});
