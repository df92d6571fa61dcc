// The node agent: registers this host, heartbeats, takes work from its own
// queue only, and runs it through the task supervisor.
import { execFile } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import { queueHeartbeat, registerNode } from '../../common/nodes.ts';
import { closeRedis, connectRedis } from '../../common/redis.ts';
import type { Logger } from '../../common/log.ts';
import type { NodeJob } from '../../common/types.ts';
import type { SecretBox } from '../../common/secret-box.ts';
import { createImageService, parsePullBehavior, type ImagePullBehavior } from './image/index.ts';
import { createNetworkManager } from './network/index.ts';
import { createStatsCollector } from './stats/index.ts';
import { runtimeBinary, shimBinary } from './binaries.ts';
import { TaskSupervisor } from './supervisor.ts';
import { ensureAgentToken, registerLocalNode, type LocalNode } from '../../common/functions.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { createLocalNode, createProxy, ProxyTargets } from './proxy.ts';
import { createInstanceHooks } from './readiness.ts';

export interface AgentOptions {
  redisUrl: string;
  nodeId: string;
  stateDir: string;
  logger: Logger;
  defaultRegistry?: string;
  insecureRegistries?: string[];
  /** What the node offers; defaults to the host's cores and memory less `reserve`. */
  capacity?: { cpu: number; memory: number };
  /** Kept for the host itself (MiB) when capacity is not given. @defaultValue 256 */
  reservedMemory?: number;
  labels?: Record<string, string>;
  /** host:port of the agent's HTTP endpoint (/healthz, /metrics). @defaultValue 127.0.0.1:0 */
  http?: { host: string; port: number };
  /** host:port other hosts reach the agent at (the API's function gateway proxies through it).
   * @defaultValue the bound address; when bound to every address, this host's first non-loopback IPv4 */
  advertise?: string;
  /** Opens the tasks' secrets; without it a task with secrets fails to start. */
  secretBox?: SecretBox | null;
  /** Jobs taken from the node's queue at once. @defaultValue 16 */
  concurrency?: number;
  /** @defaultValue 1000 */
  heartbeatMs?: number;
  shim?: string;
  runtime?: string;
  subnet?: string;
  bridge?: string;
  /** Bridge namespaces wired ahead of time, so a task start skips the CNI ADD. @defaultValue 4 */
  netnsPool?: number;
  /** When a start asks the registry about a stored image (node-agent/src/image/pull-behavior.ts).
   * @defaultValue BERTH_IMAGE_PULL_BEHAVIOR, else 'default' */
  imagePullBehavior?: ImagePullBehavior;
  /** How long a resolved tag is trusted under 'default' (ms). @defaultValue BERTH_IMAGE_TAG_CACHE_S × 1000, else 10000 */
  imageTagCacheMs?: number;
}

export interface Agent {
  nodeId: string;
  address: string;
  supervisor: TaskSupervisor;
  /** Stops taking work and detaches from the containers, which go on running. */
  close(): Promise<void>;
}

export async function startAgent(o: AgentOptions): Promise<Agent> {
  const logger = o.logger.child({ nodeId: o.nodeId });
  const redis = connectRedis(o.redisUrl);
  const metrics = new Registry();
  collectDefaultMetrics({ register: metrics });

  const images = createImageService({
    root: path.join(o.stateDir, 'images'), defaultRegistry: o.defaultRegistry, insecureRegistries: o.insecureRegistries, logger,
    pullBehavior: o.imagePullBehavior ?? parsePullBehavior(process.env.BERTH_IMAGE_PULL_BEHAVIOR),
    tagCacheMs: o.imageTagCacheMs ?? tagCacheFromEnv(process.env.BERTH_IMAGE_TAG_CACHE_S),
  });
  const network = createNetworkManager({
    stateDir: path.join(o.stateDir, 'network'), subnet: o.subnet, bridge: o.bridge, logger, poolSize: o.netnsPool ?? 4,
  });
  const stats = createStatsCollector({ redis, registry: metrics, logger });
  // Function instances: readiness then routing (readiness.ts), and the proxy into them (proxy.ts).
  let address = '';
  const proxyTargets = new ProxyTargets(redis, o.nodeId);
  const proxy = createProxy({ token: await ensureAgentToken(redis), targets: proxyTargets, logger });
  const unregisterLocalNode = registerLocalNode(o.nodeId, proxy.local);
  const hooks = createInstanceHooks({
    redis, logger, nodeId: o.nodeId, agentAddress: () => address, targets: proxyTargets,
    stop: (taskId, reason) => supervisor.stop(taskId, reason),
  });
  const runtime = o.runtime ?? runtimeBinary();
  const supervisor: TaskSupervisor = new TaskSupervisor({
    hooks,
    redis, logger, nodeId: o.nodeId, images, network, stats,
    tasksDir: path.join(o.stateDir, 'tasks'),
    runtimeRoot: path.join(o.stateDir, 'runtime'),
    shimBinary: o.shim ?? shimBinary(),
    runtimeBinary: runtime,
    runtimeMountsRootfs: await isBerthRuntime(runtime),
    secretBox: o.secretBox ?? null,
  });

  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/v1/proxy/')) {
      proxy.handle(req, res);
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (req.url === '/metrics') {
      metrics.metrics().then((body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body), () => res.writeHead(500).end());
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"No such route"}}');
    }
  });
  const listen = o.http ?? { host: '127.0.0.1', port: 0 };
  await new Promise<void>((resolve) => server.listen(listen.port, listen.host, resolve));
  const bound = server.address() as { address: string; port: number };
  address = o.advertise ?? `${advertisedHost(bound.address)}:${bound.port}`;

  const capacity = o.capacity ?? {
    cpu: os.cpus().length * 1024,
    memory: Math.max(0, Math.floor(os.totalmem() / 2 ** 20) - (o.reservedMemory ?? 256)),
  };
  const register = () => registerNode(redis, {
    nodeId: o.nodeId, address, cpuTotal: capacity.cpu, memoryTotal: capacity.memory, labels: o.labels ?? {},
  });
  await register();
  const adopted = await supervisor.adopt();
  if (adopted.length > 0) logger.info({ count: adopted.length }, 're-adopted running tasks');

  const heartbeat = setInterval(() => {
    void (async () => {
      const status = await redis.hget(keys.node(o.nodeId), 'status');
      if (status === 'LOST' || status === null) {
        await register();
        const stopped = await supervisor.resync();
        logger.warn({ stopped: stopped.length }, 'this node had been declared lost: registered again and stopped the tasks the cluster gave up');
      } else await queueHeartbeat(redis.multi(), o.nodeId).exec();
    })().catch((err: Error) => logger.warn({ err: err.message }, 'heartbeat failed'));
  }, o.heartbeatMs ?? 1000);

  const workerConnection = connectRedis(o.redisUrl);
  const worker = new Worker<NodeJob>(
    queues.node(o.nodeId),
    async (job) => {
      if (job.data.kind === 'start') await supervisor.start(job.data.taskId);
      else await supervisor.stop(job.data.taskId, job.data.reason);
    },
    { connection: workerConnection, prefix: BULLMQ_PREFIX, concurrency: o.concurrency ?? 16 },
  );
  worker.on('error', (err) => logger.error({ err: err.message }, 'node worker error'));
  worker.on('failed', (job, err) => logger.error({ job: job?.data, err: err.message }, 'node job failed'));
  await worker.waitUntilReady();

  logger.info({ address, capacity, runtime: o.runtime ?? runtimeBinary() }, 'agent started');
  return {
    nodeId: o.nodeId,
    address,
    supervisor,
    async close() {
      unregisterLocalNode();
      clearInterval(heartbeat);
      await worker.close();
      supervisor.detach();
      await network.close();
      await stats.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await proxy.close();
      await Promise.all([closeRedis(redis), closeRedis(workerConnection)]);
    },
  };
}

/**
 * The instances of the agent `nodeId` as another process on the same host sees
 * them (an API worker of the all-in-one): found from their task records, called
 * on their bridge IP, their peak memory read from their cgroups.
 */
export function sameHostNode(redis: BerthRedis, nodeId: string): LocalNode {
  return createLocalNode(new ProxyTargets(redis, nodeId));
}

/** berth-runtime mounts a task's overlay rootfs itself; any other runtime (runc) gets it mounted. */
function isBerthRuntime(runtime: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(runtime, ['--version'], { timeout: 10_000 }, (err, stdout) => resolve(!err && stdout.startsWith('berth-runtime ')));
  });
}

function tagCacheFromEnv(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new Error(`BERTH_IMAGE_TAG_CACHE_S: expected a number of seconds, got "${value}"`);
  return seconds * 1000;
}

/** A wildcard listen address is no address to dial: name this host's first non-loopback IPv4
 * instead, on a physical-looking interface (eth*, en*, ...) before bridges such as the task bridge. */
function advertisedHost(bound: string): string {
  if (bound !== '0.0.0.0' && bound !== '::') return bound;
  const candidates = Object.entries(os.networkInterfaces())
    .flatMap(([name, addrs]) => (addrs ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => ({ name, address: a.address })))
    .sort((a, b) => Number(!/^(eth|en|wl|bond)/.test(a.name)) - Number(!/^(eth|en|wl|bond)/.test(b.name)));
  return candidates[0]?.address ?? '127.0.0.1';
}
