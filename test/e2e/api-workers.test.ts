// The all-in-one's API workers (api/src/workers.ts): several processes share
// the API port; /metrics counts every worker's requests whichever answers it,
// and cluster-wide gauges once; a worker that dies is replaced while the others
// go on answering (a connection handed to it in the moment it died is lost:
// Node's round-robin); none outlives the all-in-one; functions are invoked
// from a worker as from the single process; one that cannot listen stops the
// all-in-one, leaving no daemon and no network namespace behind.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, TS_LOADER } from '../../common/daemons.ts';
import { processesOf, startAllInOne, type AllInOne } from '../harness/allinone.ts';
import { cleanAgentHost } from '../harness/host-cleanup.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let aio: AllInOne;

beforeAll(async () => {
  aio = await startAllInOne({ BERTH_API_WORKERS: '2' });
}, 180_000);

afterAll(async () => {
  await aio?.stop();
});

/** The all-in-one's API workers: its node children that run the same entry point. */
function workerPids(): number[] {
  const pids: number[] = [];
  const children = readFileSync(`/proc/${aio.pid}/task/${aio.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  for (const pid of children) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('berth-allinone.ts')) pids.push(pid);
    } catch { /* exited meanwhile */ }
  }
  return pids;
}

/** A process that has exited (a zombie until its parent reaps it) or is gone. */
function deadOrGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

/** One request on a connection of its own, which any worker may accept. */
function getOnNewConnection(route: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${aio.url}${route}`, { agent: false, headers: { authorization: `Bearer ${aio.adminKey}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
  });
}

function countOf(metrics: string, series: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function waitFor<T>(what: string, read: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('API workers', () => {
  it('serves the API port from BERTH_API_WORKERS processes, and /metrics counts the requests of all of them', async () => {
    expect(workerPids()).toHaveLength(2);
    const series = 'http_requests_total{route="/v1/nodes",method="GET",status="200"}';
    const before = countOf((await getOnNewConnection('/metrics')).body, series);
    for (let i = 0; i < 10; i++) expect((await getOnNewConnection('/v1/nodes')).status).toBe(200);
    // Scraped twice on new connections: whichever worker answers sees all ten.
    const first = countOf((await getOnNewConnection('/metrics')).body, series);
    const second = countOf((await getOnNewConnection('/metrics')).body, series);
    expect(first - before).toBe(10);
    expect(second).toBe(first);
    // Cluster-wide gauges read from Redis are taken once, not summed over the workers.
    const node = (await aio.api('GET', `/v1/nodes/${aio.nodeId}`)).body;
    expect(node.cpuTotal).toBeGreaterThan(0);
    const capacity = `berth_node_cpu_capacity_units{node_id="${aio.nodeId}"}`;
    expect(countOf((await getOnNewConnection('/metrics')).body, capacity)).toBe(node.cpuTotal);
    expect(countOf((await getOnNewConnection('/metrics')).body, capacity)).toBe(node.cpuTotal);
  });

  it('invokes a function from a worker, with the instance\'s peak memory in the answer', async () => {
    const deployed = await aio.api('POST', '/v1/functions', { name: 'from-worker', image: 'berth/fn-static:latest', memory: 16 });
    expect(deployed.status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const res = await getOnNewConnection('/fn/from-worker/');
      expect(res.status).toBe(200);
      expect(res.body).toBe('Hello from a static Berth function\n');
    }
    const answer = await fetch(`${aio.url}/fn/from-worker/`, { headers: { authorization: `Bearer ${aio.adminKey}` } });
    await answer.text();
    expect(Number(answer.headers.get('x-berth-max-memory-used-mib'))).toBeGreaterThan(0);
    expect(answer.headers.get('x-berth-instance-id')).toMatch(/^[a-f0-9]{32}$/);
    expect((await aio.api('DELETE', '/v1/functions/from-worker')).status).toBe(204);
  }, 60_000);

  it('replaces a worker that dies, answering meanwhile from the others', async () => {
    const [victim, survivor] = workerPids();
    process.kill(victim!, 'SIGKILL');
    // Dead, whether or not the all-in-one has seen it yet: no connection may go to it.
    await waitFor('the worker to die', () => (deadOrGone(victim!) ? true : undefined));
    for (let i = 0; i < 4; i++) expect((await getOnNewConnection('/healthz')).status).toBe(200);
    await waitFor('the all-in-one to see its worker die', () => (aio.output().includes('an API worker died; starting another') ? true : undefined));
    const replaced = await waitFor('a new API worker', () => {
      const now = workerPids();
      return now.length === 2 && !now.includes(victim!) ? now : undefined;
    });
    expect(replaced).toContain(survivor);
  }, 30_000);

  it('stops every worker with the all-in-one', async () => {
    const pids = workerPids();
    expect(pids.length).toBeGreaterThan(0);
    await aio.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  }, 30_000);

  it('stops the all-in-one when its workers cannot listen, leaving no daemon and no network namespace', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'berth-aio-'));
    const suffix = randomBytes(3).toString('hex');
    const bridge = `bt${suffix}`;
    const netnsBefore = new Set(readdirSync('/run/netns'));
    try {
      const child = spawn(process.execPath, ['--import', TS_LOADER, path.join(repo, 'bin/berth-allinone.ts')], {
        cwd: repo, stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env, BERTH_STATE_DIR: stateDir, BERTH_API_ADDR: `127.0.0.1:${port}`, BERTH_API_WORKERS: '2',
          BERTH_LOCAL_REDIS_ADDR: `127.0.0.1:${await freePort()}`, BERTH_LOCAL_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`,
          BERTH_NODE_ID: `test-node-${suffix}`, BERTH_BRIDGE: bridge, BERTH_SUBNET: `10.${200 + (parseInt(suffix, 16) % 50)}.${parseInt(suffix, 16) % 250}.0/24`,
          REDIS_URL: '', BERTH_REGISTRY: '', LOG_LEVEL: 'warn',
        },
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
      const code = await new Promise((resolve) => child.once('exit', resolve));
      expect(code).toBe(1);
      expect(output).toContain('an API worker exited before it listened');
      expect(output).toContain('EADDRINUSE');
      expect(readdirSync('/run/netns').filter((n) => !netnsBefore.has(n))).toEqual([]);
      expect(processesOf(stateDir)).toEqual([]);
    } finally {
      blocker.close();
      await cleanAgentHost(stateDir, bridge);
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 120_000);
});
