import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../common/keys.ts';
import { transitionTask } from '../../common/tasks.ts';
import { errorBody, startApi, type TestApi } from './helpers.ts';

let api: TestApi;
let key: string;

beforeAll(async () => {
  api = await startApi();
  ({ key } = await api.tenant());
  await api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: { family: 'logger', image: 'busybox', cpu: 2, memory: 6 } });
});
afterAll(async () => { await api.close(); });

async function newTask(): Promise<string> {
  const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: { taskDefinition: 'logger' } });
  return res.json().tasks[0].taskId;
}

async function print(taskId: string, lines: [string, string][]): Promise<string[]> {
  const ids: string[] = [];
  for (const [s, m] of lines) ids.push((await api.redis.xadd(keys.taskLogs(taskId), '*', 't', new Date().toISOString(), 's', s, 'm', m))!);
  return ids;
}

describe('GET /v1/tasks/{taskId}/logs', () => {
  it('pages through the stream, after exclusive', async () => {
    const id = await newTask();
    const ids = await print(id, Array.from({ length: 5 }, (_, i) => [i % 2 ? 'stderr' : 'stdout', `line ${i}`] as [string, string]));
    const first = await api.request(key, { url: `/v1/tasks/${id}/logs?limit=2` });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({
      events: [
        { id: ids[0], time: expect.any(String), stream: 'stdout', message: 'line 0' },
        { id: ids[1], time: expect.any(String), stream: 'stderr', message: 'line 1' },
      ],
      nextToken: ids[1],
    });
    const rest = await api.request(key, { url: `/v1/tasks/${id}/logs?after=${first.json().nextToken}` });
    expect(rest.json().events.map((e: { message: string }) => e.message)).toEqual(['line 2', 'line 3', 'line 4']);
    const none = await api.request(key, { url: `/v1/tasks/${id}/logs?after=${rest.json().nextToken}` });
    expect(none.json()).toEqual({ events: [], nextToken: ids[4] });
  });

  it('answers an empty page for a task that printed nothing', async () => {
    const id = await newTask();
    expect((await api.request(key, { url: `/v1/tasks/${id}/logs` })).json()).toEqual({ events: [] });
  });

  it('refuses bad cursors and limits', async () => {
    const id = await newTask();
    const bad = await api.request(key, { url: `/v1/tasks/${id}/logs?after=abc` });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details).toEqual([{ field: 'query/after', message: 'must match pattern "^[0-9]{1,20}-[0-9]{1,20}$"' }]);
    const limit = await api.request(key, { url: `/v1/tasks/${id}/logs?limit=0` });
    expect(limit.json().error.message).toBe('query/limit must be >= 1');
  });

  it('follows as NDJSON until the task is STOPPED and the stream drained', async () => {
    const id = await newTask();
    await print(id, [['stdout', 'before']]);
    const pending = api.request(key, { url: `/v1/tasks/${id}/logs?follow=true` });
    await new Promise((r) => setTimeout(r, 150));
    await print(id, [['stdout', 'during 1'], ['stderr', 'during 2']]);
    await new Promise((r) => setTimeout(r, 150));
    await print(id, [['stdout', 'last words']]);
    await transitionTask(api.redis, id, 'STOPPED', { stopCode: 'EssentialContainerExited', stoppedAt: new Date().toISOString() });
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/x-ndjson');
    const events = res.body.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.map((e) => [e.stream, e.message])).toEqual([
      ['stdout', 'before'], ['stdout', 'during 1'], ['stderr', 'during 2'], ['stdout', 'last words'],
    ]);
  });

  it('follows from a cursor, and ends at once for a STOPPED task', async () => {
    const id = await newTask();
    const ids = await print(id, [['stdout', 'a'], ['stdout', 'b']]);
    await transitionTask(api.redis, id, 'STOPPED', { stoppedAt: new Date().toISOString() });
    const res = await api.request(key, { url: `/v1/tasks/${id}/logs?follow=true&after=${ids[0]}` });
    expect(res.body.trim().split('\n').map((l) => JSON.parse(l).message)).toEqual(['b']);
  });

  it('lets go of its Redis connection when the client goes away', async () => {
    const id = await newTask();
    const clients = async () => (await api.redis.client('LIST') as string).trim().split('\n').length;
    const before = await clients();
    // Left listening: afterAll's close stops it (and shows close does not hang on a follow).
    const address = await api.app.listen({ host: '127.0.0.1', port: 0 });
    {
      const controller = new AbortController();
      const res = await fetch(`${address}/v1/tasks/${id}/logs?follow=true`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
      expect(res.status).toBe(200);
      await print(id, [['stdout', 'hello']]);
      const reader = res.body!.getReader();
      const { value } = await reader.read();
      expect(new TextDecoder().decode(value)).toContain('hello');
      expect(await clients()).toBe(before + 1);
      controller.abort();
      const deadline = Date.now() + 5000;
      while ((await clients()) > before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await clients()).toBe(before);
    }
  });

  it('answers HEAD with follow at once', async () => {
    const id = await newTask();
    const res = await api.request(key, { method: 'HEAD', url: `/v1/tasks/${id}/logs?follow=true` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/x-ndjson');
  });

  it('answers 404 for an unknown task', async () => {
    const res = await api.request(key, { url: `/v1/tasks/${'c'.repeat(32)}/logs?follow=true` });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual(errorBody('TASK_NOT_FOUND', `No task ${'c'.repeat(32)}`));
  });
});

describe('GET /v1/tasks/{taskId}/stats', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z');
  const sample = (i: number) => ({
    time: new Date(t0 + i * 1000).toISOString(), cpuPercent: i, cpuLimitPercent: i * 2, cpuUsageNs: i * 1e6, throttledPeriods: 0,
    memoryBytes: 1000 + i, memoryPeakBytes: 2000, memoryLimitBytes: 6 * 1024 * 1024, oomKills: 0, pids: 1, netRxBytes: 10, netTxBytes: 20,
  });

  it('returns null and no history before the first sample', async () => {
    const id = await newTask();
    const res = await api.request(key, { url: `/v1/tasks/${id}/stats` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ current: null, history: [] });
  });

  it('returns the latest sample and the history, newest first, limited', async () => {
    const id = await newTask();
    for (let i = 0; i < 5; i++) {
      await api.redis.set(keys.taskStats(id), JSON.stringify(sample(i)));
      await api.redis.lpush(keys.taskStatsHistory(id), JSON.stringify(sample(i)));
    }
    const res = await api.request(key, { url: `/v1/tasks/${id}/stats` });
    expect(res.json().current).toEqual(sample(4));
    expect(res.json().history.map((s: { cpuPercent: number }) => s.cpuPercent)).toEqual([4, 3, 2, 1, 0]);
    const limited = await api.request(key, { url: `/v1/tasks/${id}/stats?limit=2` });
    expect(limited.json().history).toHaveLength(2);
    const none = await api.request(key, { url: `/v1/tasks/${id}/stats?limit=0` });
    expect(none.json().history).toEqual([]);
    expect((await api.request(key, { url: `/v1/tasks/${id}/stats?limit=901` })).statusCode).toBe(400);
  });

  it('skips samples that are not JSON objects', async () => {
    const id = await newTask();
    await api.redis.set(keys.taskStats(id), 'not json');
    await api.redis.lpush(keys.taskStatsHistory(id), JSON.stringify(sample(1)), '[1]', '{');
    const res = await api.request(key, { url: `/v1/tasks/${id}/stats` });
    expect(res.json()).toEqual({ current: null, history: [sample(1)] });
  });
});
