// Start of a task whose image is cached, network included: from the agent
// taking the job (pullStartedAt) to the process running (startedAt), against
// `docker run -d` of the same image on a bridge, in the same run.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { freePort, startRedisServer, startRegistryServer } from '../common/daemons.ts';
import { BULLMQ_PREFIX, keys, queues } from '../common/keys.ts';
import { createLogger } from '../common/log.ts';
import { connectRedis } from '../common/redis.ts';
import { getTask, saveNewTasks } from '../common/tasks.ts';
import type { NodeJob, PlacementJob, TaskRecord } from '../common/types.ts';
import { pushExampleImages } from '../images/examples.ts';
import { startAgent } from '../node-agent/src/index.ts';
import { startScheduler } from '../scheduler/src/index.ts';
import { startDockerd } from './docker.ts';
import { alternate, median, timeMs, type Benchmark } from './lib.ts';

const RUNS = 9;

const benchmark: Benchmark = async () => {
  const top = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-start-'));
  const logger = createLogger('bench');
  logger.level = 'silent';
  const [redisPort, registryPort] = [await freePort(), await freePort()];
  const redisServer = await startRedisServer({ dir: top, port: redisPort, persist: false });
  const registryServer = await startRegistryServer({ dir: path.join(top, 'registry'), host: '127.0.0.1', port: registryPort });
  const registry = `127.0.0.1:${registryPort}`;
  const url = `redis://127.0.0.1:${redisPort}`;
  const redis = connectRedis(url);
  const placement = new Queue<PlacementJob>(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
  const nodeId = `bench-${randomBytes(3).toString('hex')}`;
  const bridge = `bb${randomBytes(3).toString('hex')}`;
  let dockerd = null;
  const scheduler = await startScheduler({ redisUrl: url, logger, retryDelayMs: 50 });
  const agentLogger = createLogger('node-agent');
  agentLogger.level = process.env.BENCH_LOG_LEVEL ?? 'silent';
  const agent = await startAgent({
    redisUrl: url, nodeId, stateDir: path.join(top, 'agent'), logger: agentLogger, defaultRegistry: registry,
    bridge, subnet: '10.203.7.0/24',
  });
  try {
    await pushExampleImages(registry);
    dockerd = await startDockerd({ bridge: true });
    dockerd?.docker(['pull', `${registry}/berth/busybox:latest`]);

    const runTask = async (): Promise<number> => {
      const taskId = randomBytes(16).toString('hex');
      const record: TaskRecord = {
        taskId, tenant: 'bench', family: 'bench', revision: 1,
        spec: { image: 'berth/busybox:latest', command: ['sleep', '30'], environment: [], cpu: 64, memory: 32, pidsLimit: 64, ulimits: [], portMappings: [], networkMode: 'bridge', readonlyRootFilesystem: false, stopTimeout: 1 },
        lastStatus: 'PROVISIONING', desiredStatus: 'RUNNING', createdAt: new Date().toISOString(),
      };
      await saveNewTasks(redis, [record]);
      await placement.add('place', { taskId }, { jobId: taskId, removeOnComplete: true });
      let task = await getTask(redis, taskId);
      while (task && task.lastStatus !== 'RUNNING' && task.lastStatus !== 'STOPPED') {
        await new Promise((r) => setTimeout(r, 2));
        task = await getTask(redis, taskId);
      }
      if (task?.lastStatus !== 'RUNNING') throw new Error(`bench task did not run: ${task?.stoppedReason}`);
      const ms = Date.parse(task.startedAt!) - Date.parse(task.pullStartedAt!);
      await redis.hset(keys.task(taskId), 'desiredStatus', 'STOPPED');
      const q = new Queue<NodeJob>(queues.node(nodeId), { connection: redis, prefix: BULLMQ_PREFIX });
      await q.add('stop', { kind: 'stop', taskId, reason: 'bench' }, { removeOnComplete: true });
      await q.close();
      while ((await getTask(redis, taskId))?.lastStatus !== 'STOPPED') await new Promise((r) => setTimeout(r, 10));
      return ms;
    };
    const dockerRun = dockerd
      ? async () => {
        let id = '';
        const ms = await timeMs(async () => { id = dockerd!.docker(['run', '-d', '--memory', '32m', '--cpus', '0.0625', `${registry}/berth/busybox:latest`, 'sleep', '30']).trim(); });
        dockerd!.docker(['rm', '-f', id]);
        return ms;
      }
      : null;
    const result = await alternate(runTask, dockerRun, { runs: RUNS, warmup: 2 });
    process.stdout.write(`task_start: berth ${result.berth.join(', ')} ms; docker run ${result.reference.map((n) => n.toFixed(0)).join(', ')} ms\n`);
    return [{
      figure: 'task_start_ms', unit: 'ms', berth: median(result.berth),
      reference: dockerRun ? median(result.reference) : null,
      referenceName: dockerRun ? 'docker run -d (docker.io, bridge)' : 'docker run (dockerd unavailable)', runs: RUNS,
    }];
  } finally {
    await dockerd?.stop();
    await agent.close();
    await scheduler.close();
    await placement.close();
    redis.disconnect();
    await registryServer.stop();
    await redisServer.stop();
    const { cleanAgentHost } = await import('../test/harness/host-cleanup.ts');
    await cleanAgentHost(path.join(top, 'agent'), bridge);
    await rm(top, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
};

export default benchmark;
