// A small cluster for agent tests: a real redis-server and docker-registry with
// the example images, a scheduler in this process, and node agents as separate
// processes (so a test can SIGKILL one), each with its own state dir, bridge
// and subnet. Tasks go in the way the API puts them: a record, then a placement job.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { freePort, startDaemon, TS_LOADER, waitForPort, type Daemon } from '../../common/daemons.ts';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import { createLogger } from '../../common/log.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { getTask, saveNewTasks } from '../../common/tasks.ts';
import type { NodeJob, PlacementJob, TaskContainerSpec, TaskRecord } from '../../common/types.ts';
import { pushExampleImages } from '../../images/examples.ts';
import { startScheduler, type Scheduler } from '../../scheduler/src/index.ts';
import { startRedis, type TestRedis } from './redis.ts';
import { startRegistry, type TestRegistry } from './registry.ts';
import { cleanAgentHost } from './host-cleanup.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface AgentProcess {
  nodeId: string;
  stateDir: string;
  bridge: string;
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Sends a signal and returns at once (SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void;
  output(): string;
}

export interface TestCluster {
  redis: BerthRedis;
  registry: TestRegistry;
  agent(env?: Record<string, string>): Promise<AgentProcess>;
  runTask(spec: Partial<TaskContainerSpec>, extra?: Partial<TaskRecord>): Promise<string>;
  stopTask(taskId: string, reason?: string): Promise<void>;
  waitFor(taskId: string, status: TaskRecord['lastStatus'], timeoutMs?: number): Promise<TaskRecord>;
  logLines(taskId: string): Promise<{ stream: string; message: string }[]>;
  stop(): Promise<void>;
}

export async function startCluster(options: { nodeGraceMs?: number } = {}): Promise<TestCluster> {
  const redisServer: TestRedis = await startRedis();
  const registry = await startRegistry().catch(async (err: unknown) => {
    await redisServer.stop();
    throw err;
  });
  const redis = connectRedis(redisServer.url);
  const placement = new Queue<PlacementJob>(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
  const logger = createLogger('test-cluster');
  logger.level = 'error';
  let scheduler: Scheduler;
  try {
    await pushExampleImages(registry.host);
    scheduler = await startScheduler({ redisUrl: redisServer.url, logger, retryDelayMs: 100, nodeGraceMs: options.nodeGraceMs });
  } catch (err) {
    // Nothing half-started outlives a failed start: the caller gets no cluster to stop.
    await placement.close();
    redis.disconnect();
    await registry.stop();
    await redisServer.stop();
    throw err;
  }
  const agents: { daemon?: Daemon; stateDir: string; bridge: string }[] = [];

  async function agent(env: Record<string, string> = {}): Promise<AgentProcess> {
    const suffix = randomBytes(3).toString('hex');
    const stateDir = await mkdtemp(path.join(os.tmpdir(), 'berth-agent-'));
    const record: { daemon?: Daemon; stateDir: string; bridge: string } = { stateDir, bridge: `ba${suffix}` };
    agents.push(record);
    const nodeId = `node-${suffix}`;
    const port = await freePort();
    const proc: AgentProcess = {
      nodeId, stateDir, bridge: record.bridge,
      async start() {
        record.daemon = startDaemon(process.execPath, ['--import', TS_LOADER, path.join(repo, 'node-agent/src/main.ts')], {
          cwd: repo,
          env: {
            ...process.env, REDIS_URL: redisServer.url, BERTH_STATE_DIR: stateDir, BERTH_NODE_ID: nodeId,
            BERTH_REGISTRY: registry.host, BERTH_AGENT_ADDR: `127.0.0.1:${port}`, BERTH_BRIDGE: record.bridge,
            BERTH_SUBNET: `10.${150 + (parseInt(suffix, 16) % 50)}.${parseInt(suffix, 16) % 250}.0/24`, LOG_LEVEL: 'warn', ...env,
          },
        });
        await waitForPort(port, 60_000, record.daemon.child);
      },
      async kill(signal = 'SIGKILL') {
        const child = record.daemon?.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill(signal);
        await exited;
      },
      signal(signal) {
        record.daemon?.child.kill(signal);
      },
      output: () => record.daemon?.output() ?? '',
    };
    await proc.start();
    return proc;
  }

  return {
    redis, registry, agent,
    async runTask(spec, extra = {}) {
      const taskId = randomBytes(16).toString('hex');
      const record: TaskRecord = {
        taskId, tenant: 'test', family: 'test', revision: 1,
        spec: {
          image: 'berth/busybox:latest', environment: [], cpu: 32, memory: 64, pidsLimit: 128, ulimits: [],
          portMappings: [], networkMode: 'none', readonlyRootFilesystem: false, stopTimeout: 5, ...spec,
        },
        lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', createdAt: new Date().toISOString(), ...extra,
      };
      await saveNewTasks(redis, [record]);
      await placement.add('place', { taskId }, { jobId: taskId, removeOnComplete: true });
      return taskId;
    },
    async stopTask(taskId, reason = 'stopped by the test') {
      await redis.hset(keys.task(taskId), 'desiredStatus', 'STOPPED');
      const task = await getTask(redis, taskId);
      if (!task?.nodeId) return;
      const q = new Queue<NodeJob>(queues.node(task.nodeId), { connection: redis, prefix: BULLMQ_PREFIX });
      await q.add('stop', { kind: 'stop', taskId, reason }, { removeOnComplete: true });
      await q.close();
    },
    async waitFor(taskId, status, timeoutMs = 60_000) {
      const order = ['PROVISIONING', 'PENDING', 'RUNNING', 'STOPPING', 'STOPPED'];
      const deadline = Date.now() + timeoutMs;
      let task: TaskRecord | null = null;
      while (Date.now() < deadline) {
        task = await getTask(redis, taskId);
        if (task && order.indexOf(task.lastStatus) >= order.indexOf(status)) return task;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`task ${taskId} did not reach ${status} within ${timeoutMs} ms: ${JSON.stringify(task)}`);
    },
    async logLines(taskId) {
      const entries = await redis.xrange(keys.taskLogs(taskId), '-', '+');
      return entries.map(([, fields]) => {
        const f = Object.fromEntries(fields.reduce<[string, string][]>((acc, v, i, all) => (i % 2 ? acc : [...acc, [v, all[i + 1]!]]), []));
        return { stream: f.s!, message: f.m! };
      });
    },
    async stop() {
      try {
        for (const a of agents) {
          const child = a.daemon?.child;
          if (child && child.exitCode === null && child.signalCode === null) {
            child.kill('SIGKILL');
            await new Promise((r) => child.once('exit', r));
          }
          await cleanAgentHost(a.stateDir, a.bridge);
          await rm(a.stateDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
        }
        await scheduler.close();
        await placement.close();
        redis.disconnect();
      } finally {
        await registry.stop();
        await redisServer.stop();
      }
    },
  };
}
