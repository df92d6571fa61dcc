// A real Prometheus (Debian's) scrapes the all-in-one's API, scheduler and
// agent with deploy/prometheus/prometheus.yml (targets moved to this run's
// ports): the per-task series of a real task come back through its HTTP API,
// then go away once the task stops; so do a real function's series. Every
// query of deploy/grafana/berth.json is checked against the same Prometheus.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startDaemon, waitForPort, type Daemon } from '../../common/daemons.ts';
import { fnConfig } from '../functions/fixture.ts';
import { startAllInOne, waitForTask, type AllInOne } from '../harness/allinone.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PROMETHEUS = process.env.BERTH_TEST_PROMETHEUS ?? '/usr/bin/prometheus';

let aio: AllInOne | undefined;
let prometheus: Daemon | undefined;
let promDir: string | undefined;
let promUrl = '';
const ports = { agent: 0, scheduler: 0, api: 0, prometheus: 0 };
let taskId = '';
let fnName = '';

interface ScrapeConfig { job_name: string; scrape_interval?: string; static_configs: { targets: string[] }[] }

/** deploy/prometheus/prometheus.yml with this run's targets and a 1 s scrape interval. */
function promConfig(): string {
  const config = parse(readFileSync(path.join(repo, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
    global: Record<string, string>; scrape_configs: ScrapeConfig[];
  };
  const targets: Record<string, number> = { 'berth-api': ports.api, 'berth-scheduler': ports.scheduler, 'berth-agent': ports.agent };
  expect(config.scrape_configs.map((c) => c.job_name).sort()).toEqual(Object.keys(targets).sort());
  config.global.scrape_interval = '1s';
  for (const job of config.scrape_configs) {
    job.scrape_interval = '1s';
    job.static_configs = [{ targets: [`127.0.0.1:${targets[job.job_name]}`] }];
  }
  return stringify(config);
}

async function query(expr: string): Promise<{ status: string; data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string }> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return res.json() as Promise<any>;
}

/** Polls an instant query until `ok` holds for its result. */
async function until(expr: string, ok: (r: Awaited<ReturnType<typeof query>>['data']['result']) => boolean, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    const r = await query(expr);
    last = r;
    if (r.status === 'success' && ok(r.data.result)) return r.data.result;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`${expr}: not as expected within ${timeoutMs} ms; last answer ${JSON.stringify(last)}`);
}

const text = async (url: string) => {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
};

beforeAll(async () => {
  if (!existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: apt-get install -y prometheus`);
  ports.agent = await freePort();
  ports.scheduler = await freePort();
  aio = await startAllInOne({ BERTH_AGENT_ADDR: `127.0.0.1:${ports.agent}`, BERTH_SCHEDULER_ADDR: `127.0.0.1:${ports.scheduler}` });
  ports.api = Number(new URL(aio.url).port);

  promDir = await mkdtemp(path.join(os.tmpdir(), 'berth-prometheus-'));
  await writeFile(path.join(promDir, 'prometheus.yml'), promConfig());
  ports.prometheus = await freePort();
  prometheus = startDaemon(PROMETHEUS, [
    `--config.file=${path.join(promDir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${ports.prometheus}`,
    '--log.level=warn',
  ]);
  promUrl = `http://127.0.0.1:${ports.prometheus}`;
  await waitForPort(ports.prometheus, 30_000, prometheus.child).catch((err: Error) => {
    throw new Error(`prometheus did not start: ${err.message}\n${prometheus?.output()}`);
  });
}, 180_000);

afterAll(async () => {
  if (taskId) await aio?.api('POST', `/v1/tasks/${taskId}/stop`).catch(() => undefined);
  if (fnName) await aio?.api('DELETE', `/v1/functions/${fnName}`).catch(() => undefined);
  await prometheus?.stop();
  if (promDir) await rm(promDir, { recursive: true, force: true });
  await aio?.stop();
}, 120_000);

describe('Prometheus metrics', () => {
  it('the scheduler and the agent answer /healthz and /metrics on the configured addresses', async () => {
    for (const port of [ports.scheduler, ports.agent]) {
      const health = await text(`http://127.0.0.1:${port}/healthz`);
      expect(health).toEqual({ status: 200, body: '{"status":"ok"}' });
      expect((await text(`http://127.0.0.1:${port}/nope`)).status).toBe(404);
    }
    const scheduler = await text(`http://127.0.0.1:${ports.scheduler}/metrics`);
    expect(scheduler.body).toContain('# TYPE berth_scheduler_placement_attempts_total counter');
    expect(scheduler.body).toContain('# TYPE berth_scheduler_placement_latency_seconds histogram');
    expect(scheduler.body).toMatch(/^berth_scheduler_placement_queue_jobs\{state="waiting"\} \d+$/m);
    const api = await text(`${aio!.url}/metrics`);
    expect(api.body).toContain(`berth_node_cpu_capacity_units{node_id="${aio!.nodeId}"}`);
    expect(api.body).toContain(`berth_node_status{node_id="${aio!.nodeId}",status="ACTIVE"} 1`);
  });

  it('a running task\'s series reach Prometheus, counted placements too, and leave when it stops', async () => {
    const def = await aio!.api('POST', '/v1/task-definitions', {
      family: 'metrics-spin', image: 'berth/busybox:latest', command: ['sh', '-c', 'while :; do :; done'], cpu: 256, memory: 32, stopTimeout: 2,
    });
    expect(def.status).toBe(201);
    const run = await aio!.api('POST', '/v1/tasks', { taskDefinition: 'metrics-spin' });
    expect(run.status).toBe(201);
    taskId = run.body.tasks[0].taskId;
    expect(await waitForTask(aio!, taskId, 'RUNNING')).toMatchObject({ lastStatus: 'RUNNING' });

    // Every target is up.
    const up = await until('up', (r) => r.length === 3 && r.every((s) => s.value[1] === '1'));
    expect(up.map((s) => s.metric.job).sort()).toEqual(['berth-agent', 'berth-api', 'berth-scheduler']);

    const sel = `{task_id="${taskId}"}`;
    const memory = await until(`berth_task_memory_bytes${sel}`, (r) => r.length === 1 && Number(r[0]!.value[1]) > 0);
    expect(memory[0]!.metric).toMatchObject({ job: 'berth-agent', task_id: taskId, family: 'metrics-spin' });
    const limit = await until(`berth_task_memory_limit_bytes${sel}`, (r) => r.length === 1);
    expect(Number(limit[0]!.value[1])).toBe(32 * 2 ** 20);
    // A busy loop at 256 units: about a quarter of a vCPU.
    const cpu = await until(`rate(berth_task_cpu_seconds_total${sel}[5s])`, (r) => r.length === 1 && Number(r[0]!.value[1]) > 0.05);
    expect(Number(cpu[0]!.value[1])).toBeLessThan(0.6);

    const placed = await until('berth_scheduler_placement_attempts_total{result="placed"}', (r) => r.length === 1 && Number(r[0]!.value[1]) >= 1);
    expect(placed[0]!.metric.job).toBe('berth-scheduler');
    const reserved = await until(`berth_node_cpu_reserved_units{node_id="${aio!.nodeId}"}`, (r) => r.length === 1 && Number(r[0]!.value[1]) === 256);
    expect(reserved[0]!.metric.job).toBe('berth-api');

    // Stopped: the agent drops the task's series, and Prometheus marks them stale.
    expect((await aio!.api('POST', `/v1/tasks/${taskId}/stop`)).status).toBe(200);
    expect(await waitForTask(aio!, taskId, 'STOPPED')).toMatchObject({ lastStatus: 'STOPPED' });
    await expect.poll(async () => (await text(`http://127.0.0.1:${ports.agent}/metrics`)).body.includes(taskId), { timeout: 10_000 }).toBe(false);
    await until(`berth_task_memory_bytes${sel}`, (r) => r.length === 0);
    taskId = '';
  }, 120_000);

  it('a function\'s invocations, cold starts, latency and instances reach Prometheus', async () => {
    expect((await aio!.api('POST', '/v1/functions', fnConfig('prom-fn', { idleTimeout: 300 }))).status).toBe(201);
    fnName = 'prom-fn';
    for (const body of ['a', 'b', 'fail']) {
      const res = await fetch(`${aio!.url}/v1/functions/prom-fn/invoke`, { method: 'POST', body, headers: { authorization: `Bearer ${aio!.adminKey}` } });
      expect(res.status).toBe(body === 'fail' ? 500 : 200);
      await res.arrayBuffer();
    }
    // The admin key's tenant is `default`; the gateway labels functions `<tenant>/<name>`.
    const fn = 'function="default/prom-fn"';
    const total = await until(`sum(berth_function_invocations_total{${fn}})`, (r) => r.length === 1 && Number(r[0]!.value[1]) === 3);
    expect(total).toHaveLength(1);
    await until(`berth_function_cold_starts_total{${fn}}`, (r) => r.length === 1 && Number(r[0]!.value[1]) === 1);
    await until(`berth_function_invocation_duration_seconds_count{${fn}}`, (r) => r.length === 1 && Number(r[0]!.value[1]) === 3);
    await until(`berth_function_instances{${fn},state="ready"}`, (r) => r.length === 1 && Number(r[0]!.value[1]) >= 1);
    // Its instance is a task of family fn-prom-fn on the agent.
    await until('berth_task_memory_bytes{family="fn-prom-fn"}', (r) => r.length >= 1 && Number(r[0]!.value[1]) > 0);

    expect((await aio!.api('DELETE', '/v1/functions/prom-fn')).status).toBe(204);
    fnName = '';
    await until(`berth_function_instances{${fn}}`, (r) => r.length === 0);
  }, 120_000);

  it('every query of the Grafana dashboard parses, and names only series Berth exports', async () => {
    const dashboard = JSON.parse(readFileSync(path.join(repo, 'deploy/grafana/berth.json'), 'utf8'));
    const exprs: string[] = [];
    for (const p of dashboard.panels) for (const t of p.targets ?? []) exprs.push(t.expr);
    for (const a of dashboard.annotations.list) if (a.expr) exprs.push(a.expr);
    for (const v of dashboard.templating.list) {
      const inner = /^label_values\((.*), *[a-z_]+\)$/.exec(v.query?.query ?? '')?.[1];
      if (inner) exprs.push(inner);
    }
    expect(exprs.length).toBeGreaterThan(20);
    const names = (await (await fetch(`${promUrl}/api/v1/label/__name__/values`)).json() as { data: string[] }).data;
    for (const raw of exprs) {
      const expr = raw.replaceAll('$__rate_interval', '5s').replace(/\$[a-z_]+/g, '.*');
      const r = await query(expr);
      expect(r.status, `${expr}: ${r.error}`).toBe('success');
      for (const name of expr.match(/\bberth_[a-z_]+/g) ?? []) expect(names, `${name} (in ${raw})`).toContain(name);
    }
  });
});
