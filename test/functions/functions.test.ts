// Functions end to end on the real all-in-one (Redis, registry, API with the
// gateway, scheduler with the autoscaler, agent, shim, runtime): cold start from
// zero, warm reuse, concurrency slots, the function URL both ways, timeouts,
// crashes and OOM kills, scaling up and back to zero, asynchronous invocations
// with retries, dead letters and replay, a rolling update, tenant isolation.
// The autoscaler's windows are shortened through the environment.
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAllInOne, type AllInOne } from '../harness/allinone.ts';
import { functionKeys } from '../../common/functions.ts';
import { connectRedis } from '../../common/redis.ts';
import { fnConfig } from './fixture.ts';

let aio: AllInOne;

beforeAll(async () => {
  aio = await startAllInOne({
    BERTH_RATE_LIMIT: '0',
    BERTH_FN_TICK_MS: '200',
    BERTH_FN_STABLE_WINDOW_S: '3',
    BERTH_FN_PANIC_WINDOW_S: '1',
    BERTH_FN_QUEUE_TIMEOUT_S: '20',
    BERTH_FN_ASYNC_BACKOFF_MS: '200',
    ...(process.env.BERTH_RUNTIME ? { BERTH_RUNTIME: process.env.BERTH_RUNTIME } : {}),
  });
}, 180_000);

afterAll(async () => {
  if (aio) {
    // Delete every function so its instances stop before the all-in-one goes.
    const list = await aio.api('GET', '/v1/functions').catch(() => null);
    for (const f of list?.body?.functions ?? []) await aio.api('DELETE', `/v1/functions/${f.name}`).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1500));
    await aio.stop();
  }
}, 60_000);

// The node has 2 vCPUs (8 instances of 256 units): every test but the first
// gives its functions' capacity back ('hello' is used throughout).
afterEach(async () => {
  const list = await aio.api('GET', '/v1/functions');
  for (const f of list.body?.functions ?? []) {
    if (f.name !== 'hello') await aio.api('DELETE', `/v1/functions/${f.name}`);
  }
});

async function call(path: string, init: RequestInit & { key?: string } = {}): Promise<{ status: number; headers: Headers; text: string; json: any }> {
  const res = await fetch(aio.url + path, {
    ...init,
    headers: { authorization: `Bearer ${init.key ?? aio.adminKey}`, ...(init.headers as Record<string, string> | undefined) },
  });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

const invoke = (name: string, body = '', init: RequestInit & { key?: string } = {}) =>
  call(`/v1/functions/${name}/invoke`, { method: 'POST', body, ...init });

async function deploy(name: string, extra: Record<string, unknown> = {}): Promise<any> {
  const res = await aio.api('POST', '/v1/functions', fnConfig(name, extra));
  expect([200, 201]).toContain(res.status);
  return res.body;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined | false;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

const instances = async (name: string) => (await aio.api('GET', `/v1/functions/${name}`)).body.instances as number;

describe('functions', () => {
  it('starts an instance from zero on the first request and reuses it warm', async () => {
    const fn = await deploy('hello');
    expect(fn).toMatchObject({ name: 'hello', version: 1, concurrency: 1, minInstances: 0, instances: 0, url: '/fn/hello/' });

    const cold = await invoke('hello', 'ping');
    expect(cold.status).toBe(200);
    expect(cold.json).toMatchObject({ method: 'POST', url: '/', body: 'ping', port: '8080' });
    expect(cold.headers.get('x-berth-cold-start')).toBe('true');
    const instance = cold.headers.get('x-berth-instance-id');
    expect(instance).toMatch(/^[a-f0-9]{32}$/);
    expect(Number(cold.headers.get('x-berth-duration-ms'))).toBeGreaterThan(0);
    expect(Number(cold.headers.get('x-berth-billed-duration-ms'))).toBeGreaterThanOrEqual(1);
    expect(Number(cold.headers.get('x-berth-max-memory-used-mib'))).toBeGreaterThan(0);

    for (let i = 0; i < 3; i++) {
      const warm = await invoke('hello', `ping ${i}`);
      expect(warm.status).toBe(200);
      expect(warm.headers.get('x-berth-cold-start')).toBeNull();
      expect(warm.headers.get('x-berth-instance-id')).toBe(instance);
      expect(warm.json.pid).toBe(cold.json.pid);
    }
    expect(await instances('hello')).toBe(1);
    const stats = await waitFor('the counters', async () => {
      const r = await aio.api('GET', '/v1/functions/hello/stats');
      return r.body.invocations === 4 && r.body;
    });
    expect(stats).toMatchObject({ invocations: 4, errors: 0, coldStarts: 1, instances: 1 });
    // The instance is a task of the tenant like any other, labelled by its function.
    const task = await aio.api('GET', `/v1/tasks/${instance}`);
    expect(task.body).toMatchObject({ family: 'fn-hello', lastStatus: 'RUNNING', startedBy: 'function:hello' });
  });

  it('passes method, path, query, headers and body through the function URL, and the answer back, streamed', async () => {
    const res = await call('/fn/hello/some/path?q=1&r=two', {
      method: 'PUT', body: 'the body', headers: { 'content-type': 'text/plain', 'x-custom': 'abc' },
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ method: 'PUT', url: '/some/path?q=1&r=two', body: 'the body' });
    expect(res.json.headers).toMatchObject({ 'x-custom': 'abc', 'content-type': 'text/plain', 'x-forwarded-proto': 'http' });
    expect(res.json.headers.authorization).toBeUndefined(); // the API key stays with Berth
    expect(res.headers.get('x-fn-reply')).toBe('yes');

    const created = await call('/fn/hello/?status=201', { method: 'DELETE' });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ method: 'DELETE', url: '/?status=201' });
    const get = await call('/fn/hello');
    expect(get.json).toMatchObject({ method: 'GET', url: '/' });

    // Streaming: the first chunk arrives before the instance has finished.
    const started = Date.now();
    const stream = await fetch(`${aio.url}/fn/hello/stream`, { headers: { authorization: `Bearer ${aio.adminKey}` } });
    const reader = stream.body!.getReader();
    const first = await reader.read();
    const firstAt = Date.now() - started;
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    expect(Buffer.from(first.value!).toString()).toBe('first\n');
    expect(rest).toBe('second\n');
    expect(firstAt).toBeLessThan(450);
  });

  it('honours the concurrency per instance: at max instances the N+1th request waits for a slot', async () => {
    await deploy('conc', { concurrency: 2, maxInstances: 1 });
    await invoke('conc'); // cold start out of the way
    const started = Date.now();
    const results = await Promise.all([0, 1, 2].map(async (i) => {
      await new Promise((r) => setTimeout(r, i * 50));
      const res = await call('/fn/conc/sleep?ms=1500');
      return { ...res, at: Date.now() - started };
    }));
    for (const r of results) expect(r.status).toBe(200);
    const times = results.map((r) => r.at).sort((a, b) => a - b);
    expect(times[1]).toBeLessThan(2400); // two ran at once
    expect(times[2]).toBeGreaterThanOrEqual(2900); // the third waited for a slot
    expect(Math.max(...results.map((r) => r.json.maxActive))).toBe(2);
    expect(new Set(results.map((r) => r.headers.get('x-berth-instance-id'))).size).toBe(1);
    expect(await instances('conc')).toBe(1);

    // A client that goes away gives its slot back at once.
    await deploy('conc', { concurrency: 1, maxInstances: 1 });
    await waitFor('version 2 of conc', async () => (await instances('conc')) === 1 && (await call('/fn/conc/')).status === 200);
    const gone = new AbortController();
    const abandoned = fetch(`${aio.url}/fn/conc/sleep?ms=3000`, { headers: { authorization: `Bearer ${aio.adminKey}` }, signal: gone.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 300));
    gone.abort();
    await abandoned;
    const next = Date.now();
    expect((await call('/fn/conc/')).status).toBe(200);
    expect(Date.now() - next).toBeLessThan(1500);
  });

  it('answers 504 over the timeout and recycles the instance', async () => {
    await deploy('slow', { timeout: 1 });
    const first = await invoke('slow');
    const instance = first.headers.get('x-berth-instance-id');
    const started = Date.now();
    const res = await call('/fn/slow/sleep?ms=5000');
    expect(res.status).toBe(504);
    expect(res.json.error.code).toBe('FUNCTION_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3000);
    const next = await invoke('slow');
    expect(next.status).toBe(200);
    expect(next.headers.get('x-berth-instance-id')).not.toBe(instance);
    const old = await waitFor('the timed-out instance to stop', async () => {
      const t = await aio.api('GET', `/v1/tasks/${instance}`);
      return t.body.lastStatus === 'STOPPED' && t.body;
    });
    expect(old.stoppedReason).toMatch(/timeout/i);
  });

  it('answers 504 over the timeout while the request body is still coming, and the client reads it', async () => {
    await deploy('slow', { timeout: 1 });
    const started = Date.now();
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(`${aio.url}/fn/slow/sleep?ms=5000`, {
        method: 'POST', headers: { authorization: `Bearer ${aio.adminKey}`, 'content-type': 'text/plain' },
      }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => { body += chunk; });
        res.on('end', () => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      req.once('error', reject);
      req.write('the first part of a body that never ends in time\n');
    });
    expect(answer.status).toBe(504);
    expect(JSON.parse(answer.body).error.code).toBe('FUNCTION_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await invoke('slow')).status).toBe(200);
  });

  it('answers 502 with the reason when an instance crashes or is OOM-killed, and replaces it', async () => {
    await deploy('crashy');
    const first = await invoke('crashy');
    const crashed = await call('/fn/crashy/crash');
    expect(crashed.status).toBe(502);
    expect(crashed.json.error.code).toBe('FUNCTION_INSTANCE_FAILED');
    expect(crashed.json.error.message).toMatch(/exit code 3/);
    const after = await invoke('crashy');
    expect(after.status).toBe(200);
    expect(after.headers.get('x-berth-instance-id')).not.toBe(first.headers.get('x-berth-instance-id'));

    await deploy('hog', { memory: 64 });
    const ok = await call('/fn/hog/alloc?mb=8');
    expect(ok.status).toBe(200);
    const oom = await call('/fn/hog/alloc?mb=200');
    expect(oom.status).toBe(502);
    expect(oom.json.error.message).toMatch(/OutOfMemoryError/);
    expect(oom.json.error.details.instanceId).toBe(ok.headers.get('x-berth-instance-id'));
    const again = await call('/fn/hog/alloc?mb=8');
    expect(again.status).toBe(200);
    expect(again.headers.get('x-berth-instance-id')).not.toBe(ok.headers.get('x-berth-instance-id'));
    const killed = await aio.api('GET', `/v1/tasks/${ok.headers.get('x-berth-instance-id')}`);
    expect(killed.body).toMatchObject({ lastStatus: 'STOPPED', exitCode: 137, stoppedReason: 'OutOfMemoryError: container killed due to memory usage' });
  });

  it('keeps slots between requests of a function with a high concurrency, gives them back when idle, never reuses one on a crashed instance', async () => {
    await deploy('busy', { concurrency: 100, maxInstances: 1 });
    const redis = connectRedis(aio.redisUrl);
    try {
      const k = functionKeys('default', 'busy');
      const first = await call('/fn/busy/');
      expect(first.status).toBe(200);
      // Requests one after the other for a second: the leases held right after each are the kept slots, seen again by the next ones.
      const seen = new Map<string, { first: number; last: number }>();
      for (const until = Date.now() + 1000; Date.now() < until;) {
        const answers = await Promise.all([call('/fn/busy/'), call('/fn/busy/')]);
        expect(answers.map((a) => a.status)).toEqual([200, 200]);
        const now = Date.now();
        for (const lease of await redis.zrange(k.leases, 0, -1)) seen.set(lease, { first: seen.get(lease)?.first ?? now, last: now });
      }
      // A slot given back is never handed out again, so a lease seen over half a second was kept all along:
      // renewed while its instance stays routable, not taken from Redis again every 50 ms.
      expect(Math.max(0, ...[...seen.values()].map((s) => s.last - s.first))).toBeGreaterThan(500);
      await waitFor('the kept slots given back', async () =>
        (await redis.zcard(k.leases)) === 0 && Object.values(await redis.hgetall(k.inflight)).every((n) => n === '0'), 5_000);

      // A crash under kept slots: the next request goes to the replacement, not to a slot on the dead instance.
      await Promise.all([call('/fn/busy/'), call('/fn/busy/')]);
      const crashed = await call('/fn/busy/crash');
      expect(crashed.status).toBe(502);
      const after = await call('/fn/busy/');
      expect(after.status).toBe(200);
      expect(after.headers.get('x-berth-instance-id')).not.toBe(first.headers.get('x-berth-instance-id'));
    } finally {
      redis.disconnect();
    }
  });

  it('scales up under load and back to zero when idle', async () => {
    await deploy('scaler', { concurrency: 1, maxInstances: 4, idleTimeout: 2 });
    let peak = 0;
    const load = async () => {
      const until = Date.now() + 5000;
      while (Date.now() < until) {
        const r = await call('/fn/scaler/sleep?ms=300');
        expect(r.status).toBe(200);
      }
    };
    const watcher = (async () => {
      const until = Date.now() + 5500;
      while (Date.now() < until) {
        peak = Math.max(peak, await instances('scaler'));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    await Promise.all([load(), load(), load(), load(), watcher]);
    expect(peak).toBeGreaterThanOrEqual(3);
    expect(peak).toBeLessThanOrEqual(4);
    await waitFor('scale to zero', async () => (await instances('scaler')) === 0, 30_000);
    const stats = await aio.api('GET', '/v1/functions/scaler/stats');
    expect(stats.body.errors).toBe(0);
    // And from zero again.
    const res = await invoke('scaler');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-berth-cold-start')).toBe('true');
  });

  it('runs Event invocations from the queue with retries, dead-letters them, and replays them after a fix', async () => {
    await deploy('worker', { asyncRetries: 1 });
    const ok = await invoke('worker', 'hello', { headers: { 'x-berth-invocation-type': 'Event' } });
    expect(ok.status).toBe(202);
    const okId = ok.json.invocationId;
    expect(ok.headers.get('x-berth-invocation-id')).toBe(okId);

    const bad = await invoke('worker', 'fail', { headers: { 'x-berth-invocation-type': 'Event' } });
    expect(bad.status).toBe(202);
    const badId = bad.json.invocationId;

    const done = await waitFor('the good invocation', async () => {
      const r = await aio.api('GET', `/v1/functions/worker/invocations/${okId}`);
      return r.body.status === 'SUCCEEDED' && r.body;
    });
    expect(done).toMatchObject({ attempts: 1, result: { statusCode: 200, bodyEncoding: 'utf8' } });
    expect(JSON.parse(done.result.body)).toMatchObject({ body: 'hello', method: 'POST' });

    const failed = await waitFor('the bad invocation to fail every attempt', async () => {
      const r = await aio.api('GET', `/v1/functions/worker/invocations/${badId}`);
      return r.body.status === 'FAILED' && r.body;
    });
    expect(failed).toMatchObject({ attempts: 2, error: 'The function answered 500', result: { statusCode: 500, body: 'failing on purpose' } });
    const dlq = await aio.api('GET', '/v1/functions/worker/dead-letters');
    expect(dlq.body.invocations.map((i: any) => i.invocationId)).toEqual([badId]);

    // Fix the function (a new version rolls in), then replay.
    const v2 = await deploy('worker', { asyncRetries: 1, environment: [{ name: 'NEVER_FAIL', value: '1' }, { name: 'VERSION', value: 'two' }] });
    expect(v2.version).toBe(2);
    await waitFor('version 2 to serve', async () => (await invoke('worker')).json?.version === 'two');
    const replay = await aio.api('POST', `/v1/functions/worker/dead-letters/${badId}/replay`);
    expect(replay.status).toBe(202);
    const replayed = await waitFor('the replayed invocation', async () => {
      const r = await aio.api('GET', `/v1/functions/worker/invocations/${badId}`);
      return r.body.status === 'SUCCEEDED' && r.body;
    });
    expect(JSON.parse(replayed.result.body)).toMatchObject({ body: 'fail', version: 'two' });
    expect((await aio.api('GET', '/v1/functions/worker/dead-letters')).body.invocations).toEqual([]);
    // The old version's instance was drained and stopped.
    await waitFor('only version 2 instances', async () => {
      const f = (await aio.api('GET', '/v1/functions/worker')).body;
      return f.instanceCounts.draining === 0 && f.instances >= 1;
    });
  });

  it("keeps every function route to the tenant that owns the function", async () => {
    const key = await aio.api('POST', '/v1/api-keys', { tenant: 'other', name: 'other' });
    expect(key.status).toBe(201);
    const other = key.body.apiKey as string;
    const as = (path: string, init: RequestInit = {}) => call(path, { ...init, key: other });

    expect((await as('/v1/functions')).json).toEqual({ functions: [] });
    expect((await as('/v1/functions/hello')).status).toBe(404);
    expect((await as('/v1/functions/hello/stats')).status).toBe(404);
    const inv = await as('/v1/functions/hello/invoke', { method: 'POST', body: 'x' });
    expect(inv.status).toBe(404);
    expect(inv.json.error.code).toBe('FUNCTION_NOT_FOUND');
    expect((await as('/fn/hello/anything', { method: 'PATCH', body: 'x' })).status).toBe(404);
    expect((await as('/v1/functions/hello/invoke', { method: 'POST', body: 'x', headers: { 'x-berth-invocation-type': 'Event' } })).status).toBe(404);
    expect((await as('/v1/functions/worker/dead-letters')).status).toBe(404);
    expect((await as(`/v1/functions/worker/invocations/${'0'.repeat(32)}`)).status).toBe(404);
    expect((await as(`/v1/functions/worker/dead-letters/${'0'.repeat(32)}/replay`, { method: 'POST' })).status).toBe(404);
    expect((await as('/v1/functions/hello', { method: 'DELETE' })).status).toBe(404);
    expect((await call('/fn/hello/', { key: 'berth_not_a_key' })).status).toBe(401);

    // The same name in another tenant is another function.
    const mine = await fetch(`${aio.url}/v1/functions`, {
      method: 'POST', headers: { authorization: `Bearer ${other}`, 'content-type': 'application/json' },
      body: JSON.stringify(fnConfig('hello', { environment: [{ name: 'VERSION', value: 'other' }] })),
    });
    expect(mine.status).toBe(201);
    expect((await as('/fn/hello/')).json.version).toBe('other');
    expect((await call('/fn/hello/')).json.version).toBe('');
    expect((await as('/v1/functions/hello', { method: 'DELETE' })).status).toBe(204);
    expect((await call('/fn/hello/')).status).toBe(200);
  });

  it('runs the example functions the all-in-one pushed (functions-examples/)', async () => {
    const deployed = await Promise.all([
      aio.api('POST', '/v1/functions', { name: 'ex-static', image: 'berth/fn-static:latest', memory: 16, cpu: 128, concurrency: 10 }),
      aio.api('POST', '/v1/functions', { name: 'ex-hello', image: 'berth/fn-hello:latest', memory: 128 }),
      aio.api('POST', '/v1/functions', { name: 'ex-cpu', image: 'berth/fn-cpu:latest', memory: 128 }),
      aio.api('POST', '/v1/functions', { name: 'ex-worker', image: 'berth/fn-worker:latest', memory: 128, asyncRetries: 0 }),
    ]);
    for (const d of deployed) expect(d.status).toBe(201);
    const s = await call('/fn/ex-static/anything', { method: 'POST', body: 'x'.repeat(10_000) });
    expect(s.status).toBe(200);
    expect(s.text).toBe('Hello from a static Berth function\n');
    const h = await call('/fn/ex-hello/path?x=1', { method: 'PATCH', body: 'b' });
    expect(h.json).toMatchObject({ hello: 'from a Berth function', method: 'PATCH', url: '/path?x=1', body: 'b' });
    const c = await call('/fn/ex-cpu/?n=100000');
    expect(c.json).toMatchObject({ n: 100000, primes: 9592 });
    const ev = await invoke('ex-worker', JSON.stringify({ job: 'j1', fail: true, ms: 10 }), { headers: { 'x-berth-invocation-type': 'Event' } });
    expect(ev.status).toBe(202);
    const failed = await waitFor('the worker event to be dead-lettered', async () => {
      const r = await aio.api('GET', `/v1/functions/ex-worker/invocations/${ev.json.invocationId}`);
      return r.body.status === 'FAILED' && r.body;
    });
    expect(failed).toMatchObject({ attempts: 1, result: { statusCode: 500 } });
  });

  it('deletes a function and stops its instances', async () => {
    const before = await invoke('hello');
    const instance = before.headers.get('x-berth-instance-id');
    expect((await aio.api('DELETE', '/v1/functions/hello')).status).toBe(204);
    expect((await invoke('hello')).status).toBe(404);
    await waitFor('the instance to stop', async () => (await aio.api('GET', `/v1/tasks/${instance}`)).body.lastStatus === 'STOPPED');
  });
});
