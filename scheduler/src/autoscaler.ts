// The function autoscaler, as Knative's: every tick it samples each function's
// demand (requests in flight plus requests waiting for a slot), averages it over
// a stable window (60 s) and a panic window (6 s), and wants
// ceil(average / max(1, concurrency × 70 %)) instances, within min and max. When the
// panic window's want reaches twice the ready instances it follows that one and
// does not scale down until a stable window has passed. An instance idle (no
// request in flight) for the function's idleTimeout is scaled down while there
// are more than wanted, down to zero. It also keeps the routing table true:
// instances whose task stopped (crash, OOM, node lost) are forgotten (and so
// replaced when still wanted), drained instances are stopped once their last
// request ends, and a new version rolls in: its instances become ready before
// the old ones are drained. One scheduler replica at a time runs it (a lease).
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import {
  addInstances, drainInstance, functionKeys, getFunction, parseFnId, reapSlots, removeInstance, stopInstanceTask,
  type FunctionRecord, type InstanceRoute, type PlaceInstances,
} from '../../common/functions.ts';
import { BULLMQ_PREFIX, keys, queues } from '../../common/keys.ts';
import type { Logger } from '../../common/log.ts';
import type { BerthRedis } from '../../common/redis.ts';
import type { PlacementJob } from '../../common/types.ts';
import type { NodeQueues } from './placement.ts';

export interface AutoscalerOptions {
  /** BERTH_FN_TICK_MS. @defaultValue 1000 */
  tickMs: number;
  /** BERTH_FN_STABLE_WINDOW_S. @defaultValue 60 s */
  stableWindowMs: number;
  /** BERTH_FN_PANIC_WINDOW_S. @defaultValue 6 s */
  panicWindowMs: number;
  /** BERTH_FN_TARGET_UTILIZATION: the share of an instance's concurrency aimed at. @defaultValue 0.7 */
  targetUtilization: number;
  /** The panic window's want over the ready instances that starts panic mode. @defaultValue 2 */
  panicThreshold: number;
}

export function autoscalerOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): AutoscalerOptions {
  const num = (name: string, fallback: number) => {
    const n = Number(env[name]);
    return env[name] && Number.isFinite(n) && n > 0 ? n : fallback;
  };
  return {
    tickMs: num('BERTH_FN_TICK_MS', 1000),
    stableWindowMs: num('BERTH_FN_STABLE_WINDOW_S', 60) * 1000,
    panicWindowMs: num('BERTH_FN_PANIC_WINDOW_S', 6) * 1000,
    targetUtilization: Math.min(1, num('BERTH_FN_TARGET_UTILIZATION', 0.7)),
    panicThreshold: num('BERTH_FN_PANIC_THRESHOLD', 2),
  };
}

/** What the autoscaler wants of one function, from its samples (exported for unit tests). */
export function desiredInstances(
  samples: { t: number; v: number }[], now: number, o: AutoscalerOptions,
  fn: { concurrency: number; minInstances: number; maxInstances: number }, ready: number, panicUntil: number,
): { desired: number; panicUntil: number } {
  const avg = (windowMs: number) => {
    const inWindow = samples.filter((s) => s.t > now - windowMs);
    return inWindow.length === 0 ? 0 : inWindow.reduce((n, s) => n + s.v, 0) / inWindow.length;
  };
  // Never below one request per instance: with concurrency 1, one request wants one instance, not two.
  const perInstance = Math.max(1, fn.concurrency * o.targetUtilization);
  const stable = Math.ceil(avg(o.stableWindowMs) / perInstance - 1e-9);
  const panic = Math.ceil(avg(o.panicWindowMs) / perInstance - 1e-9);
  let until = panicUntil;
  if (panic >= o.panicThreshold * Math.max(1, ready) && panic > ready) until = now + o.stableWindowMs;
  const inPanic = now < until;
  const desired = inPanic ? Math.max(stable, panic, ready) : stable;
  return { desired: Math.min(fn.maxInstances, Math.max(fn.minInstances, desired)), panicUntil: until };
}

export interface Autoscaler {
  /** One pass over every function (tests call it directly). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

export function startAutoscaler(deps: { redis: BerthRedis; logger: Logger; nodeQueues: NodeQueues }, o: AutoscalerOptions = autoscalerOptionsFromEnv()): Autoscaler {
  const { redis, logger } = deps;
  const me = randomBytes(8).toString('hex');
  const placement = new Queue<PlacementJob>(queues.placement, { connection: redis, prefix: BULLMQ_PREFIX });
  const samples = new Map<string, { t: number; v: number }[]>();
  const panicUntil = new Map<string, number>();
  const missingSince = new Map<string, number>();
  // One at a time, each after the previous one holds its node (up to 300 ms): placements
  // running at once would read the same group counts and could pile onto one node.
  const place: PlaceInstances = async (ids, demand) => {
    for (const [i, taskId] of ids.entries()) {
      await placement.add('place', { taskId, demand }, { jobId: taskId, removeOnComplete: true, removeOnFail: 1000 });
      if (i === ids.length - 1) break;
      const until = Date.now() + 300;
      while (Date.now() < until && (await redis.hget(keys.task(taskId), 'lastStatus')) === 'PROVISIONING') {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const stopOnNode = async (nodeId: string, taskId: string, reason: string) => {
    await deps.nodeQueues(nodeId).add('stop', { kind: 'stop', taskId, reason }, { removeOnComplete: true, removeOnFail: 1000 });
  };

  async function leader(): Promise<boolean> {
    const ttl = Math.max(3000, o.tickMs * 3);
    if (await redis.set(keys.autoscalerLeader(), me, 'PX', ttl, 'NX')) return true;
    if ((await redis.get(keys.autoscalerLeader())) !== me) return false;
    await redis.pexpire(keys.autoscalerLeader(), ttl);
    return true;
  }

  async function scale(fn: FunctionRecord, now: number): Promise<void> {
    const k = functionKeys(fn.tenant, fn.name);
    // Slots held past their request's timeout belong to an API replica that died.
    const reaped = await reapSlots(redis, fn.tenant, fn.name, now);
    if (reaped > 0) logger.warn({ function: fn.name, tenant: fn.tenant, slots: reaped }, 'gave back slots whose API replica stopped answering for them');
    const [live, readyRaw, inflightRaw, draining, lastUsed, routesRaw, waiting] = await Promise.all([
      redis.smembers(k.live), redis.zrange(k.ready, 0, -1), redis.hgetall(k.inflight), redis.smembers(k.draining),
      redis.hgetall(k.lastUsed), redis.hgetall(k.instances), redis.zcount(k.waiters, now, '+inf'),
    ]);
    const inflight = (id: string) => Number(inflightRaw[id] ?? 0);

    // The truth about each instance's task.
    const ids = [...new Set([...live, ...readyRaw, ...draining, ...Object.keys(inflightRaw)])];
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.hmget(keys.task(id), 'lastStatus', 'desiredStatus', 'functionVersion');
    const states = new Map(((await pipeline.exec()) ?? []).map(([, v], i) => [ids[i]!, v as (string | null)[]]));
    const gone = new Set<string>();
    for (const id of ids) {
      const [status, desired] = states.get(id) ?? [];
      // A task record is written just after its id joins the live set: give it a moment.
      if (!status) {
        const since = missingSince.get(id) ?? now;
        missingSince.set(id, since);
        if (now - since < 5000) continue;
      }
      missingSince.delete(id);
      if (!status || status === 'STOPPED') {
        await removeInstance(redis, fn.tenant, fn.name, id);
        gone.add(id);
      } else if (desired === 'STOPPED' && !draining.includes(id)) {
        await drainInstance(redis, fn.tenant, fn.name, id, false); // stopped by someone else (the tasks API)
        draining.push(id);
      }
    }
    for (const id of draining) {
      if (gone.has(id) || inflight(id) > 0) continue;
      await stopInstanceTask(redis, id, 'Function instance drained', stopOnNode);
    }

    const liveNow = live.filter((id) => !gone.has(id) && !draining.includes(id));
    const readySet = new Set(readyRaw.filter((id) => !gone.has(id)));
    // An instance whose task record is not written yet was just made for the current version.
    const version = (id: string) => Number(states.get(id)?.[2] ?? fn.version);
    const current = liveNow.filter((id) => version(id) === fn.version);
    const old = liveNow.filter((id) => version(id) !== fn.version);
    const readyCurrent = current.filter((id) => readySet.has(id));

    // Demand: requests in flight on routable instances plus requests waiting.
    const demand = [...readySet].reduce((n, id) => n + inflight(id), 0) + waiting;
    const key = `${fn.tenant}/${fn.name}`;
    const list = (samples.get(key) ?? []).filter((s) => s.t > now - o.stableWindowMs);
    list.push({ t: now, v: demand });
    samples.set(key, list);
    const want = desiredInstances(list, now, o, fn.config, readySet.size, panicUntil.get(key) ?? 0);
    panicUntil.set(key, want.panicUntil);
    // A rolling update replaces every old instance still live.
    const target = Math.min(fn.config.maxInstances, Math.max(want.desired, old.length));

    if (current.length < target) {
      // Old-version instances may stay beyond the maximum until the new ones are ready (a surge).
      const added = await addInstances(redis, place, fn, target - current.length, fn.config.maxInstances + old.length);
      logger.info({ function: key, version: fn.version, added: added.length, target, demand }, 'function scaled up');
    }
    // Old versions leave once enough of the new one is ready.
    const oldAllowed = Math.max(0, target - readyCurrent.length);
    for (const id of old.slice(oldAllowed)) {
      const left = await drainInstance(redis, fn.tenant, fn.name, id, false);
      if (left === 0) await stopInstanceTask(redis, id, `Function instance replaced by version ${fn.version}`, stopOnNode);
    }
    // Scale down: instances idle for the idle timeout, least recently used first.
    let excess = current.length - target;
    if (excess > 0) {
      const idleSince = (id: string) => {
        const used = Number(lastUsed[id] ?? 0);
        const route = routesRaw[id] ? (JSON.parse(routesRaw[id]) as InstanceRoute) : undefined;
        return Math.max(used, route ? Date.parse(route.readyAt) : now);
      };
      const idle = readyCurrent
        .filter((id) => inflight(id) === 0 && now - idleSince(id) >= fn.config.idleTimeout * 1000)
        .sort((a, b) => idleSince(a) - idleSince(b));
      for (const id of idle) {
        if (excess <= 0) break;
        if ((await drainInstance(redis, fn.tenant, fn.name, id, true)) < 0) continue;
        await stopInstanceTask(redis, id, `Function instance idle for ${fn.config.idleTimeout} s: scaled down`, stopOnNode);
        excess--;
        logger.info({ function: key, instance: id, target }, 'function scaled down');
      }
    }
  }

  async function tick(): Promise<void> {
    if (!(await leader())) return;
    const now = Date.now();
    const ids = await redis.smembers(keys.functions());
    for (const key of samples.keys()) if (!ids.includes(key)) samples.delete(key);
    for (const id of ids) {
      const { tenant, name } = parseFnId(id);
      const fn = await getFunction(redis, tenant, name);
      if (!fn) continue;
      await scale(fn, now).catch((err: Error) => logger.error({ function: id, err: err.message }, 'autoscaling failed'));
    }
  }

  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    tick().catch((err: Error) => logger.error({ err: err.message }, 'autoscaler tick failed')).finally(() => { running = false; });
  }, o.tickMs);

  return {
    tick,
    async close() {
      clearInterval(timer);
      while (running) await new Promise((r) => setTimeout(r, 20));
      if ((await redis.get(keys.autoscalerLeader()).catch(() => null)) === me) await redis.del(keys.autoscalerLeader()).catch(() => undefined);
      await placement.close();
    },
  };
}
