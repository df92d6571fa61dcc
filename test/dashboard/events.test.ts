// GET /v1/events and the dashboard's files, on a real redis-server: what each
// key may watch, the events a change brings, and that closing the API ends
// open streams.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../common/keys.ts';
import { registerNode } from '../../common/nodes.ts';
import { transitionTask } from '../../common/tasks.ts';
import { startApi, taskDef, type TestApi } from '../../api/test/helpers.ts';

let api: TestApi;
let url: string;
let tenant: { tenant: string; key: string };

beforeAll(async () => {
  api = await startApi();
  url = await api.app.listen({ host: '127.0.0.1', port: 0 });
  tenant = await api.tenant();
  for (const key of [tenant.key, api.adminKey]) {
    const res = await api.request(key, { method: 'POST', url: '/v1/task-definitions', payload: taskDef('ev') });
    expect(res.statusCode).toBe(201);
  }
  await registerNode(api.redis, { nodeId: 'node-ev', address: '127.0.0.1:1', cpuTotal: 2048, memoryTotal: 4096, labels: {} });
});
afterAll(async () => { await api?.close(); });

async function newTask(key: string): Promise<string> {
  const res = await api.request(key, { method: 'POST', url: '/v1/tasks', payload: { taskDefinition: 'ev' } });
  expect(res.statusCode).toBe(201);
  return res.json().tasks[0].taskId;
}

interface Ev { event: string; data: any }

/** Reads a stream's events as they come. */
async function open(key: string, query = ''): Promise<{ status: number; type: string | null; next(match: (e: Ev) => boolean, timeoutMs?: number): Promise<Ev>; seen: Ev[]; close(): void }> {
  const controller = new AbortController();
  const res = await fetch(`${url}/v1/events${query}`, { headers: { authorization: `Bearer ${key}` }, signal: controller.signal });
  const seen: Ev[] = [];
  const waiters: { match: (e: Ev) => boolean; resolve: (e: Ev) => void }[] = [];
  const push = (e: Ev) => {
    seen.push(e);
    for (const w of [...waiters]) if (w.match(e)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(e); }
  };
  if (res.ok && res.body) {
    void (async () => {
      let buffer = '';
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data) push({ event, data: JSON.parse(data) });
          }
        }
      } catch { /* aborted */ }
      push({ event: 'end', data: null });
    })();
  }
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    seen,
    next(match, timeoutMs = 5000) {
      const found = seen.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such event within ${timeoutMs} ms; seen ${JSON.stringify(seen)}`)), timeoutMs);
        waiters.push({ match, resolve: (e) => { clearTimeout(timer); resolve(e); } });
      });
    },
    close: () => controller.abort(),
  };
}

describe('GET /v1/events', () => {
  it('needs a key, valid task ids, and the caller\'s own tasks', async () => {
    expect((await api.request(null, { url: '/v1/events' })).statusCode).toBe(401);
    const bad = await api.request(tenant.key, { url: '/v1/events?tasks=nope' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('VALIDATION_ERROR');
    const other = await newTask(api.adminKey);
    const foreign = await api.request(tenant.key, { url: `/v1/events?tasks=${other}` });
    expect(foreign.statusCode).toBe(404);
    expect(foreign.json()).toEqual({ error: { code: 'TASK_NOT_FOUND', message: `No task ${other}` } });
  });

  it('streams the tenant\'s tasks, their changes and the watched task\'s new samples', async () => {
    const taskId = await newTask(tenant.key);
    const adminTask = await newTask(api.adminKey);
    const stream = await open(tenant.key, `?tasks=${taskId}`);
    try {
      expect(stream.status).toBe(200);
      expect(stream.type).toMatch(/^text\/event-stream/);
      const first = await stream.next((e) => e.event === 'task' && e.data.taskId === taskId);
      expect(first.data).toMatchObject({ taskId, lastStatus: 'PROVISIONING', family: 'ev' });

      // No sample yet: every sample that comes later is sent, even two between polls.
      await new Promise((r) => setTimeout(r, 700));
      const sample = { time: new Date().toISOString(), cpuPercent: 12.5, cpuLimitPercent: 50, memoryBytes: 1234, memoryPeakBytes: 2000, memoryLimitBytes: 4096 };
      const earlier = { ...sample, time: new Date(Date.now() - 1000).toISOString(), cpuPercent: 11 };
      await api.redis.lpush(keys.taskStatsHistory(taskId), JSON.stringify(earlier), JSON.stringify(sample));
      const stats = await stream.next((e) => e.event === 'stats' && e.data.sample.cpuPercent === 12.5);
      expect(stats.data).toEqual({ taskId, sample });
      // Two more samples between polls: both come, oldest first.
      const later = [1, 2].map((i) => ({ ...sample, time: new Date(Date.now() + i * 1000).toISOString(), cpuPercent: i }));
      for (const s of later) await api.redis.lpush(keys.taskStatsHistory(taskId), JSON.stringify(s));
      await stream.next((e) => e.event === 'stats' && e.data.sample.cpuPercent === 2);
      expect(stream.seen.filter((e) => e.event === 'stats').map((e) => e.data.sample.cpuPercent)).toEqual([11, 12.5, 1, 2]);

      await transitionTask(api.redis, taskId, 'STOPPED', { stopCode: 'UserInitiated', stoppedReason: 'test', stoppedAt: new Date().toISOString() });
      const stopped = await stream.next((e) => e.event === 'task' && e.data.lastStatus === 'STOPPED');
      expect(stopped.data).toMatchObject({ taskId, stoppedReason: 'test' });

      // Another tenant's tasks and the nodes (admin only) never show.
      expect(stream.seen.some((e) => e.event === 'task' && e.data.taskId === adminTask)).toBe(false);
      expect(stream.seen.some((e) => e.event === 'nodes')).toBe(false);
    } finally {
      stream.close();
    }
  });

  it('sends the node list to admin keys', async () => {
    const stream = await open(api.adminKey);
    try {
      const nodes = await stream.next((e) => e.event === 'nodes');
      expect(nodes.data.nodes).toEqual([expect.objectContaining({ nodeId: 'node-ev', cpuTotal: 2048, memoryTotal: 4096, status: 'ACTIVE' })]);
    } finally {
      stream.close();
    }
  });

  it('ends open streams when the API closes', async () => {
    const other = await startApi();
    try {
      const otherUrl = await other.app.listen({ host: '127.0.0.1', port: 0 });
      const res = await fetch(`${otherUrl}/v1/events`, { headers: { authorization: `Bearer ${other.adminKey}` } });
      expect(res.status).toBe(200);
      const started = Date.now();
      await other.app.close();
      expect(Date.now() - started).toBeLessThan(3000);
      await res.text(); // the body ends
    } finally {
      await other.close();
    }
  });
});

describe('the dashboard files', () => {
  it('serve the page and its modules without a key, nothing else from disk', async () => {
    const page = await api.request(null, { url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    const js = await api.request(null, { url: '/dashboard/app.js' });
    expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await api.request(null, { url: '/vendor/uplot/uPlot.esm.js' })).body).toContain('uPlot');
    for (const bad of ['/dashboard/..%2Fopenapi.yaml', '/dashboard/nope.js', '/vendor/uplot/..%2Fpackage.json', '/dashboard/']) {
      const res = await api.request(null, { url: bad });
      expect(res.statusCode, bad).toBe(404);
    }
    expect((await api.request(null, { method: 'HEAD', url: '/' })).statusCode).toBe(200);
  });

  it('adds node gauges to /metrics', async () => {
    const body = (await api.request(null, { url: '/metrics' })).body;
    expect(body).toContain('berth_node_cpu_capacity_units{node_id="node-ev"} 2048');
    expect(body).toContain(`berth_node_memory_capacity_bytes{node_id="node-ev"} ${4096 * 2 ** 20}`);
    expect(body).toContain('berth_node_status{node_id="node-ev",status="ACTIVE"} 1');
    expect(body).toContain('berth_node_status{node_id="node-ev",status="LOST"} 0');
  });

  it('adds each function\'s instances by state to /metrics, and drops a deleted function\'s', async () => {
    await api.redis.sadd(keys.functions(), 'acme/hello');
    await api.redis.sadd(keys.fnLive('acme', 'hello'), 'i1', 'i2', 'i3');
    await api.redis.zadd(keys.fnReady('acme', 'hello'), 1, 'i1', 0, 'i2');
    await api.redis.hset(keys.fnInflight('acme', 'hello'), 'i1', '1', 'i0', '2');
    await api.redis.sadd(keys.fnDraining('acme', 'hello'), 'i0');
    const body = (await api.request(null, { url: '/metrics' })).body;
    expect(body).toContain('berth_function_instances{function="acme/hello",state="starting"} 1');
    expect(body).toContain('berth_function_instances{function="acme/hello",state="ready"} 2');
    expect(body).toContain('berth_function_instances{function="acme/hello",state="draining"} 1');
    expect(body).toContain('berth_function_requests_in_flight{function="acme/hello"} 3');
    await api.redis.srem(keys.functions(), 'acme/hello');
    expect((await api.request(null, { url: '/metrics' })).body).not.toContain('acme/hello');
  });
});
