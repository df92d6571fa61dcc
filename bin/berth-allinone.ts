// Berth on one machine: Redis (unless REDIS_URL is given), a loopback registry
// holding the example images, the API, the scheduler and a node agent, in one
// process tree. State lives under BERTH_STATE_DIR (./.berth). The API is served
// by BERTH_API_WORKERS processes (one per core by default, api/src/workers.ts);
// with 1 it runs in this process beside the scheduler and the agent.
import cluster from 'node:cluster';
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { registerLocalNode } from '../common/functions.ts';
import { loadConfig, parseAddr } from '../common/config.ts';
import { startRedisServer, startRegistryServer, type Daemon } from '../common/daemons.ts';
import { createLogger } from '../common/log.ts';
import { connectRedis } from '../common/redis.ts';
import { loadSecretBox } from '../common/secret-box.ts';
import { buildApi, closeWhenAsked, ensureAdminKey, forkApiWorkers, workerMetrics } from '../api/src/index.ts';
import { startScheduler } from '../scheduler/src/index.ts';
import { sameHostNode, startAgent } from '../node-agent/src/index.ts';
import { pushExampleImages } from '../images/examples.ts';
import { pushFunctionExamples } from '../functions-examples/build.ts';

const config = loadConfig();
const logger = createLogger('allinone');
const daemons: Daemon[] = [];
const closers: (() => Promise<void>)[] = [];

async function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

async function main(): Promise<void> {
  const workers = apiWorkers();
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });

  let redisUrl = config.redisUrl;
  if (!redisUrl) {
    const addr = parseAddr(process.env.BERTH_LOCAL_REDIS_ADDR ?? '127.0.0.1:6390', 'BERTH_LOCAL_REDIS_ADDR');
    if (await listening(addr.host, addr.port)) {
      throw new Error(`something already listens on ${addr.host}:${addr.port}; set REDIS_URL to use it, or BERTH_LOCAL_REDIS_ADDR to another port`);
    }
    const dir = path.join(config.stateDir, 'redis');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    daemons.push(await startRedisServer({ dir, port: addr.port, persist: true }));
    redisUrl = `redis://${addr.host}:${addr.port}`;
    logger.info({ redisUrl, dir }, 'started redis-server');
  }

  let registry = config.defaultRegistry;
  if (!registry) {
    const addr = parseAddr(process.env.BERTH_LOCAL_REGISTRY_ADDR ?? '127.0.0.1:5000', 'BERTH_LOCAL_REGISTRY_ADDR');
    if (await listening(addr.host, addr.port)) {
      throw new Error(`something already listens on ${addr.host}:${addr.port}; set BERTH_REGISTRY to use it, or BERTH_LOCAL_REGISTRY_ADDR to another port`);
    }
    daemons.push(await startRegistryServer({ dir: path.join(config.stateDir, 'registry'), host: addr.host, port: addr.port }));
    registry = `${addr.host}:${addr.port}`;
    logger.info({ registry }, 'started docker-registry');
    const pushed = await pushExampleImages(registry);
    logger.info({ images: pushed }, 'example images are in the local registry');
    const functions = await pushFunctionExamples(registry);
    logger.info({ images: functions }, 'example function images are in the local registry (functions-examples/)');
  }

  const redis = connectRedis(redisUrl);
  closers.push(async () => { redis.disconnect(); });
  await ensureAdminKey(redis, config.stateDir);
  const secretBox = await loadSecretBox(config.secretsKeyFile, { create: true });

  // The scheduler's and the agent's /healthz and /metrics: a free port each unless configured.
  const httpAddr = (name: string) => (process.env[name] ? parseAddr(process.env[name], name) : { host: '127.0.0.1', port: 0 });
  const scheduler = await startScheduler({ redisUrl, logger: createLogger('scheduler'), http: httpAddr('BERTH_SCHEDULER_ADDR') });
  closers.push(() => scheduler.close());

  const agent = await startAgent({
    redisUrl,
    nodeId: config.nodeId,
    stateDir: path.join(config.stateDir, 'agent'),
    logger: createLogger('node-agent'),
    defaultRegistry: registry,
    insecureRegistries: config.insecureRegistries,
    subnet: process.env.BERTH_SUBNET || undefined,
    netnsPool: process.env.BERTH_NETNS_POOL ? Number(process.env.BERTH_NETNS_POOL) : undefined,
    bridge: process.env.BERTH_BRIDGE || undefined,
    http: httpAddr('BERTH_AGENT_ADDR'),
    secretBox,
  });
  closers.push(() => agent.close());

  if (workers > 1) {
    const api = await forkApiWorkers({
      count: workers, logger,
      env: { REDIS_URL: redisUrl, BERTH_REGISTRY: registry, BERTH_NODE_ID: config.nodeId, [WORKER_ENV]: '1' },
    });
    closers.push(() => api.close());
  } else {
    const api = await buildApi({ redis, logger: createLogger('api'), secretBox });
    closers.push(() => api.close());
    await api.listen({ host: config.apiAddr.host, port: config.apiAddr.port });
  }
  const url = `http://${config.apiAddr.host}:${config.apiAddr.port}`;
  await writeFile(path.join(config.stateDir, 'api-url'), url + '\n');

  process.stdout.write(
    `\nBerth is running.\n  API:       ${url}  (docs at ${url}/docs)\n  Registry:  ${registry}\n` +
    `  Admin key: ${path.join(config.stateDir, 'admin-key')}\n` +
    `Try:  curl -H "Authorization: Bearer $(cat ${path.relative(process.cwd(), path.join(config.stateDir, 'admin-key')) || 'admin-key'})" ${url}/v1/tasks\n\n`,
  );
}

/** Set in the environment of the API workers this process forks. */
const WORKER_ENV = 'BERTH_ALLINONE_API_WORKER';

/** BERTH_API_WORKERS: processes serving the API; the host's cores (at most 8) by default. */
function apiWorkers(): number {
  const given = process.env.BERTH_API_WORKERS;
  if (given === undefined || given === '') return Math.min(8, os.availableParallelism());
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`BERTH_API_WORKERS: expected a whole number from 1 to 64, got "${given}"`);
  return n;
}

/**
 * An API worker: one more API replica on the all-in-one's Redis, on the shared
 * API port. The agent runs in the primary, so its instances are reached as
 * those of a node on this host (sameHostNode) rather than through its proxy.
 */
async function runApiWorker(): Promise<void> {
  const workerLogger = createLogger('api');
  const started: { api?: Awaited<ReturnType<typeof buildApi>>; redis?: ReturnType<typeof connectRedis> } = {};
  let closing = false;
  closeWhenAsked(async () => {
    closing = true;
    await started.api?.close();
    await started.redis?.quit();
  }, workerLogger);

  const redis = started.redis = connectRedis(config.redisUrl!);
  const secretBox = await loadSecretBox(config.secretsKeyFile, { create: false });
  registerLocalNode(config.nodeId, sameHostNode(redis, config.nodeId));
  const { registry, metricsText } = workerMetrics();
  const api = started.api = await buildApi({ redis, logger: workerLogger, secretBox, metricsRegistry: registry, metricsText });
  if (closing) return;
  await api.listen({ host: config.apiAddr.host, port: config.apiAddr.port });
}

async function shutdown(signal: string): Promise<void> {
  logger.info({ signal }, 'shutting down; running containers are re-adopted on the next start');
  for (const close of closers.reverse()) await close().catch((err: Error) => logger.warn({ err: err.message }, 'close failed'));
  for (const daemon of daemons.reverse()) await daemon.stop();
  process.exit(0);
}

if (cluster.isWorker && process.env[WORKER_ENV] === '1') {
  runApiWorker().catch((err: Error) => {
    process.stderr.write(`berth: an API worker could not start: ${err.message}\n`);
    process.exit(1);
  });
} else {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void shutdown(signal));
  main().catch(async (err: Error) => {
    logger.fatal({ err: err.message }, 'berth could not start');
    process.stderr.write(`berth: ${err.message}\n`);
    // What did start is closed as on a shutdown: the agent releases the network namespaces it pooled.
    for (const close of closers.reverse()) await close().catch(() => undefined);
    for (const daemon of daemons.reverse()) await daemon.stop();
    process.exit(1);
  });
}
