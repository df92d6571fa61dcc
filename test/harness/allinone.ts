// Runs the all-in-one exactly as `npm start` does (bin/berth-allinone.ts), on
// free loopback ports, with its own state dir, bridge and subnet, and removes
// everything it made afterwards, even when the test failed.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALLINONE_NODE_ARGS, freePort, startDaemon, TS_LOADER, waitForPort, type Daemon } from '../../common/daemons.ts';
import { cleanAgentHost } from './host-cleanup.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface AllInOne {
  url: string;
  /** The all-in-one's own redis-server. */
  redisUrl: string;
  adminKey: string;
  stateDir: string;
  nodeId: string;
  bridge: string;
  /** The all-in-one's own process (its API workers are its children). */
  pid: number;
  output(): string;
  /** Calls the API with the admin key; JSON in, JSON (or text) out. */
  api(method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** Node options for the all-in-one (and its API workers): `npm start`'s, and e.g. `--cpu-prof` when profiling a test or a benchmark. */
const nodeArgs = [...ALLINONE_NODE_ARGS, ...(process.env.BERTH_AIO_NODE_ARGS ?? '').split(' ').filter(Boolean)];

export async function startAllInOne(env: Record<string, string> = {}): Promise<AllInOne> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'berth-aio-'));
  const [apiPort, redisPort, registryPort] = [await freePort(), await freePort(), await freePort()];
  const suffix = randomBytes(3).toString('hex');
  const bridge = `bt${suffix}`;
  const nodeId = `test-node-${suffix}`;
  const daemon: Daemon = startDaemon(process.execPath, [...nodeArgs, '--import', TS_LOADER, path.join(repo, 'bin/berth-allinone.ts')], {
    cwd: repo,
    env: {
      ...process.env,
      BERTH_STATE_DIR: stateDir,
      BERTH_API_ADDR: `127.0.0.1:${apiPort}`,
      BERTH_LOCAL_REDIS_ADDR: `127.0.0.1:${redisPort}`,
      BERTH_LOCAL_REGISTRY_ADDR: `127.0.0.1:${registryPort}`,
      BERTH_NODE_ID: nodeId,
      BERTH_BRIDGE: bridge,
      BERTH_SUBNET: `10.${200 + (parseInt(suffix, 16) % 50)}.${parseInt(suffix, 16) % 250}.0/24`,
      REDIS_URL: '',
      BERTH_REGISTRY: '',
      LOG_LEVEL: 'warn',
      ...env,
    },
  });
  const stop = async () => {
    await daemon.stop();
    killLeftovers(stateDir);
    await cleanAgentHost(stateDir, bridge);
    await rm(stateDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  };
  try {
    await waitForPort(apiPort, 120_000, daemon.child);
  } catch (err) {
    const output = daemon.output();
    await stop();
    throw new Error(`the all-in-one did not start: ${(err as Error).message}\n${output}`);
  }
  const url = `http://127.0.0.1:${apiPort}`;
  const adminKey = (await readFile(path.join(stateDir, 'admin-key'), 'utf8')).trim();
  return {
    url, redisUrl: `redis://127.0.0.1:${redisPort}`, adminKey, stateDir, nodeId, bridge,
    pid: daemon.child.pid!,
    output: daemon.output,
    async api(method, route, body, headers = {}) {
      const res = await fetch(url + route, {
        method,
        headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try { parsed = JSON.parse(text); } catch { /* not JSON */ }
      return { status: res.status, body: parsed };
    },
    stop,
  };
}

/**
 * The processes an all-in-one started under `stateDir` (its redis-server and
 * docker-registry): those whose working directory or command line is in it.
 */
export function processesOf(stateDir: string): { pid: number; command: string }[] {
  const found: { pid: number; command: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${entry}/cwd`);
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cwd === stateDir || cwd.startsWith(stateDir + '/') || cmdline.includes(stateDir)) {
        found.push({ pid: Number(entry), command: readFileSync(`/proc/${entry}/comm`, 'utf8').trim() });
      }
    } catch { /* gone meanwhile, or not ours to read */ }
  }
  return found;
}

/** Kills what the all-in-one started under `stateDir` and left running, when it was itself killed before it could stop them. */
function killLeftovers(stateDir: string): void {
  for (const { pid } of processesOf(stateDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch { /* gone meanwhile */ }
  }
}

/** Polls the API until the task reaches `status` (or STOPPED), returning it. */
export async function waitForTask(aio: AllInOne, taskId: string, status: string, timeoutMs = 60_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let last: any;
  while (Date.now() < deadline) {
    const res = await aio.api('GET', `/v1/tasks/${taskId}`);
    last = res.body;
    if (last?.lastStatus === status || last?.lastStatus === 'STOPPED') return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`task ${taskId} did not reach ${status} in ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`);
}
