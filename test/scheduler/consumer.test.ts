// The scheduler's fetch loop over a real BullMQ queue: every job done once,
// no more at once than the concurrency, a failing job in the failed set with
// its error, a job the processor delays left delayed, and a close that does
// not wait for an empty queue's blocking fetch.
import { DelayedError, Queue, type Job } from 'bullmq';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { connectRedis, type BerthRedis } from '../../common/redis.ts';
import { startConsumer, type Consumer } from '../../scheduler/src/consumer.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';

interface Work { n: number; fail?: boolean; delay?: boolean }

const PREFIX = 'consumer-test';
let server: TestRedis;
let redis: BerthRedis;
let queue: Queue<Work>;
let consumer: Consumer | undefined;

beforeAll(async () => { server = await startRedis(); });
afterAll(async () => { await server?.stop(); });
beforeEach(async () => {
  redis = connectRedis(server.url);
  await redis.flushall();
  queue = new Queue<Work>('work', { connection: redis, prefix: PREFIX });
});
afterEach(async () => {
  await consumer?.close();
  consumer = undefined;
  await queue.close();
  redis.disconnect();
});

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function consume(concurrency: number, process: (job: Job<Work>, token: string) => Promise<void>, failures: string[] = []): Promise<Consumer> {
  return startConsumer<Work>({
    queue: 'work', prefix: PREFIX, connection: redis, concurrency, process,
    onFailed: (job, err) => failures.push(`${job.data.n}: ${err.message}`),
    onError: (err) => failures.push(`error: ${err.message}`),
  });
}

it('does every job once, never more at once than the concurrency, with jobs queued before and after it starts', async () => {
  const done: number[] = [];
  let running = 0;
  let most = 0;
  await queue.addBulk(Array.from({ length: 100 }, (_, n) => ({ name: 'w', data: { n }, opts: { removeOnComplete: true } })));
  consumer = await consume(4, async (job) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
    done.push(job.data.n);
  });
  // Then one at a time, as a steady trickle arrives at an idle queue.
  for (let n = 100; n < 150; n++) {
    await queue.add('w', { n }, { removeOnComplete: true });
    await new Promise((r) => setTimeout(r, 3));
  }
  await until(() => done.length >= 150, '150 jobs done');
  expect([...done].sort((a, b) => a - b)).toEqual(Array.from({ length: 150 }, (_, n) => n));
  expect(most).toBeLessThanOrEqual(4);
  expect(most).toBeGreaterThan(1);
  expect(await queue.getJobCounts('wait', 'active', 'failed')).toEqual({ wait: 0, active: 0, failed: 0 });
});

it('puts a job whose processing threw in the failed set with its error, and leaves a job the processor delayed delayed', async () => {
  const failures: string[] = [];
  consumer = await consume(2, async (job, token) => {
    if (job.data.fail) throw new Error('no node matched');
    if (job.data.delay) {
      await job.moveToDelayed(Date.now() + 60_000, token);
      throw new DelayedError();
    }
  }, failures);
  await queue.add('w', { n: 1, fail: true }, { jobId: 'bad' });
  await queue.add('w', { n: 2, delay: true }, { jobId: 'later' });
  await queue.add('w', { n: 3 }, { jobId: 'good' });
  await until(async () => (await queue.getJobCounts('completed')).completed === 1 && (await queue.getJobCounts('failed')).failed === 1, 'one completed, one failed');
  await until(async () => (await queue.getJobState('later')) === 'delayed', 'the delayed job');
  expect((await queue.getJob('bad'))?.failedReason).toBe('no node matched');
  expect(failures).toEqual(['1: no node matched']);
  expect(await queue.getJobState('good')).toBe('completed');
});

it('closes at once while it waits on an empty queue, finishing the job under way', async () => {
  let finished = false;
  let started = false;
  consumer = await consume(2, async () => {
    started = true;
    await new Promise((r) => setTimeout(r, 300));
    finished = true;
  });
  await queue.add('w', { n: 1 }, { jobId: 'slow' });
  await until(() => started, 'the job to start');
  const closing = Date.now();
  await consumer.close();
  consumer = undefined;
  expect(finished).toBe(true);
  // BullMQ blocks a fetch on an empty queue for up to 5 s; the close does not wait for it.
  expect(Date.now() - closing).toBeLessThan(2_000);
  expect(await queue.getJobState('slow')).toBe('completed');
});
