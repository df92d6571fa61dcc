// Function instances on this node: once an instance's container runs, probe it
// (a TCP connect to its port, or an HTTP GET of the readiness path answering
// 2xx/3xx) and make it routable in Redis; when its task stops, take it out.
// An instance that never becomes ready within its readiness timeout is stopped
// (FunctionNotReady), and the gateway or the autoscaler starts another.
import http from 'node:http';
import net from 'node:net';
import { asInstance, registerInstance, removeInstance } from '../../common/functions.ts';
import type { Logger } from '../../common/log.ts';
import type { BerthRedis } from '../../common/redis.ts';
import { getTask } from '../../common/tasks.ts';
import type { TaskRecord } from '../../common/types.ts';
import type { ProxyTargets } from './proxy.ts';

export interface InstanceHooksOptions {
  redis: BerthRedis;
  logger: Logger;
  nodeId: string;
  /** host:port of this agent's HTTP server, as the gateway reaches it. */
  agentAddress: () => string;
  targets: ProxyTargets;
  /** Stops a task on this node (the supervisor's stop). */
  stop: (taskId: string, reason: string) => Promise<void>;
  /** Time between probes. @defaultValue 20 ms */
  probeIntervalMs?: number;
}

export interface InstanceHooks {
  onRunning(task: TaskRecord, info: { ipAddress?: string; cgroupsPath: string }): void;
  onStopped(taskId: string): void;
}

/** One probe: true when the instance answers. */
export function probe(ip: string, port: number, path: string | undefined, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    if (path === undefined) {
      const socket = net.connect({ host: ip, port, timeout: timeoutMs });
      const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
      socket.once('connect', () => done(true));
      socket.once('error', () => done(false));
      socket.once('timeout', () => done(false));
      return;
    }
    const req = http.get({ host: ip, port, path, timeout: timeoutMs, agent: false, headers: { 'user-agent': 'berth-readiness' } }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 400);
    });
    req.once('error', () => resolve(false));
    req.once('timeout', () => { req.destroy(); resolve(false); });
  });
}

export function createInstanceHooks(o: InstanceHooksOptions): InstanceHooks {
  const stopped = new Set<string>();
  const interval = o.probeIntervalMs ?? 20;

  async function becomeReady(task: ReturnType<typeof asInstance> & object, ip: string, cgroupsPath: string): Promise<void> {
    const readiness = JSON.parse(task.functionReadiness || '{}') as { path?: string; timeout?: number };
    const port = Number(task.functionPort) || 8080;
    const timeoutMs = (readiness.timeout ?? 60) * 1000;
    const started = Date.now();
    const deadline = started + timeoutMs;
    for (;;) {
      if (stopped.has(task.taskId)) return;
      if (await probe(ip, port, readiness.path, Math.min(1000, Math.max(50, deadline - Date.now())))) break;
      if (Date.now() >= deadline) {
        const what = readiness.path ? `an HTTP answer on ${port}${readiness.path}` : `a listener on port ${port}`;
        o.logger.warn({ taskId: task.taskId, function: task.functionName }, 'function instance never became ready');
        await o.stop(task.taskId, `FunctionNotReady: no ${what} within ${readiness.timeout ?? 60} s`);
        return;
      }
      await new Promise((r) => setTimeout(r, interval));
    }
    o.targets.set(task.taskId, { ip, port, cgroupsPath });
    const routable = await registerInstance(o.redis, task.tenant, task.functionName, task.taskId, {
      nodeId: o.nodeId, agent: o.agentAddress(), ip, port, version: Number(task.functionVersion), readyAt: new Date().toISOString(),
    });
    if (!routable) {
      await o.stop(task.taskId, 'Function instance no longer wanted (scaled down or deleted while it started)');
      return;
    }
    o.logger.info({ taskId: task.taskId, function: task.functionName, readyMs: Date.now() - started }, 'function instance ready');
  }

  return {
    onRunning(record, info) {
      const task = asInstance(record);
      if (!task) return;
      if (!info.ipAddress) {
        void o.stop(task.taskId, 'FunctionNotReady: the instance has no address (functions need bridge networking)');
        return;
      }
      becomeReady(task, info.ipAddress, info.cgroupsPath)
        .catch((err: Error) => o.logger.error({ taskId: task.taskId, err: err.message }, 'function readiness failed'));
    },
    onStopped(taskId) {
      stopped.add(taskId);
      setTimeout(() => stopped.delete(taskId), 60_000).unref();
      o.targets.delete(taskId);
      void (async () => {
        const task = asInstance(await getTask(o.redis, taskId));
        if (task) await removeInstance(o.redis, task.tenant, task.functionName, taskId);
      })().catch((err: Error) => o.logger.warn({ taskId, err: err.message }, 'removing a stopped function instance failed'));
    },
  };
}
