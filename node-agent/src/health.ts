// Container health checks, as Docker and ECS run them: the definition's command
// run inside the container through the OCI runtime's `exec` (so with the
// container's user, capabilities, seccomp filter, cgroup and namespaces) every
// `interval` seconds after the last one ended; `retries` failures in a row make
// the task UNHEALTHY, a success makes it HEALTHY, and a failed check that began
// in the `startPeriod` does not count (Docker's rule).
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from '../../common/log.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { getTask, recordTaskHealth } from '../../common/tasks.ts';
import type { HealthCheck, HealthStatus } from '../../common/types.ts';

export interface HealthCheckerDeps {
  redis: BerthRedis;
  logger: Logger;
  runtimeBinary: string;
  runtimeRoot: string;
}

/** The program and arguments a check runs: ECS's and Docker's `CMD-SHELL` and `CMD` forms, or a plain argv. */
export function healthCheckArgv(command: string[]): string[] {
  if (command[0] === 'CMD-SHELL') return ['/bin/sh', '-c', command.slice(1).join(' ')];
  if (command[0] === 'CMD') return command.slice(1);
  return command;
}

interface Watch {
  timer?: NodeJS.Timeout;
  child?: ChildProcess;
  stopped: boolean;
}

export class HealthChecker {
  private readonly watches = new Map<string, Watch>();

  constructor(private readonly d: HealthCheckerDeps) {}

  /** Starts checking a running task whose definition has a health check; does nothing otherwise. */
  async watch(taskId: string): Promise<void> {
    if (this.watches.has(taskId)) return;
    const watch: Watch = { stopped: false };
    this.watches.set(taskId, watch);
    const task = await getTask(this.d.redis, taskId);
    const check = task?.spec.healthCheck;
    const argv = check ? healthCheckArgv(check.command) : [];
    if (!check || argv.length === 0 || watch.stopped) {
      this.unwatch(taskId);
      return;
    }
    const startedAt = Date.parse(task.startedAt ?? '') || Date.now();
    this.loop(taskId, watch, check, argv, startedAt, task.healthStatus ?? 'UNKNOWN');
  }

  /** Stops checking the task and kills a check still running. */
  unwatch(taskId: string): void {
    const watch = this.watches.get(taskId);
    if (!watch) return;
    watch.stopped = true;
    clearTimeout(watch.timer);
    watch.child?.kill('SIGKILL');
    this.watches.delete(taskId);
  }

  stopAll(): void {
    for (const taskId of [...this.watches.keys()]) this.unwatch(taskId);
  }

  private loop(taskId: string, watch: Watch, check: HealthCheck, argv: string[], startedAt: number, initial: HealthStatus): void {
    const interval = (check.interval ?? 30) * 1000;
    const retries = check.retries ?? 3;
    const startPeriodEnds = startedAt + (check.startPeriod ?? 0) * 1000;
    let status = initial;
    let failuresInARow = 0;
    const next = (): void => {
      watch.timer = setTimeout(() => { void run(); }, interval);
      watch.timer.unref();
    };
    const run = async (): Promise<void> => {
      const checkStarted = Date.now();
      const passed = await this.runOnce(taskId, watch, argv, (check.timeout ?? 5) * 1000);
      if (watch.stopped) return;
      let found: HealthStatus = status;
      if (passed) {
        failuresInARow = 0;
        found = 'HEALTHY';
      } else if (checkStarted >= startPeriodEnds && ++failuresInARow >= retries) {
        found = 'UNHEALTHY';
      }
      if (found !== status) {
        status = found;
        try {
          await recordTaskHealth(this.d.redis, taskId, found);
          this.d.logger.info({ taskId, healthStatus: found }, 'task health changed');
        } catch (err) {
          this.d.logger.warn({ taskId, err: (err as Error).message }, 'recording the task health failed');
        }
      }
      if (!watch.stopped) next();
    };
    next();
  }

  /**
   * One check: true when the command exits 0 within the timeout. Its output is
   * not kept: a process it leaves behind could hold a pipe open for ever. Killing
   * the runtime kills the check (berth-runtime gives it SIGKILL as parent-death signal).
   */
  private runOnce(taskId: string, watch: Watch, argv: string[], timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const child = spawn(this.d.runtimeBinary, ['--root', this.d.runtimeRoot, 'exec', taskId, ...argv], { stdio: 'ignore' });
      watch.child = child;
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      let settled = false;
      const done = (ok: boolean, why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        watch.child = undefined;
        this.d.logger.debug({ taskId, ok, why }, 'health check');
        resolve(ok);
      };
      child.once('error', (err) => done(false, err.message));
      child.once('exit', (code, signal) => done(code === 0, signal ? `killed by ${signal}` : `exit ${code}`));
    });
  }
}
