// Functions on two nodes (agents as separate processes, test/harness/cluster.ts)
// with the API in this process, so every invocation goes through an agent's
// proxy: requests and answers pass through it whole, timeouts and crashes
// answer as on one node, the warm pool is spread
// over the nodes, and when a node is lost its instances are replaced on the
// other one and invocations go on.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, ensureAdminKey } from '../../api/src/index.ts';
import { startCluster, type AgentProcess, type TestCluster } from '../harness/cluster.ts';
import { fnConfig } from './fixture.ts';

let cluster: TestCluster;
let api: FastifyInstance;
let url: string;
let key: string;
let stateDir: string;
const agents: AgentProcess[] = [];
const saved = { ...process.env };

beforeAll(async () => {
  process.env.BERTH_FN_TICK_MS = '200';
  process.env.BERTH_FN_STABLE_WINDOW_S = '3';
  process.env.BERTH_FN_PANIC_WINDOW_S = '1';
  cluster = await startCluster({ nodeGraceMs: 2000 });
  agents.push(await cluster.agent(), await cluster.agent());
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'berth-fn-cluster-'));
  api = await buildApi({ redis: cluster.redis, logger: pino({ level: 'silent' }), rateLimit: { rate: 0, burst: 1 } });
  await api.listen({ host: '127.0.0.1', port: 0 });
  const addr = api.server.address() as { port: number };
  url = `http://127.0.0.1:${addr.port}`;
  key = await ensureAdminKey(cluster.redis, stateDir);
}, 180_000);

afterAll(async () => {
  for (const name of ['spread', 'slow', 'crashy', 'echo']) {
    await fetch(`${url}/v1/functions/${name}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } }).catch(() => undefined);
  }
  await new Promise((r) => setTimeout(r, 1000));
  await api?.close();
  await cluster?.stop();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
  process.env = saved;
}, 60_000);

async function get(route: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url + route, { ...init, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, headers: res.headers, json };
}

async function readyInstances(): Promise<{ id: string; nodeId: string }[]> {
  const routes = await cluster.redis.hgetall('berth:tenant:default:fn:spread:instances');
  const ready = new Set(await cluster.redis.zrange('berth:tenant:default:fn:spread:ready', 0, -1));
  return Object.entries(routes).filter(([id]) => ready.has(id)).map(([id, r]) => ({ id, nodeId: JSON.parse(r).nodeId as string }));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined | false;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

describe('functions on two nodes', () => {
  it('answers 504 over the timeout and 502 with the exit code when the instance crashes, through the agent, and replaces both', async () => {
    for (const [name, extra] of [['slow', { timeout: 1 }], ['crashy', {}]] as const) {
      expect((await get('/v1/functions', { method: 'POST', body: JSON.stringify(fnConfig(name, extra)) })).status).toBe(201);
    }
    const slow = await get('/fn/slow/');
    expect(slow.status).toBe(200);
    const started = Date.now();
    const timedOut = await get('/fn/slow/sleep?ms=5000');
    expect(timedOut.status).toBe(504);
    expect(timedOut.json.error.code).toBe('FUNCTION_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(3000);
    const recycled = await waitFor('the timed-out instance to stop', async () => {
      const t = await get(`/v1/tasks/${slow.headers.get('x-berth-instance-id')}`);
      return t.json.lastStatus === 'STOPPED' && t.json;
    });
    expect(recycled.stoppedReason).toMatch(/timeout/i);

    const crashy = await get('/fn/crashy/');
    expect(crashy.status).toBe(200);
    const crashed = await get('/fn/crashy/crash');
    expect(crashed.status).toBe(502);
    expect(crashed.json.error.code).toBe('FUNCTION_INSTANCE_FAILED');
    expect(crashed.json.error.message).toMatch(/exit code 3/);
    const after = await get('/fn/crashy/');
    expect(after.status).toBe(200);
    expect(after.headers.get('x-berth-instance-id')).not.toBe(crashy.headers.get('x-berth-instance-id'));
    for (const name of ['slow', 'crashy']) {
      expect((await fetch(`${url}/v1/functions/${name}`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } })).status).toBe(204);
    }
  });

  it('passes method, path, query, headers and body through the agent, and the answer back, streamed', async () => {
    expect((await get('/v1/functions', { method: 'POST', body: JSON.stringify(fnConfig('echo')) })).status).toBe(201);
    const body = 'a body of '.repeat(10_000);
    const echoed = await get('/fn/echo/some/path?x=1&y=two', { method: 'PUT', body, headers: { 'content-type': 'text/plain', 'x-custom': 'kept' } });
    expect(echoed.status).toBe(200);
    expect(echoed.json).toMatchObject({ method: 'PUT', url: '/some/path?x=1&y=two', body });
    expect(echoed.json.headers).toMatchObject({ 'x-custom': 'kept', 'content-type': 'text/plain' });
    expect(echoed.json.headers['x-berth-agent-token']).toBeUndefined();
    expect(echoed.json.headers.authorization).toBeUndefined();
    expect(echoed.headers.get('x-fn-reply')).toBe('yes');
    expect(Number(echoed.headers.get('x-berth-max-memory-used-mib'))).toBeGreaterThan(0);
    expect(Number(echoed.headers.get('x-berth-duration-ms'))).toBeGreaterThanOrEqual(0);
    const teapot = await get('/fn/echo/?status=418');
    expect(teapot.status).toBe(418);

    const streamed = await fetch(`${url}/fn/echo/stream`, { headers: { authorization: `Bearer ${key}` } });
    const reader = streamed.body!.getReader();
    const first = await reader.read();
    const firstAt = Date.now();
    expect(new TextDecoder().decode(first.value)).toBe('first\n');
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe('second\n');
    expect(Date.now() - firstAt).toBeGreaterThanOrEqual(400);
    expect((await fetch(`${url}/v1/functions/echo`, { method: 'DELETE', headers: { authorization: `Bearer ${key}` } })).status).toBe(204);
  });

  it('spreads the warm pool over the nodes and replaces the instances of a lost node on the other', async () => {
    const deployed = await get('/v1/functions', { method: 'POST', body: JSON.stringify(fnConfig('spread', { minInstances: 2, maxInstances: 4, memory: 96 })) });
    expect(deployed.status).toBe(201);
    const pool = await waitFor('two ready instances', async () => {
      const r = await readyInstances();
      return r.length === 2 && r;
    });
    expect(new Set(pool.map((i) => i.nodeId))).toEqual(new Set(agents.map((a) => a.nodeId)));
    expect((await get('/fn/spread/')).status).toBe(200);

    const [lost, kept] = agents;
    await lost!.kill('SIGKILL');
    const replaced = await waitFor('the pool back at two, on the remaining node', async () => {
      const r = await readyInstances();
      return r.length === 2 && r.every((i) => i.nodeId === kept!.nodeId) && r;
    });
    const gone = pool.find((i) => i.nodeId === lost!.nodeId)!;
    expect(replaced.map((i) => i.id)).not.toContain(gone.id);
    const task = await get(`/v1/tasks/${gone.id}`);
    expect(task.json).toMatchObject({ lastStatus: 'STOPPED', stopCode: 'NodeLost' });
    for (let i = 0; i < 4; i++) {
      const res = await get('/fn/spread/');
      expect(res.status).toBe(200);
      expect(replaced.map((r) => r.id)).toContain(res.headers.get('x-berth-instance-id'));
    }
  });
});
