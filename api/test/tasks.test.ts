import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import { getTask, transitionTask } from '../../common/tasks.ts';
import { errorBody, startApi, taskDef, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;
let tenant: string;
let placement: Queue;

beforeAll(async () => {
  api = await startApi();
  ({ key, tenant } = await api.tenant());
  placement = new Queue(queues.placement, { connection: api.redis, prefix: BULLMQ_PREFIX });
  await api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('web', { environment: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] }) });
  await api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: { family: 'tiny', image: 'busybox', cpu: 2, memory: 6 } });
});
afterAll(async () => {
  await placement.close();
  await api.close();
});

const run = (body: object, headers: Record<string, string> = {}, k = key) => api.request(k, { method: 'POST', url: '/v1/tasks', payload: body, headers });

describe('POST /v1/tasks', () => {
  it('creates PROVISIONING tasks and one placement job for the run', async () => {
    const res = await run({ taskDefinition: 'web', count: 3, startedBy: 'ci', tags: [{ key: 'team', value: 'a' }] });
    expect(res.statusCode).toBe(201);
    const tasks = res.json().tasks as { taskId: string }[];
    expect(tasks).toHaveLength(3);
    expect(tasks[0]).toEqual({
      taskId: expect.stringMatching(/^[a-f0-9]{32}$/), taskDefinition: 'web:1', family: 'web', revision: 1,
      lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', cpu: 256, memory: 512,
      image: 'registry.local:5000/berth/busybox:1.36', createdAt: expect.any(String), startedBy: 'ci', tags: [{ key: 'team', value: 'a' }],
    });
    const job = await placement.getJob(tasks[0]!.taskId);
    expect(job?.name).toBe('place');
    // The run's tasks and what placing needs travel with the job, so the scheduler does not read the tasks first.
    expect(job?.data).toEqual({
      taskId: tasks[0]!.taskId, taskIds: tasks.map((t) => t.taskId),
      demand: { tenant, group: 'family:web', cpu: 256, memory: 512, createdAt: expect.any(String) },
    });
    expect(await placement.getJob(tasks[1]!.taskId)).toBeUndefined();
    const record = await getTask(api.redis, tasks[0]!.taskId);
    expect(record?.spec).toEqual({
      image: 'registry.local:5000/berth/busybox:1.36', command: ['sh', '-c', 'echo hi'],
      environment: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }],
      cpu: 256, memory: 512, pidsLimit: 1024, ulimits: [], portMappings: [], networkMode: 'bridge',
      readonlyRootFilesystem: false, stopTimeout: 30,
    });
  });

  it('applies overrides: command, environment (merged), cpu and memory', async () => {
    const res = await run({ taskDefinition: 'web:1', overrides: { command: ['sleep', '1'], environment: [{ name: 'B', value: 'x' }, { name: 'C', value: '3' }], cpu: 512, memory: 4096 } });
    expect(res.statusCode).toBe(201);
    expect(res.json().tasks[0]).toMatchObject({ cpu: 512, memory: 4096 });
    const record = await getTask(api.redis, res.json().tasks[0].taskId);
    expect(record?.spec.command).toEqual(['sleep', '1']);
    expect(record?.spec.environment).toEqual([{ name: 'A', value: '1' }, { name: 'B', value: 'x' }, { name: 'C', value: '3' }]);
  });

  it('stores placement strategy, constraints and group for the scheduler', async () => {
    const res = await run({
      taskDefinition: 'tiny',
      placementStrategy: { type: 'spread' },
      placementConstraints: [{ type: 'distinctInstance' }, { type: 'memberOf', expression: 'zone == a' }],
      group: 'service:api',
    });
    expect(res.statusCode).toBe(201);
    expect(res.json().tasks[0]).toMatchObject({
      placementStrategy: { type: 'spread', field: 'node' },
      placementConstraints: [{ type: 'distinctInstance' }, { type: 'memberOf', expression: 'zone == a' }],
      group: 'service:api',
    });
    const raw = await api.redis.hmget(keys.task(res.json().tasks[0].taskId), 'placementStrategy', 'placementConstraints');
    expect(JSON.parse(raw[0]!)).toEqual({ type: 'spread', field: 'node' });
    expect(JSON.parse(raw[1]!)).toEqual([{ type: 'distinctInstance' }, { type: 'memberOf', expression: 'zone == a' }]);
    const binpack = await run({ taskDefinition: 'tiny', placementStrategy: { type: 'binpack' } });
    expect(binpack.json().tasks[0].placementStrategy).toEqual({ type: 'binpack', field: 'memory' });
  });

  it.each([
    [{}, 'body/taskDefinition is required'],
    [{ taskDefinition: 'web', count: 0 }, 'body/count must be >= 1'],
    [{ taskDefinition: 'web', count: 101 }, 'body/count must be <= 100'],
    [{ taskDefinition: 'web', count: '2' }, 'body/count must be integer'],
    [{ taskDefinition: 'web:x' }, 'body/taskDefinition must match pattern "^[A-Za-z0-9_-]{1,255}(:[1-9][0-9]{0,8})?$"'],
    [{ taskDefinition: 'web', overrides: { memory: 5 } }, 'body/overrides/memory must be >= 6'],
    [{ taskDefinition: 'web', overrides: { image: 'x' } }, 'body/overrides/image is not allowed'],
    [{ taskDefinition: 'web', extra: true }, 'body/extra is not allowed'],
    [{ taskDefinition: 'web', placementStrategy: { type: 'pack' } }, 'body/placementStrategy/type must be one of: binpack, spread, random'],
    [{ taskDefinition: 'web', placementStrategy: { type: 'binpack', field: 'node' } }, 'body/placementStrategy/field must be cpu or memory for binpack'],
    [{ taskDefinition: 'web', placementStrategy: { type: 'random', field: 'cpu' } }, 'body/placementStrategy/field is not allowed for random'],
    [{ taskDefinition: 'web', placementConstraints: [{ type: 'memberOf' }] }, 'body/placementConstraints/0/expression is required for memberOf'],
    [{ taskDefinition: 'web', overrides: { memory: 4096 } }, 'body/overrides/memory must be <= 2048 for 256 CPU units (at most 8 MiB per unit); raise body/overrides/cpu to at least 512 or lower the memory'],
    [{ taskDefinition: 'web', overrides: { cpu: 32 } }, "body/overrides/cpu must be >= 64 for the task definition's 512 MiB of memory (at most 8 MiB per CPU unit)"],
    [{ taskDefinition: 'web', startedBy: 'x'.repeat(129) }, 'body/startedBy must NOT have more than 128 characters'],
  ])('refuses %j with 400 naming the field', async (body, message) => {
    const res = await run(body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: 'VALIDATION_ERROR', message });
    expect(res.json().error.details[0].field).toBe(message.split(' ')[0]);
  });

  it('answers 404 for an unknown definition and creates nothing', async () => {
    const own = await api.tenant();
    const res = await run({ taskDefinition: 'nope' }, {}, own.key);
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(errorBody('TASK_DEFINITION_NOT_FOUND', 'No task definition nope'));
    expect(await api.redis.zcard(keys.tenantTasks(own.tenant))).toBe(0);
  });

  it('keeps secrets sealed in the task record, bound to the secret, and refuses missing ones', async () => {
    await api.request(key, {
      method: 'POST', url: '/v1/task-definitions',
      payload: taskDef('withsecret', {
        environment: [{ name: 'DB_PASSWORD', value: 'plain' }, { name: 'MODE', value: 'x' }],
        secrets: [{ name: 'DB_PASSWORD', valueFrom: 'db-pw' }, { name: 'TOKEN', valueFrom: 'token' }],
      }),
    });
    const missing = await run({ taskDefinition: 'withsecret' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual(errorBody('SECRET_REFERENCE_NOT_FOUND', 'The task definition refers to secrets that do not exist: db-pw, token', { secrets: ['db-pw', 'token'] }));
    for (const [name, value] of [['db-pw', 'hunter2-db'], ['token', 'hunter2-token']]) {
      expect((await api.request(key, { method: 'POST', url: '/v1/secrets', payload: { name, value } })).statusCode).toBe(201);
    }
    const ok = await run({ taskDefinition: 'withsecret', overrides: { environment: [{ name: 'TOKEN', value: 'from-the-run' }] } });
    expect(ok.statusCode).toBe(201);
    expect(ok.body).not.toContain('hunter2');
    const record = await getTask(api.redis, ok.json().tasks[0].taskId);
    // The secret replaces the definition's variable; the run's override replaces the secret.
    expect(record?.spec.environment).toEqual([{ name: 'MODE', value: 'x' }, { name: 'TOKEN', value: 'from-the-run' }]);
    expect(record?.spec.sealedSecrets?.map((s) => [s.name, s.secret])).toEqual([['DB_PASSWORD', 'db-pw']]);
    const sealed = record!.spec.sealedSecrets![0]!.sealed;
    expect(api.secretBox.open(sealed, tenant, 'db-pw')).toBe('hunter2-db');
    expect(() => api.secretBox.open(sealed, tenant, 'token')).toThrow(/secret token: sealed with another secrets key/);
    expect(() => api.secretBox.open(sealed, 'another-tenant', 'db-pw')).toThrow();

    // No value is anywhere in Redis in the clear.
    const everything: string[] = [];
    for (const k of await api.redis.keys('*')) {
      const type = await api.redis.type(k);
      if (type === 'string') everything.push((await api.redis.get(k)) ?? '');
      else if (type === 'hash') everything.push(JSON.stringify(await api.redis.hgetall(k)));
      else if (type === 'zset') everything.push(JSON.stringify(await api.redis.zrange(k, 0, -1)));
      else if (type === 'list') everything.push(JSON.stringify(await api.redis.lrange(k, 0, -1)));
      else if (type === 'set') everything.push(JSON.stringify(await api.redis.smembers(k)));
    }
    expect(everything.join('\n')).not.toContain('hunter2');
  });

  it('refuses to store or use secrets when the API has no secrets key', async () => {
    const keyless = await startApi({ secretBox: null });
    try {
      const t = await keyless.tenant();
      const put = await keyless.request(t.key, { method: 'POST', url: '/v1/secrets', payload: { name: 's', value: 'v' } });
      expect(put.statusCode).toBe(503);
      expect(put.json().error.code).toBe('SECRETS_KEY_MISSING');
      await keyless.request(t.key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('needs', { secrets: [{ name: 'S', valueFrom: 's' }] }) });
      const res = await keyless.request(t.key, { method: 'POST', url: '/v1/tasks', payload: { taskDefinition: 'needs' } });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.message).toMatch(/BERTH_SECRETS_KEY_FILE/);
      expect(await keyless.redis.zcard(keys.tenantTasks(t.tenant))).toBe(0);
    } finally {
      await keyless.close();
    }
  });

  describe('Idempotency-Key', () => {
    it('returns the same tasks for the same key and body, and no new ones', async () => {
      const ik = `ik-${Date.now()}`;
      const first = await run({ taskDefinition: 'tiny', count: 2 }, { 'idempotency-key': ik });
      const second = await run({ count: 2, taskDefinition: 'tiny' }, { 'idempotency-key': ik });
      expect(first.statusCode).toBe(201);
      expect(second.statusCode).toBe(201);
      expect(second.headers['idempotent-replayed']).toBe('true');
      const ids = (r: typeof first) => r.json().tasks.map((t: { taskId: string }) => t.taskId).sort();
      expect(ids(second)).toEqual(ids(first));
      const other = await run({ taskDefinition: 'tiny', count: 2 }, { 'idempotency-key': `${ik}-other` });
      expect(ids(other)).not.toEqual(ids(first));
    });

    it('refuses the same key with another body', async () => {
      const ik = `ik2-${Date.now()}`;
      await run({ taskDefinition: 'tiny' }, { 'idempotency-key': ik });
      const res = await run({ taskDefinition: 'tiny', count: 2 }, { 'idempotency-key': ik });
      expect(res.statusCode).toBe(422);
      expect(res.json()).toEqual(errorBody('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with a different request'));
    });

    it('runs concurrent retries once', async () => {
      const ik = `ik3-${Date.now()}`;
      const results = await Promise.all(Array.from({ length: 5 }, () => run({ taskDefinition: 'tiny' }, { 'idempotency-key': ik })));
      const ids = new Set(results.map((r) => r.json().tasks[0].taskId));
      expect(results.map((r) => r.statusCode)).toEqual([201, 201, 201, 201, 201]);
      expect(ids.size).toBe(1);
    });

    it('forgets a key whose request failed, and keys are per tenant', async () => {
      const ik = `ik4-${Date.now()}`;
      expect((await run({ taskDefinition: 'later' }, { 'idempotency-key': ik })).statusCode).toBe(404);
      await api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('later') });
      expect((await run({ taskDefinition: 'later' }, { 'idempotency-key': ik })).statusCode).toBe(201);

      const other = await api.tenant();
      await api.request(other.key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('later') });
      const theirs = await run({ taskDefinition: 'later' }, { 'idempotency-key': ik }, other.key);
      expect(theirs.statusCode).toBe(201);
      expect(theirs.headers['idempotent-replayed']).toBeUndefined();
    });

    it('refuses a malformed key', async () => {
      const res = await run({ taskDefinition: 'tiny' }, { 'idempotency-key': 'x'.repeat(256) });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toBe('header/idempotency-key must NOT have more than 255 characters');
    });
  });
});

describe('describe and list', () => {
  it('GET /v1/tasks/{taskId} describes one task; 404 for unknown ids; 400 for malformed ones', async () => {
    const id = (await run({ taskDefinition: 'tiny' })).json().tasks[0].taskId;
    const res = await api.request(key, { url: `/v1/tasks/${id}` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ taskId: id, lastStatus: 'PROVISIONING' });
    const missing = await api.request(key, { url: `/v1/tasks/${'0'.repeat(32)}` });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toEqual(errorBody('TASK_NOT_FOUND', `No task ${'0'.repeat(32)}`));
    const bad = await api.request(key, { url: '/v1/tasks/XYZ' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual(errorBody('VALIDATION_ERROR', 'path/taskId must match pattern "^[a-f0-9]{32}$"',
      [{ field: 'path/taskId', message: 'must match pattern "^[a-f0-9]{32}$"' }]));
  });

  it('POST /v1/tasks/describe and GET /v1/tasks?ids= return found tasks and failures', async () => {
    const ids = (await run({ taskDefinition: 'tiny', count: 2 })).json().tasks.map((t: { taskId: string }) => t.taskId);
    const ghost = 'f'.repeat(32);
    const post = await api.request(key, { method: 'POST', url: '/v1/tasks/describe', payload: { taskIds: [...ids, ghost] } });
    expect(post.statusCode).toBe(200);
    expect(post.json().tasks.map((t: { taskId: string }) => t.taskId)).toEqual(ids);
    expect(post.json().failures).toEqual([{ taskId: ghost, reason: 'MISSING' }]);
    const get = await api.request(key, { url: `/v1/tasks?ids=${[...ids, ghost].join(',')}` });
    expect(get.json()).toEqual(post.json());
    const empty = await api.request(key, { method: 'POST', url: '/v1/tasks/describe', payload: { taskIds: [] } });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.message).toBe('body/taskIds must NOT have fewer than 1 items');
  });

  it('GET /v1/tasks lists newest first with filters and cursor paging', async () => {
    const own = await api.tenant();
    await api.request(own.key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('alpha') });
    await api.request(own.key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('beta') });
    const created: string[] = [];
    for (let i = 0; i < 3; i++) {
      for (const family of ['alpha', 'beta']) {
        const res = await run({ taskDefinition: family, count: 2 }, {}, own.key);
        created.push(...res.json().tasks.map((t: { taskId: string }) => t.taskId));
      }
    }
    // Stop one alpha task and put another on a node.
    const [stopMe, placeMe] = created;
    await api.request(own.key, { method: 'POST', url: `/v1/tasks/${stopMe}/stop` });
    await api.redis.hset(keys.task(placeMe!), 'nodeId', 'n1', 'lastStatus', 'RUNNING');

    const all: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const res = await api.request(own.key, { url: `/v1/tasks?limit=5${token ? `&nextToken=${token}` : ''}` });
      expect(res.statusCode).toBe(200);
      all.push(...res.json().tasks.map((t: { taskId: string }) => t.taskId));
      token = res.json().nextToken;
      pages++;
    } while (token && pages < 10);
    expect(all).toHaveLength(12);
    expect(new Set(all)).toEqual(new Set(created));
    // Newest run first.
    expect(created.slice(-2)).toContain(all[0]);

    const names = async (q: string) => (await api.request(own.key, { url: `/v1/tasks?${q}` })).json().tasks.map((t: { taskId: string }) => t.taskId);
    expect(await names('family=beta')).toHaveLength(6);
    expect(await names('status=STOPPED')).toEqual([stopMe]);
    expect(await names('desiredStatus=STOPPED')).toEqual([stopMe]);
    expect(await names('nodeId=n1')).toEqual([placeMe]);
    expect(await names('status=RUNNING&family=alpha')).toEqual([placeMe]);
    expect(await names('family=gamma')).toEqual([]);

    const bad = await api.request(own.key, { url: '/v1/tasks?status=DONE' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toBe('query/status must be one of: PROVISIONING, PENDING, RUNNING, STOPPING, STOPPED');
  });
});

describe('listing many tasks', () => {
  it('returns short pages with a nextToken when a filter matches little, and finds the match', async () => {
    const own = await api.tenant();
    await api.request(own.key, { method: 'POST', url: '/v1/task-definitions', payload: { family: 'rare', image: 'busybox', cpu: 2, memory: 6 } });
    await api.request(own.key, { method: 'POST', url: '/v1/task-definitions', payload: { family: 'common', image: 'busybox', cpu: 2, memory: 6 } });
    const rare = (await run({ taskDefinition: 'rare' }, {}, own.key)).json().tasks[0].taskId;
    await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 25; i++) expect((await run({ taskDefinition: 'common', count: 100 }, {}, own.key)).statusCode).toBe(201);

    const first = await api.request(own.key, { url: '/v1/tasks?family=rare' });
    expect(first.json().tasks).toEqual([]);
    expect(first.json().nextToken).toEqual(expect.any(String));
    const second = await api.request(own.key, { url: `/v1/tasks?family=rare&nextToken=${first.json().nextToken}` });
    expect(second.json().tasks.map((t: { taskId: string }) => t.taskId)).toEqual([rare]);
    expect(second.json().nextToken).toBeUndefined();

    // Unfiltered, every task comes exactly once over the pages.
    const seen = new Set<string>();
    let token: string | undefined;
    let pages = 0;
    do {
      const res = await api.request(own.key, { url: `/v1/tasks?limit=100${token ? `&nextToken=${token}` : ''}` });
      for (const t of res.json().tasks as { taskId: string }[]) {
        expect(seen.has(t.taskId)).toBe(false);
        seen.add(t.taskId);
      }
      token = res.json().nextToken;
      pages++;
    } while (token && pages < 40);
    expect(seen.size).toBe(2501);
  });
});

describe('POST /v1/tasks/{taskId}/stop', () => {
  it('stops a task that has no node yet at once, with the caller reason', async () => {
    const id = (await run({ taskDefinition: 'tiny' })).json().tasks[0].taskId;
    const res = await api.request(key, { method: 'POST', url: `/v1/tasks/${id}/stop`, payload: { reason: 'not needed' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ taskId: id, lastStatus: 'STOPPED', desiredStatus: 'STOPPED', stopCode: 'UserInitiated', stoppedReason: 'not needed', stoppedAt: expect.any(String) });
    // Again: unchanged.
    const again = await api.request(key, { method: 'POST', url: `/v1/tasks/${id}/stop` });
    expect(again.json()).toMatchObject({ lastStatus: 'STOPPED', stoppedReason: 'not needed' });
  });

  it('sends a stop job to the node of a placed task', async () => {
    const id = (await run({ taskDefinition: 'tiny' })).json().tasks[0].taskId;
    await api.redis.hset(keys.task(id), 'nodeId', 'node-a', 'lastStatus', 'RUNNING');
    const res = await api.request(key, { method: 'POST', url: `/v1/tasks/${id}/stop` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ lastStatus: 'RUNNING', desiredStatus: 'STOPPED', stoppedReason: 'Task stopped by user' });
    const nodeQueue = new Queue(queues.node('node-a'), { connection: api.redis, prefix: BULLMQ_PREFIX });
    const jobs = await nodeQueue.getJobs(['waiting']);
    await nodeQueue.close();
    expect(jobs.map((j) => [j.name, j.data])).toContainEqual(['stop', { kind: 'stop', taskId: id, reason: 'Task stopped by user' }]);
    await transitionTask(api.redis, id, 'STOPPED', { stopCode: 'UserInitiated', stoppedAt: new Date().toISOString() });
    expect((await api.request(key, { url: `/v1/tasks/${id}` })).json()).toMatchObject({ lastStatus: 'STOPPED' });
  });

  it('refuses a bad body and an unknown task', async () => {
    const id = (await run({ taskDefinition: 'tiny' })).json().tasks[0].taskId;
    const res = await api.request(key, { method: 'POST', url: `/v1/tasks/${id}/stop`, payload: { reason: 5 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toBe('body/reason must be string');
    const missing = await api.request(key, { method: 'POST', url: `/v1/tasks/${'a'.repeat(32)}/stop` });
    expect(missing.statusCode).toBe(404);
  });
});
