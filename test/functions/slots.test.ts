// The slot scripts (common/lua/*slot*.lua) against a real redis-server, and the
// autoscaler's arithmetic: no containers, so these run in a second.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acquireSlot, drainInstance, functionKeys, reapSlots, registerInstance, releaseSlot, removeInstance, renewSlots, requestInstance, SLOT_LEASE_MARGIN_MS,
  type AcquireResult, type InstanceRoute,
} from '../../common/functions.ts';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { desiredInstances, type AutoscalerOptions } from '../../scheduler/src/autoscaler.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

let server: TestRedis;
let redis: BerthRedis;
let n = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = connectRedis(server.url);
});

afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
});

const route: InstanceRoute = { nodeId: 'n1', agent: '127.0.0.1:1', ip: '10.0.0.2', port: 8080, version: 1, readyAt: new Date().toISOString() };

/** A fresh function with `ids` ready. */
async function fn(ids: string[]): Promise<string> {
  const name = `f${n++}`;
  for (const id of ids) {
    await redis.sadd(functionKeys('t', name).live, id);
    expect(await registerInstance(redis, 't', name, id, route)).toBe(true);
  }
  return name;
}

const T = 30_000; // the function's timeout, ms

/** The instance of a slot taken, or null. */
const instanceOf = (r: AcquireResult) => (r.ok ? r.instanceId : null);
/** The lease of a slot that must have been taken. */
const leaseOf = (r: AcquireResult) => {
  if (!r.ok) throw new Error(`no slot: ${r.reason}`);
  return r.lease;
};

describe('slot scripts', () => {
  it('take the least busy instance up to its concurrency, and give slots back exactly once', async () => {
    const name = await fn(['a', 'b']);
    const got: AcquireResult[] = [];
    for (let i = 0; i < 4; i++) got.push(await acquireSlot(redis, 't', name, 2, T));
    expect(got.map(instanceOf).sort()).toEqual(['a', 'a', 'b', 'b']);
    expect(await acquireSlot(redis, 't', name, 2, T)).toEqual({ ok: false, reason: 'busy' });
    const onA = got.find((g) => instanceOf(g) === 'a')!;
    expect(await releaseSlot(redis, 't', name, leaseOf(onA))).toBe(1);
    expect(await releaseSlot(redis, 't', name, leaseOf(onA))).toBe(-2); // once
    expect(await redis.hget(functionKeys('t', name).inflight, 'a')).toBe('1');
    const again = await acquireSlot(redis, 't', name, 2, T);
    expect(again).toMatchObject({ ok: true, instanceId: 'a', lease: expect.stringMatching(/^a\/[a-z0-9]+$/) });
    // The instance's route comes with the slot: the gateway need not ask for it.
    expect(JSON.parse((again as { routeJson: string }).routeJson)).toEqual(route);
    // Every lease is its own, even on the same instance: giving one back never gives back another.
    expect(new Set([...got.map(leaseOf), leaseOf(again)]).size).toBe(5);
    expect(await redis.hget(functionKeys('t', name).inflight, 'a')).toBe('2');
    // Light traffic stays on one instance (ties go to the same one).
    const quiet = await fn(['x', 'y']);
    for (let i = 0; i < 5; i++) {
      const s = await acquireSlot(redis, 't', quiet, 1, T);
      expect(s).toMatchObject({ ok: true, instanceId: 'x' });
      await releaseSlot(redis, 't', quiet, leaseOf(s));
    }
  });

  it('say "none" without instances, and never count below zero or for a removed instance', async () => {
    const name = await fn([]);
    expect(await acquireSlot(redis, 't', name, 1, T)).toEqual({ ok: false, reason: 'none' });
    const one = await fn(['a']);
    const s = await acquireSlot(redis, 't', one, 1, T);
    expect(s).toMatchObject({ ok: true });
    await removeInstance(redis, 't', one, 'a');
    expect(await releaseSlot(redis, 't', one, leaseOf(s))).toBe(-1);
    expect(await redis.hexists(functionKeys('t', one).inflight, 'a')).toBe(0);
  });

  it('give back a slot whose holder died once its lease expires (timeout + margin), and only once', async () => {
    const name = await fn(['a']);
    const k = functionKeys('t', name);
    const held = await acquireSlot(redis, 't', name, 1, T); // its API replica "dies": never released
    const live = await fn(['b']);
    const kept = await acquireSlot(redis, 't', live, 1, T);
    expect(await acquireSlot(redis, 't', name, 1, T)).toEqual({ ok: false, reason: 'busy' });
    const expiry = Number(await redis.zscore(k.leases, leaseOf(held)));
    expect(expiry - Date.now()).toBeGreaterThan(T + SLOT_LEASE_MARGIN_MS - 5000);
    expect(await reapSlots(redis, 't', name, expiry - 1)).toBe(0);
    expect(await reapSlots(redis, 't', name, expiry)).toBe(1);
    expect(await redis.hget(k.inflight, 'a')).toBe('0');
    expect(await acquireSlot(redis, 't', name, 1, T)).toMatchObject({ ok: true, instanceId: 'a' });
    // The late holder's release changes nothing; the other function's slot was never touched.
    expect(await releaseSlot(redis, 't', name, leaseOf(held))).toBe(-2);
    expect(await redis.hget(k.inflight, 'a')).toBe('1');
    expect(await reapSlots(redis, 't', live)).toBe(0);
    expect(await releaseSlot(redis, 't', live, leaseOf(kept))).toBe(0);
  });

  it('renew the kept slots of a routable instance (their leases outlast the reaper) and none of a drained one', async () => {
    const name = await fn(['a']);
    const k = functionKeys('t', name);
    const kept = leaseOf(await acquireSlot(redis, 't', name, 10, T));
    const released = leaseOf(await acquireSlot(redis, 't', name, 10, T));
    expect(await releaseSlot(redis, 't', name, released)).toBe(1);
    const expiry = Number(await redis.zscore(k.leases, kept));
    // An hour later the API replica still keeps the slot: renewed, it is not the reaper's.
    expect(await renewSlots(redis, 't', name, 'a', [kept, released], 3_600_000)).toBe(true);
    const renewed = Number(await redis.zscore(k.leases, kept));
    expect(renewed - expiry).toBeGreaterThan(3_600_000 - T - 5000);
    expect(await reapSlots(redis, 't', name, expiry)).toBe(0);
    expect(await redis.zscore(k.leases, released)).toBeNull(); // a lease given back is not brought back
    expect(await redis.hget(k.inflight, 'a')).toBe('1');
    // Drained: the renewal says so and changes nothing; the replica gives the slot back.
    expect(await drainInstance(redis, 't', name, 'a', false)).toBe(1);
    expect(await renewSlots(redis, 't', name, 'a', [kept], 3_600_000)).toBe(false);
    expect(Number(await redis.zscore(k.leases, kept))).toBe(renewed);
    expect(await releaseSlot(redis, 't', name, kept)).toBe(0);
  });

  it('start one instance per waiting request that no starting instance covers, never beyond the maximum', async () => {
    const name = await fn([]);
    const k = functionKeys('t', name);
    await redis.zadd(k.waiters, Date.now() + 60_000, 'w1');
    expect(await requestInstance(redis, 't', name, 2, 1, 'i1')).toBe(true);
    expect(await requestInstance(redis, 't', name, 2, 1, 'i2')).toBe(false); // i1 covers w1
    await redis.zadd(k.waiters, Date.now() + 60_000, 'w2');
    expect(await requestInstance(redis, 't', name, 2, 1, 'i2')).toBe(true);
    await redis.zadd(k.waiters, Date.now() + 60_000, 'w3');
    expect(await requestInstance(redis, 't', name, 2, 1, 'i3')).toBe(false); // the maximum
    // Expired waiters do not count.
    const other = await fn([]);
    await redis.zadd(functionKeys('t', other).waiters, Date.now() - 1, 'old');
    expect(await requestInstance(redis, 't', other, 5, 1, 'j1')).toBe(false);
  });

  it('drain an instance out of routing; only an idle one when asked; a drained one never registers again', async () => {
    const name = await fn(['a', 'b']);
    const busy = await acquireSlot(redis, 't', name, 1, T); // a is busy
    expect(instanceOf(busy)).toBe('a');
    expect(await drainInstance(redis, 't', name, 'a', true)).toBe(-1);
    expect(await drainInstance(redis, 't', name, 'a', false)).toBe(1);
    expect(await acquireSlot(redis, 't', name, 1, T)).toMatchObject({ ok: true, instanceId: 'b' });
    expect(await releaseSlot(redis, 't', name, leaseOf(busy))).toBe(0);
    expect(await redis.zscore(functionKeys('t', name).ready, 'a')).toBeNull();
    expect(await registerInstance(redis, 't', name, 'a', route)).toBe(false);
  });
});

describe('desiredInstances', () => {
  const o: AutoscalerOptions = { tickMs: 100, stableWindowMs: 60_000, panicWindowMs: 6_000, targetUtilization: 0.7, panicThreshold: 2 };
  const fnConf = { concurrency: 10, minInstances: 0, maxInstances: 100 };
  const flat = (v: number, seconds: number, now: number) => Array.from({ length: seconds }, (_, i) => ({ t: now - i * 1000, v }));

  it('targets 70 % of the concurrency over the stable window', () => {
    const now = 1_000_000;
    expect(desiredInstances(flat(14, 60, now), now, o, fnConf, 2, 0).desired).toBe(2);
    expect(desiredInstances(flat(15, 60, now), now, o, fnConf, 3, 0).desired).toBe(3);
    expect(desiredInstances(flat(0, 60, now), now, o, fnConf, 1, 0).desired).toBe(0);
  });

  it('never wants less than one instance per request in flight at concurrency 1', () => {
    const now = 1_000_000;
    expect(desiredInstances(flat(1, 60, now), now, o, { ...fnConf, concurrency: 1 }, 1, 0).desired).toBe(1);
    expect(desiredInstances(flat(3, 60, now), now, o, { ...fnConf, concurrency: 1 }, 3, 0).desired).toBe(3);
  });

  it('panics on a burst and does not scale down during the stable window after it', () => {
    const now = 1_000_000;
    const samples = [...flat(0, 54, now - 6000), ...flat(70, 6, now)];
    const burst = desiredInstances(samples, now, o, fnConf, 1, 0);
    expect(burst.desired).toBe(10); // the panic window's want, not the stable one's (1 or 2)
    expect(burst.panicUntil).toBe(now + 60_000);
    const later = desiredInstances(flat(0, 60, now + 10_000), now + 10_000, o, fnConf, 10, burst.panicUntil);
    expect(later.desired).toBe(10);
    const after = desiredInstances(flat(0, 60, now + 61_000), now + 61_000, o, fnConf, 10, burst.panicUntil);
    expect(after.desired).toBe(0);
  });

  it('stays within min and max instances', () => {
    const now = 1_000_000;
    expect(desiredInstances(flat(0, 60, now), now, o, { ...fnConf, minInstances: 2 }, 0, 0).desired).toBe(2);
    expect(desiredInstances(flat(1000, 60, now), now, o, { ...fnConf, maxInstances: 5 }, 5, 0).desired).toBe(5);
  });
});
