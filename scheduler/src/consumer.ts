// Takes placement jobs from their BullMQ queue and works on up to `concurrency`
// at once. BullMQ's own worker loop starts a fetched job only once its next
// fetch has answered, and when the queue runs dry that fetch comes back empty:
// a Redis round trip more before every placement at a steady arrival rate.
// Here a job starts the moment it is fetched, while the next fetch is on its way.
import { DelayedError, Job, Worker, type JobJsonRaw } from 'bullmq';
import type { BerthRedis } from '../../common/redis.ts';

export interface ConsumerOptions<T> {
  queue: string;
  prefix: string;
  connection: BerthRedis;
  concurrency: number;
  /** Works on one job; throws DelayedError after moving the job to delayed itself. */
  process(job: Job<T>, token: string): Promise<void>;
  onFailed(job: Job<T>, err: Error): void;
  onError(err: Error): void;
}

export interface Consumer {
  /** Stops fetching, lets the jobs under way finish, and disconnects. */
  close(): Promise<void>;
}

const FETCH_RETRY_MS = 1000;

export async function startConsumer<T>(o: ConsumerOptions<T>): Promise<Consumer> {
  // No processor: the loop below fetches. `connection` is shared, not closed by the worker. Locks (30 s) outlast any placement, so
  // they are not renewed; a job whose replica died is put back by the stalled check.
  const worker = new Worker<T>(o.queue, null, { connection: o.connection, prefix: o.prefix, autorun: false });
  worker.on('error', o.onError);
  await worker.waitUntilReady();
  await worker.startStalledCheckTimer();

  let closing = false;
  let sequence = 0;
  const underWay = new Set<Promise<void>>();
  let slotFreed: (() => void) | undefined;

  // A lane: the job, then each job Redis hands back with the last one's completion
  // (one round trip for both while the queue has work), until none comes back.
  const work = async (first: Job<T>, token: string): Promise<void> => {
    let job: Job<T> | undefined = first;
    while (job) {
      const current: Job<T> = job;
      job = undefined;
      try {
        await o.process(current, token);
      } catch (err) {
        if (err instanceof DelayedError) continue;
        o.onFailed(current, err as Error);
        await current.moveToFailed(err as Error, token, false).catch((e: Error) => o.onError(e));
        continue;
      }
      try {
        const [data, id] = ((await current.moveToCompleted(undefined, token, !closing)) ?? []) as [JobJsonRaw?, string?];
        if (data) job = Job.fromJSON<T>(worker as never, data, id);
      } catch (err) {
        o.onError(err as Error);
      }
    }
  };

  const loop = (async () => {
    while (!closing) {
      if (underWay.size >= o.concurrency) {
        await new Promise<void>((resolve) => { slotFreed = resolve; });
        continue;
      }
      const token = `${worker.id}:${sequence++}`;
      let job: Job<T> | undefined;
      try {
        job = await worker.getNextJob(token);
      } catch (err) {
        if (closing) break;
        o.onError(err as Error);
        await new Promise((resolve) => setTimeout(resolve, FETCH_RETRY_MS));
        continue;
      }
      if (!job) continue;
      const running: Promise<void> = work(job, token).finally(() => {
        underWay.delete(running);
        slotFreed?.();
        slotFreed = undefined;
      });
      underWay.add(running);
    }
  })();

  return {
    async close() {
      closing = true;
      slotFreed?.();
      // Forced, the worker drops its blocking connection, which ends a fetch
      // waiting on an empty queue; the shared one (`connection`) stays open for
      // the jobs under way, and a job fetched meanwhile is still worked on.
      await worker.close(true);
      await loop;
      await Promise.all(underWay);
    },
  };
}
