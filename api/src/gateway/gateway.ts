// The function gateway: takes a concurrency slot on a ready instance (or starts
// one and waits in a bounded queue), forwards the request to the instance
// through its node agent's /v1/proxy, and hands back the streamed answer. The
// slot is released exactly once whatever happens: answered, failed, timed out,
// or the client went away.
// When the instance's node is this host (the all-in-one, its agent in this
// process or in the primary of this API worker), the gateway calls the
// instance itself and adds what the agent's proxy would (X-Berth-Duration-Ms,
// X-Berth-Max-Memory-Used-MiB): one HTTP hop instead of two.
import type http from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { BerthError } from '../../../common/errors.ts';
import {
  acquireSlot, createInstanceTasks, drainInstance, fnId, functionKeys, getRoute, localNode, newInstanceId, PROXY_HEADERS, releaseSlot, type PlaceInstances,
  renewSlots, requestInstance, stopInstanceTask, stoppedReason, type FunctionRecord, type InstanceRoute,
} from '../../../common/functions.ts';
import { keys } from '../../../common/keys.ts';
import { AnswerBody, answerHeaders, forwardedHeaders, NOT_FORWARDED, upstreamAgent } from '../../../common/upstream.ts';
import type { Logger } from '../../../common/log.ts';
import type { BerthRedis } from '../../../common/redis.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { ClientGone } from './client-gone.ts';
import type { SlotWaiters } from './waiters.ts';

export interface GatewayOptions {
  redis: BerthRedis;
  logger: Logger;
  waiters: SlotWaiters;
  metrics: GatewayMetrics;
  /** Queues new instances for placement (the API's placement queue). */
  place: PlaceInstances;
  /** Sends a stop job to a node's agent. */
  stopOnNode(nodeId: string, taskId: string, reason: string): Promise<void>;
  agentToken(): Promise<string>;
  /** How long a request may wait for a slot. BERTH_FN_QUEUE_TIMEOUT_S. @defaultValue 30 s */
  queueTimeoutMs?: number;
  /** Requests one API replica holds waiting per function. BERTH_FN_MAX_QUEUE. @defaultValue 1000 */
  maxQueue?: number;
}

export interface ForwardRequest {
  method: string;
  /** Path and query as the instance sees them. */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** A stream (passed through as it comes), a buffer, or nothing. */
  body?: Readable | Buffer;
}

export interface ForwardAnswer {
  statusCode: number;
  headers: http.OutgoingHttpHeaders;
  body: AnswerBody;
  instanceId: string;
  coldStart: boolean;
  /** Resolves when the answer ended (or failed) and the slot was released. */
  finished: Promise<void>;
}

/** A slot on an instance: where to send the request, and the lease that gives the slot back. */
interface Slot {
  tenant: string;
  /** The function's name. */
  name: string;
  instanceId: string;
  lease: string;
  route: InstanceRoute;
}

/** The slots this replica holds on one instance (in use or kept), and when Redis last said it is routable. */
interface HeldSlots {
  tenant: string;
  name: string;
  slots: Set<Slot>;
  /** The function's timeout (ms): a renewed lease lasts as long as one taken now. */
  timeoutMs: number;
  /** Date.now() when the last acquire or renewal that found the instance routable was sent; 0 once one found it out of routing. */
  confirmedAt: number;
}

/** A slot kept between two requests, and the timer that gives it back when no request comes. */
interface KeptSlot {
  slot: Slot;
  timer: NodeJS.Timeout;
}

// A function that takes many requests per instance keeps a few slots in each
// API replica between requests, so a busy function's requests mostly skip the
// slot scripts' round trip. A kept slot stays counted in flight (the autoscaler
// sees a little more load than there is: at most concurrency / KEEP_MIN_CONCURRENCY
// slots per replica, for KEEP_IDLE_MS), and a slot takes a new request only
// while Redis said its instance is routable less than KEEP_MAX_AGE_MS ago: the
// replica renews the slots it holds every RENEW_EVERY_MS (renew-slots.lua, off
// the requests' path, which also extends their leases), so an instance taken
// out of routing gets no new request from a kept slot after KEEP_MAX_AGE_MS.
/** The least concurrency per instance for which slots are kept. */
const KEEP_MIN_CONCURRENCY = 50;
/** How long a slot no request takes is kept before it is given back. */
const KEEP_IDLE_MS = 100;
/** How long after Redis last said its instance is routable a slot may take new requests. */
const KEEP_MAX_AGE_MS = 50;
/** How often the slots held are renewed. */
const RENEW_EVERY_MS = 20;

/** What a client sends that must not reach the instance. */
const STRIPPED = new Set([...NOT_FORWARDED, 'authorization', 'x-berth-invocation-type']);

/** How long invocation counters gather in memory before they are written. */
const STATS_FLUSH_MS = 200;

export class FunctionGateway {
  /**
   * Connections to the node agents' /v1/proxy, and straight to the instances
   * on this host. undici's dispatcher costs about half the CPU of node:http's
   * client per request.
   */
  private readonly upstream = upstreamAgent();
  private readonly routes = new Map<string, InstanceRoute>();
  private readonly queued = new Map<string, number>();
  private readonly pending = new Map<string, { tenant: string; name: string; invocations: number; timeouts: number; errors: number; durations: number[] }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly queueTimeoutMs: number;
  private readonly maxQueue: number;
  private writesHeld = false;
  /** Slots kept between requests, by function (fnId). */
  private readonly kept = new Map<string, KeptSlot[]>();
  /** Slots held of functions whose slots are kept, by instance id: what the renewals renew. */
  private readonly held = new Map<string, HeldSlots>();
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  private closing = false;

  constructor(private readonly o: GatewayOptions) {
    this.queueTimeoutMs = o.queueTimeoutMs ?? 30_000;
    this.maxQueue = o.maxQueue ?? 1000;
  }

  /**
   * Holds the slot connection's writes until this turn of the event loop ends:
   * the scripts of a burst of requests leave in one write (and their answers
   * come back in one read), not one socket write each.
   */
  private holdWrites(): void {
    const stream = this.o.redis.stream;
    if (this.writesHeld || this.o.redis.status !== 'ready' || !stream) return;
    this.writesHeld = true;
    stream.cork();
    setImmediate(() => {
      this.writesHeld = false;
      stream.uncork();
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.renewTimer);
    const kept = [...this.kept.values()].flat();
    this.kept.clear();
    await Promise.all(kept.map(({ slot, timer }) => {
      clearTimeout(timer);
      return this.giveBack(slot);
    }));
    await this.flush();
    await this.upstream.destroy();
  }

  /**
   * Forwards one request to an instance of `fn`; resolves with the answer's
   * head once the instance sent it. Throws BerthError for 502/503/504.
   * `clientGone` aborts the wait and the forward.
   */
  async forward(fn: FunctionRecord, request: ForwardRequest, clientGone: ClientGone): Promise<ForwardAnswer> {
    const arrived = Date.now();
    const slot = await this.acquire(fn, clientGone);
    const { instanceId, route } = slot;
    let released = false;
    /** `reusable`: the request went well, so the slot may serve the next one. */
    const release = (reusable = false) => {
      if (released) return;
      released = true;
      this.keepOrGiveBack(fn, slot, reusable);
    };
    try {
      return await this.send(fn, request, clientGone, instanceId, route, arrived, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  private async send(
    fn: FunctionRecord, request: ForwardRequest, clientGone: ClientGone,
    instanceId: string, route: InstanceRoute, arrived: number, release: (reusable?: boolean) => void,
  ): Promise<ForwardAnswer> {
    const headers = forwardedHeaders(request.headers, STRIPPED);
    headers['x-berth-function'] = fn.name;
    headers['x-berth-function-version'] = String(route.version);
    if (request.body === undefined) delete headers['content-length'];
    const path = request.path.startsWith('/') ? request.path : `/${request.path}`;
    const timeoutMs = fn.config.timeout * 1000;
    const started = Date.now();
    const id = fnId(fn.tenant, fn.name);

    // Its node is this host: call the instance directly. Otherwise through its agent.
    const local = localNode(route.nodeId);
    const instance = local ? await local.instance(instanceId, route) : undefined;
    if (local && !instance) {
      release();
      this.record(fn, 'error', 502, Date.now() - started);
      this.o.metrics.record(id, 'error', Date.now() - started);
      throw await this.instanceFailed(fn, instanceId, 'INSTANCE_NOT_FOUND');
    }
    if (!instance) headers[PROXY_HEADERS.agentToken] = await this.o.agentToken();

    return new Promise<ForwardAnswer>((resolve, reject) => {
      let timedOut = false;
      /** The answer's head or a failure came first; what follows it is handled by `body` and `done`. */
      let settled = false;
      let abortUpstream: ((reason: Error) => void) | undefined;
      const abort = (reason: Error) => {
        if (abortUpstream) abortUpstream(reason);
        else onError(reason); // not yet on a connection: fail now, abort when it gets one
      };
      const sent = process.hrtime.bigint();
      const timer = setTimeout(() => {
        timedOut = true;
        abort(new Error('timeout'));
      }, timeoutMs);
      const forgetClientGone = clientGone.onAbort(() => abort(new Error('client gone')));
      const body = new AnswerBody();
      let statusCode = 502;
      let memoryMiB: number | undefined;

      let finishedResolve: () => void = () => undefined;
      const finished = new Promise<void>((r) => { finishedResolve = r; });
      let over = false;
      const done = (outcome: 'ok' | 'error' | 'timeout' | 'gone', status: number) => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        forgetClientGone();
        release(outcome === 'ok');
        const durationMs = Date.now() - started;
        this.o.metrics.record(id, outcome, durationMs, memoryMiB);
        this.record(fn, outcome, status, durationMs);
        if (outcome === 'timeout') this.recycle(fn, instanceId, `FunctionTimeout: an invocation ran over the function's ${fn.config.timeout} s timeout`);
        finishedResolve();
      };
      /** The instance could not be reached or failed mid-request: it crashed, was OOM-killed or is gone. */
      const failed = (code: string) => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        forgetClientGone();
        release();
        this.record(fn, 'error', 502, Date.now() - started);
        this.o.metrics.record(id, 'error', Date.now() - started);
        finishedResolve();
        void this.instanceFailed(fn, instanceId, code).then(reject, reject);
      };
      function onError(err: NodeJS.ErrnoException): void {
        if (settled) return;
        settled = true;
        if (timedOut) {
          done('timeout', 504);
          reject(new BerthError('FUNCTION_TIMEOUT', `The function ${fn.name} did not answer within its ${fn.config.timeout} s timeout`));
        } else if (clientGone.aborted) {
          done('gone', 499);
          reject(new BerthError('BAD_REQUEST', 'The client went away'));
        } else if (err.code === 'UND_ERR_INVALID_ARG' || err.code === 'UND_ERR_NOT_SUPPORTED') {
          // The request itself cannot be sent as it is (a header the instance must not get): not the instance's fault.
          done('error', 400);
          reject(new BerthError('BAD_REQUEST', `The request cannot be forwarded: ${err.message}`));
        } else {
          failed(err.code ?? err.message);
        }
      }

      const answer = (status: number, upstreamHeaders: http.IncomingHttpHeaders) => {
        settled = true;
        statusCode = status;
        const proxyError = upstreamHeaders[PROXY_HEADERS.proxyError];
        if (!instance && proxyError !== undefined) {
          // The agent could not reach the instance.
          failed(String(proxyError));
          return;
        }
        const out: http.OutgoingHttpHeaders = upstreamHeaders;
        const duration = Number(upstreamHeaders[PROXY_HEADERS.duration] ?? Date.now() - started);
        out['x-berth-billed-duration-ms'] = String(Math.max(1, Math.ceil(duration)));
        out['x-berth-instance-id'] = instanceId;
        const coldStart = Date.parse(route.readyAt) >= arrived;
        if (coldStart) out['x-berth-cold-start'] = 'true';
        memoryMiB = Number(upstreamHeaders[PROXY_HEADERS.maxMemory]) || undefined;
        resolve({ statusCode: status, headers: out, body, instanceId, coldStart, finished });
      };

      const handler: Dispatcher.DispatchHandlers = {
        onConnect: (abortRequest) => {
          abortUpstream = abortRequest;
          if (over) abortRequest(new Error(timedOut ? 'timeout' : 'client gone'));
        },
        onHeaders: (status, rawHeaders, resume) => {
          if (status < 200) return true; // 1xx: the final answer follows
          body.control(resume);
          const headers = answerHeaders(rawHeaders);
          if (instance) {
            // What the agent's proxy reports on the other path: the time to the
            // instance's response headers and the instance's peak memory.
            headers[PROXY_HEADERS.duration] = (Number(process.hrtime.bigint() - sent) / 1e6).toFixed(2);
            const mib = instance.peakMemoryMiB();
            if (mib !== undefined) headers[PROXY_HEADERS.maxMemory] = String(mib);
          }
          answer(status, headers);
          return true;
        },
        onData: (chunk) => body.push(chunk),
        onComplete: () => {
          body.end();
          done('ok', statusCode);
        },
        onError: (err) => {
          if (!settled) {
            onError(err as NodeJS.ErrnoException);
            return;
          }
          body.fail(err);
          done(timedOut ? 'timeout' : clientGone.aborted ? 'gone' : 'error', statusCode);
        },
      };
      const origin = instance ? `http://${instance.ip}:${instance.port}` : `http://${route.agent}`;
      this.upstream.dispatch({
        origin,
        method: request.method as Dispatcher.HttpMethod,
        path: instance ? path : `/v1/proxy/${instanceId}${path}`,
        headers,
        body: request.body ?? null,
      }, handler);
    });
  }

  /** A slot on a ready instance, waiting (and starting instances) as needed. */
  private async acquire(fn: FunctionRecord, clientGone: ClientGone): Promise<Slot> {
    const { redis } = this.o;
    const { concurrency, maxInstances } = fn.config;
    const timeoutMs = fn.config.timeout * 1000;
    const kept = this.takeKept(fn);
    if (kept) return kept;
    this.holdWrites();
    const firstSent = Date.now();
    const first = await acquireSlot(redis, fn.tenant, fn.name, concurrency, timeoutMs);
    if (first.ok) return this.withRoute(fn, first, firstSent, clientGone);

    const id = fnId(fn.tenant, fn.name);
    const queued = this.queued.get(id) ?? 0;
    if (queued >= this.maxQueue) {
      await this.count(fn, 'throttles');
      throw throttled(`The queue of ${fn.name} is full (${this.maxQueue} requests wait); retry later`, 1);
    }
    this.queued.set(id, queued + 1);
    const k = functionKeys(fn.tenant, fn.name);
    const waiterId = newInstanceId();
    const deadline = Date.now() + this.queueTimeoutMs;
    // Sent together: one connection runs them in order, so the request counts this waiter.
    const waiting = redis.zadd(k.waiters, deadline, waiterId);
    const started: string[] = [];
    try {
      for (;;) {
        const newId = newInstanceId();
        const [granted] = await Promise.all([requestInstance(redis, fn.tenant, fn.name, maxInstances, concurrency, newId), waiting]);
        if (granted) {
          started.push(newId);
          await Promise.all([createInstanceTasks(redis, this.o.place, fn, [newId]), this.count(fn, 'coldStarts')]);
          this.o.metrics.coldStart(id);
        }
        await this.o.waiters.wait(id, Math.min(250, Math.max(1, deadline - Date.now())), clientGone);
        if (clientGone.aborted) throw new BerthError('BAD_REQUEST', 'The client went away');
        const keptNow = this.takeKept(fn);
        if (keptNow) return keptNow;
        const sent = Date.now();
        const r = await acquireSlot(redis, fn.tenant, fn.name, concurrency, timeoutMs, waiterId);
        if (r.ok) return await this.withRoute(fn, r, sent, clientGone);
        const failure = started.length > 0 ? await this.startFailure(started) : undefined;
        if (failure) throw new BerthError('FUNCTION_START_FAILED', `No instance of ${fn.name} could start: ${failure}`);
        if (Date.now() >= deadline) {
          await this.count(fn, 'throttles');
          const why = started.length > 0 || r.reason === 'none'
            ? `no instance of ${fn.name} became ready`
            : `every instance of ${fn.name} stayed busy (${maxInstances} at most, ${concurrency} requests each)`;
          throw throttled(`No slot within ${this.queueTimeoutMs / 1000} s: ${why}; retry later`, 5);
        }
      }
    } finally {
      this.queued.set(id, (this.queued.get(id) ?? 1) - 1);
      // Not waited for: the slot script already took a waiter that got its slot out of the set.
      void redis.zrem(k.waiters, waiterId).catch(() => undefined);
    }
  }

  /** The reason every instance this request started stopped, when all did. */
  private async startFailure(ids: string[]): Promise<string | undefined> {
    const reasons: string[] = [];
    for (const id of ids) {
      const [status, reason] = await this.o.redis.hmget(keys.task(id), 'lastStatus', 'stoppedReason');
      if (status !== 'STOPPED') return undefined;
      reasons.push(reason ?? 'stopped');
    }
    return reasons[reasons.length - 1];
  }

  /** The slot Redis gave (asked for at `sentAt`), with its instance's route. */
  private async withRoute(fn: FunctionRecord, { instanceId, lease, routeJson }: { instanceId: string; lease: string; routeJson?: string }, sentAt: number, clientGone: ClientGone): Promise<Slot> {
    let route = this.routes.get(instanceId);
    if (!route) {
      const found = routeJson ? JSON.parse(routeJson) as InstanceRoute : await getRoute(this.o.redis, fn.tenant, fn.name, instanceId);
      if (!found) {
        // Removed between the slot and the lookup (it stopped): try again.
        await releaseSlot(this.o.redis, fn.tenant, fn.name, lease);
        return this.acquire(fn, clientGone);
      }
      route = found;
      if (this.routes.size > 10_000) this.routes.clear();
      this.routes.set(instanceId, route);
    }
    const slot: Slot = { tenant: fn.tenant, name: fn.name, instanceId, lease, route };
    if (fn.config.concurrency >= KEEP_MIN_CONCURRENCY) this.hold(slot, fn.config.timeout * 1000, sentAt);
    return slot;
  }

  /** Counts a slot of a function whose slots are kept as held, for the renewals. */
  private hold(slot: Slot, timeoutMs: number, confirmedAt: number): void {
    let held = this.held.get(slot.instanceId);
    if (!held) {
      held = { tenant: slot.tenant, name: slot.name, slots: new Set(), timeoutMs, confirmedAt };
      this.held.set(slot.instanceId, held);
    }
    held.slots.add(slot);
    if (held.confirmedAt > 0) held.confirmedAt = Math.max(held.confirmedAt, confirmedAt);
    this.renewTimer ??= setInterval(() => this.renew(), RENEW_EVERY_MS).unref();
  }

  /** True when Redis said the slot's instance is routable recently enough for the slot to take a new request. */
  private confirmed(slot: Slot): boolean {
    const held = this.held.get(slot.instanceId);
    return held !== undefined && Date.now() - held.confirmedAt < KEEP_MAX_AGE_MS && this.routes.has(slot.instanceId);
  }

  /** Renews the slots held on each instance; gives back the kept ones of an instance out of routing. */
  private renew(): void {
    if (this.renewing) return;
    if (this.held.size === 0) {
      clearInterval(this.renewTimer);
      this.renewTimer = undefined;
      return;
    }
    this.renewing = true;
    this.holdWrites();
    const sentAt = Date.now();
    void Promise.all([...this.held].map(async ([instanceId, held]) => {
      const leases = [...held.slots].map((slot) => slot.lease);
      if (await renewSlots(this.o.redis, held.tenant, held.name, instanceId, leases, held.timeoutMs)) {
        if (held.confirmedAt > 0) held.confirmedAt = Math.max(held.confirmedAt, sentAt);
      } else {
        held.confirmedAt = 0;
        this.dropKept(instanceId);
      }
    })).catch((err: Error) => this.o.logger.warn({ err: err.message }, 'renewing the kept slots failed'))
      .finally(() => { this.renewing = false; });
  }

  /** A slot this replica kept from an earlier request of the function, still young enough to use. */
  private takeKept(fn: FunctionRecord): Slot | undefined {
    const pool = this.kept.get(fnId(fn.tenant, fn.name));
    while (pool && pool.length > 0) {
      const { slot, timer } = pool.pop()!;
      clearTimeout(timer);
      if (this.confirmed(slot)) return slot;
      void this.giveBack(slot);
    }
    return undefined;
  }

  /** After a request: keeps its slot for the function's next request when allowed and worth it, else gives it back. */
  private keepOrGiveBack(fn: FunctionRecord, slot: Slot, reusable: boolean): void {
    const { concurrency } = fn.config;
    if (reusable && !this.closing && concurrency >= KEEP_MIN_CONCURRENCY && this.confirmed(slot)) {
      const id = fnId(fn.tenant, fn.name);
      let pool = this.kept.get(id);
      if (!pool) {
        pool = [];
        this.kept.set(id, pool);
      }
      if (pool.length < Math.floor(concurrency / KEEP_MIN_CONCURRENCY)) {
        const entry: KeptSlot = {
          slot,
          timer: setTimeout(() => {
            const at = pool.indexOf(entry);
            if (at >= 0) pool.splice(at, 1);
            void this.giveBack(slot);
          }, KEEP_IDLE_MS),
        };
        pool.push(entry);
        this.o.waiters.wake(id); // a request of this replica waiting for a slot takes it
        return;
      }
    }
    void this.giveBack(slot);
  }

  private giveBack(slot: Slot): Promise<void> {
    const held = this.held.get(slot.instanceId);
    if (held?.slots.delete(slot) && held.slots.size === 0) this.held.delete(slot.instanceId);
    this.holdWrites();
    return releaseSlot(this.o.redis, slot.tenant, slot.name, slot.lease).then(
      () => undefined,
      (err: Error) => this.o.logger.warn({ err: err.message, instanceId: slot.instanceId }, 'slot release failed'),
    );
  }

  /** Gives back at once the slots kept on an instance that failed or is being recycled. */
  private dropKept(instanceId: string): void {
    for (const pool of this.kept.values()) {
      for (let i = pool.length - 1; i >= 0; i--) {
        if (pool[i]!.slot.instanceId !== instanceId) continue;
        const [{ slot, timer }] = pool.splice(i, 1) as [KeptSlot];
        clearTimeout(timer);
        void this.giveBack(slot);
      }
    }
  }

  /** The instance failed under a request: take it out, find out why, stop it if it still runs. */
  private async instanceFailed(fn: FunctionRecord, instanceId: string, code: string): Promise<BerthError> {
    this.routes.delete(instanceId);
    this.dropKept(instanceId);
    await drainInstance(this.o.redis, fn.tenant, fn.name, instanceId, false).catch(() => undefined);
    const reason = await stoppedReason(this.o.redis, instanceId, 5000);
    if (!reason) this.recycle(fn, instanceId, `FunctionInstanceFailed: the instance stopped answering (${code})`);
    return new BerthError('FUNCTION_INSTANCE_FAILED',
      `The instance ${instanceId} of ${fn.name} failed during the request: ${reason ?? `it stopped answering (${code})`}`,
      { instanceId, reason: reason ?? code });
  }

  /** Takes an instance out of routing and stops it; the autoscaler or the next request replaces it. */
  private recycle(fn: FunctionRecord, instanceId: string, reason: string): void {
    this.routes.delete(instanceId);
    this.dropKept(instanceId);
    // Out of routing first, sent now: the connection runs it before any slot asked for after this answer.
    const drained = drainInstance(this.o.redis, fn.tenant, fn.name, instanceId, false);
    void (async () => {
      await drained;
      await stopInstanceTask(this.o.redis, instanceId, reason, this.o.stopOnNode);
    })().catch((err: Error) => this.o.logger.warn({ instanceId, err: err.message }, 'recycling an instance failed'));
  }

  private async count(fn: FunctionRecord, field: string): Promise<void> {
    await this.o.redis.hincrby(keys.fnStats(fn.tenant, fn.name), field, 1).catch(() => undefined);
  }

  /** Counters and recent durations in Redis (the stats route, the dashboard), written in batches. */
  private record(fn: FunctionRecord, outcome: 'ok' | 'error' | 'timeout' | 'gone', statusCode: number, durationMs: number): void {
    const id = fnId(fn.tenant, fn.name);
    let p = this.pending.get(id);
    if (!p) {
      p = { tenant: fn.tenant, name: fn.name, invocations: 0, timeouts: 0, errors: 0, durations: [] };
      this.pending.set(id, p);
    }
    p.invocations++;
    if (outcome === 'timeout') p.timeouts++;
    if (outcome !== 'ok' || statusCode >= 500) p.errors++;
    if (p.durations.length < 1000) p.durations.push(durationMs);
    this.flushTimer ??= setTimeout(() => { void this.flush(); }, STATS_FLUSH_MS);
  }

  /** Writes the batched counters; the gateway's close calls it too. */
  async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending.clear();
    const multi = this.o.redis.multi();
    for (const p of batch) {
      const k = functionKeys(p.tenant, p.name);
      multi.hincrby(k.stats, 'invocations', p.invocations);
      if (p.timeouts) multi.hincrby(k.stats, 'timeouts', p.timeouts);
      if (p.errors) multi.hincrby(k.stats, 'errors', p.errors);
      multi.lpush(k.durations, ...p.durations.map(String)).ltrim(k.durations, 0, 999);
    }
    await multi.exec().catch(() => undefined);
  }
}

function throttled(message: string, retryAfterS: number): BerthError {
  return new BerthError('FUNCTION_THROTTLED', message, { retryAfter: retryAfterS });
}
