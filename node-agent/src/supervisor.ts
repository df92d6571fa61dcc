// Runs tasks on this node and keeps the truth about them: start (pull, rootfs,
// network, bundle, shim), stop (SIGTERM, then SIGKILL after the stop timeout),
// supervision until exit, clean-up, and re-adoption after an agent restart.
// Everything a restart needs is in the task's directory or with its shim.
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { keys } from '../../common/keys.ts';
import { getTask, transitionTask } from '../../common/tasks.ts';
import type { BerthRedis } from '../../common/redis.ts';
import type { SecretBox } from '../../common/secret-box.ts';
import type { Logger } from '../../common/log.ts';
import type { StopCode, TaskRecord } from '../../common/types.ts';
import { taskMounts } from './bundle/mounts.ts';
import { buildSpec, type NetworkNamespace } from './bundle/spec.ts';
import type { ImageService } from './image/index.ts';
import type { NetworkManager, TaskNetwork } from './network/index.ts';
import type { StatsCollector } from './stats/index.ts';
import { HealthChecker } from './health.ts';
import { LogShipper } from './log-shipper.ts';
import { openSecrets, registryCredentials, processArgs, processEnv, resolveUser } from './process-spec.ts';
import { deleteContainer, launchShim, signalContainer, shimRequest, waitForExit, type ExitRecord } from './shim.ts';

const MiB = 1024 * 1024;
const SIGTERM = 15;
const SIGKILL = 9;

export interface SupervisorDeps {
  redis: BerthRedis;
  logger: Logger;
  nodeId: string;
  images: ImageService;
  network: NetworkManager;
  stats: StatsCollector;
  /** Where each task keeps its directory. */
  tasksDir: string;
  runtimeRoot: string;
  shimBinary: string;
  runtimeBinary: string;
  /**
   * The runtime mounts the overlay rootfs itself from config.json's
   * berth.rootfs.overlay annotations (berth-runtime does; runc does not):
   * no mount(8) on the host, and nothing on the host to unmount.
   */
  runtimeMountsRootfs?: boolean;
  logMaxBytes?: number;
  /** Told when a task runs and when it stopped (function instances: node-agent/src/readiness.ts). */
  hooks?: TaskHooks;
  /** Opens the secrets in a task's environment. */
  secretBox?: SecretBox | null;
}

export interface TaskHooks {
  /** After RUNNING is recorded. */
  onRunning?(task: TaskRecord, info: { ipAddress?: string; cgroupsPath: string }): void;
  /** After STOPPED is recorded, whatever the path. */
  onStopped?(taskId: string): void;
}

/** What the agent writes beside a task to find and clean it up after a restart. */
interface TaskMeta {
  taskId: string;
  family: string;
  cgroupsPath: string;
  cpuUnits: number;
  memoryBytes: number;
  stopTimeout: number;
  network?: TaskNetwork;
}

interface Paths {
  dir: string;
  meta: string;
  bundle: string;
  shimState: string;
  log: string;
  started: string;
  stopRequest: string;
}

class StartAborted extends Error {}

export class TaskSupervisor {
  private readonly supervised = new Map<string, Promise<void>>();
  private readonly shippers = new Map<string, LogShipper>();
  private readonly killTimers = new Map<string, NodeJS.Timeout>();
  private readonly health: HealthChecker;

  constructor(private readonly d: SupervisorDeps) {
    this.health = new HealthChecker(d);
  }

  private paths(taskId: string): Paths {
    const dir = path.join(this.d.tasksDir, taskId);
    return {
      dir,
      meta: path.join(dir, 'meta.json'),
      bundle: path.join(dir, 'bundle'),
      shimState: path.join(dir, 'shim'),
      log: path.join(dir, 'container.log'),
      started: path.join(dir, 'started.json'),
      stopRequest: path.join(dir, 'stop.json'),
    };
  }

  /** Starts a PENDING task placed on this node. Safe to call twice for one task. */
  async start(taskId: string): Promise<void> {
    const task = await getTask(this.d.redis, taskId);
    if (!task || task.nodeId !== this.d.nodeId || task.lastStatus !== 'PENDING') return;
    const p = this.paths(taskId);
    if (await exists(p.dir)) return; // started already, by us or before a restart
    if (task.desiredStatus === 'STOPPED') {
      await this.record(taskId, { stopCode: 'UserInitiated', stoppedReason: 'Task stopped before it started' });
      return;
    }
    const log = this.d.logger.child({ taskId });
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    const meta: TaskMeta = {
      taskId, family: task.family, cgroupsPath: `/berth/${taskId}`,
      cpuUnits: task.spec.cpu, memoryBytes: task.spec.memory * MiB, stopTimeout: task.spec.stopTimeout,
    };
    await writeJson(p.meta, meta);

    let stage = 'pull';
    const timings: Record<string, number> = {};
    const begun = performance.now();
    let mark = begun;
    const lap = (name: string) => {
      const now = performance.now();
      timings[name] = Math.round((timings[name] ?? 0) + now - mark);
      mark = now;
    };
    try {
      // Recorded while the image is looked for (awaited with the pull's end, on the same connection).
      const pullStartRecorded = this.d.redis.hset(keys.task(taskId), 'pullStartedAt', new Date().toISOString());
      pullStartRecorded.catch(() => undefined); // awaited below once the pull succeeds; a failed pull says why itself
      // The network does not depend on the image: it is set up meanwhile, and
      // always awaited before anything is cleaned up, so nothing it made leaks.
      const networkStarted = performance.now();
      const networkReady = this.d.network.setup(taskId, task.spec.networkMode, task.spec.portMappings).then(async (network) => {
        meta.network = network;
        await writeJson(p.meta, meta);
        timings.networkMs = Math.round(performance.now() - networkStarted);
        return network;
      });
      networkReady.catch(() => undefined); // awaited below, on every path
      let image, rootfs, user, extraMounts;
      let rootfsAnnotations: Record<string, string> = {};
      try {
        image = await this.d.images.pull(task.spec.image, { credentials: registryCredentials(task, this.d.secretBox ?? null) });
        await settleAll([
          pullStartRecorded,
          this.d.redis.hset(keys.task(taskId), 'pullStoppedAt', new Date().toISOString()),
          this.ensureStillWanted(taskId),
        ]);
        lap('pullMs');
        stage = 'rootfs';
        const pulled = image;
        if (this.d.runtimeMountsRootfs) {
          const plan = await this.d.images.prepareRootfs(taskId, image);
          rootfs = plan.rootfs;
          rootfsAnnotations = { 'berth.rootfs.overlay': plan.options, 'berth.rootfs.overlay-base': plan.base };
        } else {
          rootfs = await this.d.images.mountRootfs(taskId, image);
        }
        lap('rootfsMs');
        stage = 'config';
        const imageFiles = this.d.runtimeMountsRootfs ? (file: string) => this.d.images.readImageFile(pulled, file) : rootfs;
        user = await resolveUser(imageFiles, task.spec.user ?? image.config.user);
        extraMounts = await taskMounts(task.spec, path.join(p.dir, 'volumes'));
        lap('configMs');
      } catch (err) {
        await networkReady.catch(() => undefined);
        throw err;
      }
      stage = 'network';
      await networkReady;
      lap('networkWaitMs');
      stage = 'config';
      await mkdir(p.bundle, { recursive: true });
      const spec = buildSpec({
        args: processArgs(image.config, task.spec),
        env: processEnv(image.config, task.spec, { ...openSecrets(task, this.d.secretBox ?? null), HOSTNAME: taskId.slice(0, 12) }),
        cwd: task.spec.workingDirectory ?? image.config.workingDir ?? '/',
        user,
        hostname: taskId.slice(0, 12),
        rootPath: rootfs,
        readonlyRootfs: task.spec.readonlyRootFilesystem,
        cgroupsPath: meta.cgroupsPath,
        memoryBytes: meta.memoryBytes,
        cpuUnits: meta.cpuUnits,
        pidsLimit: task.spec.pidsLimit,
        network: networkNamespace(meta.network),
        extraMounts,
        rlimits: task.spec.ulimits.length > 0
          ? task.spec.ulimits.map((u) => ({ type: `RLIMIT_${u.name.toUpperCase()}`, soft: u.softLimit, hard: u.hardLimit }))
          : undefined,
        annotations: { 'berth.task-id': taskId, 'berth.family': task.family, ...rootfsAnnotations },
      });
      await settleAll([writeFile(path.join(p.bundle, 'config.json'), JSON.stringify(spec)), this.ensureStillWanted(taskId)]);
      lap('configMs');
      stage = 'start';
      const started = await launchShim({
        shim: this.d.shimBinary, runtime: this.d.runtimeBinary, runtimeRoot: this.d.runtimeRoot,
        containerId: taskId, bundle: p.bundle, stateDir: p.shimState, logPath: p.log, logMaxBytes: this.d.logMaxBytes,
      });
      const startedAt = new Date().toISOString();
      lap('startMs');
      // Probing a function instance starts with the container, not after the record below: a failure
      // to record goes through record(), whose onStopped takes the instance out again.
      this.d.hooks?.onRunning?.(task, { ipAddress: meta.network?.ipAddress, cgroupsPath: meta.cgroupsPath });
      await settleAll([
        writeJson(p.started, started),
        transitionTask(this.d.redis, taskId, 'RUNNING', { startedAt, imageDigest: image.digest, ipAddress: meta.network?.ipAddress }),
      ]);
      lap('recordMs');
      log.info({ pid: started.pid, image: task.spec.image, ...timings, totalMs: Math.round(performance.now() - begun) }, 'task running');
      this.supervise(taskId, meta, started.pid);
      const now = await getTask(this.d.redis, taskId);
      if (now?.desiredStatus === 'STOPPED') await this.stop(taskId, now.stoppedReason ?? 'Task stopped by user');
    } catch (err) {
      if (err instanceof StartAborted) {
        await this.cleanUp(taskId, meta);
        await this.record(taskId, { stopCode: 'UserInitiated', stoppedReason: err.message });
        return;
      }
      const message = (err as Error).message;
      const reason = stage === 'pull' ? `CannotPullContainerError: ${message}`
        : stage === 'start' ? `CannotStartContainerError: ${message}`
        : `TaskFailedToStart: ${stage}: ${message}`;
      log.warn({ stage, err: message }, 'task failed to start');
      await this.cleanUp(taskId, meta);
      await this.record(taskId, { stopCode: 'TaskFailedToStart', stoppedReason: reason });
    }
  }

  private async ensureStillWanted(taskId: string): Promise<void> {
    const desired = await this.d.redis.hget(keys.task(taskId), 'desiredStatus');
    if (desired === 'STOPPED') throw new StartAborted('Task stopped before it started');
  }

  /** SIGTERM now, SIGKILL after the task's stop timeout (or `graceSeconds`). */
  async stop(taskId: string, reason: string, graceSeconds?: number): Promise<void> {
    const p = this.paths(taskId);
    if (!(await exists(p.dir))) {
      // Not started here (yet): the start sees desiredStatus and gives up.
      const task = await getTask(this.d.redis, taskId);
      if (task && task.lastStatus !== 'PENDING') return;
      await this.record(taskId, { stopCode: 'UserInitiated', stoppedReason: reason });
      return;
    }
    await writeJson(p.stopRequest, { reason });
    this.health.unwatch(taskId);
    await transitionTask(this.d.redis, taskId, 'STOPPING', { stoppingAt: new Date().toISOString() });
    if (!(await exists(p.started))) return; // starting: it checks desiredStatus once launched
    const meta = await readJson<TaskMeta>(p.meta);
    const grace = graceSeconds ?? meta?.stopTimeout ?? 30;
    if (grace === 0) {
      await signalContainer(p.shimState, SIGKILL);
      return;
    }
    await signalContainer(p.shimState, SIGTERM);
    if (!this.killTimers.has(taskId)) {
      const timer = setTimeout(() => { void signalContainer(p.shimState, SIGKILL); }, grace * 1000);
      timer.unref();
      this.killTimers.set(taskId, timer);
    }
  }

  private supervise(taskId: string, meta: TaskMeta, pid?: number): void {
    if (this.supervised.has(taskId)) return;
    const p = this.paths(taskId);
    const shipper = new LogShipper(this.d.redis, taskId, p.log);
    this.shippers.set(taskId, shipper);
    this.d.stats.track(taskId, {
      cgroupsPath: meta.cgroupsPath, netnsPath: meta.network?.netnsPath, cpuUnits: meta.cpuUnits,
      memoryBytes: meta.memoryBytes, family: meta.family, pid,
    });
    const done = (async () => {
      await shipper.start();
      void this.health.watch(taskId).catch((err: Error) => this.d.logger.warn({ taskId, err: err.message }, 'health checks not started'));
      const exit = await waitForExit(p.shimState);
      await this.finish(taskId, meta, exit);
    })()
      .catch((err: Error) => this.d.logger.error({ taskId, err: err.message }, 'supervising the task failed'))
      .finally(() => {
        this.supervised.delete(taskId);
        this.shippers.delete(taskId);
      });
    this.supervised.set(taskId, done);
  }

  private async finish(taskId: string, meta: TaskMeta, exit: ExitRecord | null): Promise<void> {
    const p = this.paths(taskId);
    this.health.unwatch(taskId);
    clearTimeout(this.killTimers.get(taskId));
    this.killTimers.delete(taskId);
    const stopRequest = await readJson<{ reason: string }>(p.stopRequest);
    let stopCode: StopCode = stopRequest ? 'UserInitiated' : 'EssentialContainerExited';
    let stoppedReason = stopRequest?.reason ?? 'Essential container in task exited';
    if (exit?.oomKilled) stoppedReason = 'OutOfMemoryError: container killed due to memory usage';
    if (!exit) {
      stopCode = 'EssentialContainerExited';
      stoppedReason = 'TaskFailed: the container monitor (berth-shim) ended without recording an exit status';
    }
    const outcome = { stopCode, stoppedReason, ...(exit ? { exitCode: exit.exitCode } : {}) };
    // Why it stopped is known now; releasing what it held can take a while on a
    // busy host, and a gateway waits for the reason to answer the requests it had in flight.
    // Not recorded (Redis unreachable): STOPPED below says it all the same; the release goes on first.
    if (exit) {
      await transitionTask(this.d.redis, taskId, 'STOPPING', { stoppingAt: new Date().toISOString(), ...outcome })
        .catch((err: Error) => this.d.logger.warn({ taskId, err: err.message }, 'could not record the exit before releasing the task'));
    }
    await this.shippers.get(taskId)?.finish();
    await this.cleanUp(taskId, meta);
    await this.record(taskId, outcome);
    this.d.logger.info({ taskId, exitCode: exit?.exitCode, oomKilled: exit?.oomKilled }, 'task stopped');
  }

  private async record(taskId: string, fields: Partial<TaskRecord>): Promise<void> {
    await transitionTask(this.d.redis, taskId, 'STOPPED', { stoppedAt: new Date().toISOString(), ...fields });
    this.d.hooks?.onStopped?.(taskId);
  }

  /** Releases everything the task held on this host. Idempotent. */
  private async cleanUp(taskId: string, meta: TaskMeta | null): Promise<void> {
    const p = this.paths(taskId);
    await deleteContainer(this.d.runtimeBinary, this.d.runtimeRoot, taskId);
    await this.d.stats.untrack(taskId).catch(() => undefined);
    if (meta?.network || meta === null) await this.d.network.teardown(taskId).catch((err: Error) => this.d.logger.warn({ taskId, err: err.message }, 'network teardown failed'));
    await this.d.images.removeRootfs(taskId).catch((err: Error) => this.d.logger.warn({ taskId, err: err.message }, 'rootfs removal failed'));
    await rm(p.dir, { recursive: true, force: true });
  }

  /**
   * After an agent restart: goes on supervising every container whose shim
   * still runs, records the exits that happened meanwhile, and clears starts
   * that never reached the shim (their queue job runs them again).
   */
  async adopt(): Promise<string[]> {
    await mkdir(this.d.tasksDir, { recursive: true, mode: 0o700 });
    const adopted: string[] = [];
    for (const taskId of await readdir(this.d.tasksDir)) {
      const p = this.paths(taskId);
      const meta = await readJson<TaskMeta>(p.meta);
      if (!meta) {
        await this.cleanUp(taskId, null);
        continue;
      }
      const state = await shimRequest<{ status?: string; pid?: number }>(p.shimState, { op: 'state' }, 2_000).catch(() => null);
      if (state?.status === 'running' || (await exists(path.join(p.shimState, 'exit.json'))) || (await exists(p.started))) {
        if (state?.status === 'running') {
          await transitionTask(this.d.redis, taskId, 'RUNNING', { startedAt: new Date().toISOString() });
        }
        this.supervise(taskId, meta, state?.pid);
        adopted.push(taskId);
      } else {
        await this.cleanUp(taskId, meta);
      }
    }
    await this.d.network.recover(new Set(adopted));
    return adopted;
  }

  /**
   * After the cluster declared this node lost (and stopped its tasks, maybe
   * placing them elsewhere): stops every container whose task is no longer
   * wanted here, so none runs twice.
   */
  async resync(): Promise<string[]> {
    const stopped: string[] = [];
    for (const taskId of this.supervised.keys()) {
      const task = await getTask(this.d.redis, taskId);
      if (task && task.lastStatus !== 'STOPPED' && task.desiredStatus === 'RUNNING' && task.nodeId === this.d.nodeId) continue;
      await this.stop(taskId, task?.stoppedReason ?? 'the task is no longer wanted on this node', 0);
      stopped.push(taskId);
    }
    return stopped;
  }

  /** Stops following the containers without touching them (they outlive the agent). */
  detach(): void {
    for (const shipper of this.shippers.values()) shipper.stop();
    this.health.stopAll();
    for (const timer of this.killTimers.values()) clearTimeout(timer);
  }

  /** Resolves when every supervised task has stopped (tests). */
  async idle(): Promise<void> {
    await Promise.all(this.supervised.values());
  }
}

function networkNamespace(network: TaskNetwork | undefined): NetworkNamespace {
  if (!network || network.mode === 'host' || !network.netnsPath) return { kind: 'host' };
  return { kind: 'join', path: network.netnsPath };
}

/** Waits for every promise, then throws the first failure: nothing is still running when the caller cleans up. */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false);
}

async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, JSON.stringify(value), { mode: 0o600 });
}
