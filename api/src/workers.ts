// API workers: the all-in-one serves its API port from several processes (one
// per core by default), as nginx serves from worker processes: the function
// gateway's work spreads over the cores instead of one event loop. Node's
// cluster module shares the listening socket; each worker is an ordinary
// stateless API replica on the cluster's Redis. /metrics, whichever worker
// answers it, shows every worker's series summed (cluster-wide gauges once).
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client';
import { ALLINONE_NODE_ARGS } from '../../common/daemons.ts';
import type { Logger } from '../../common/log.ts';

/** The IPC message of a worker's /metrics, and of the primary's answer. */
interface MetricsMessage {
  berth: 'metrics';
  id: number;
  text?: string;
  error?: string;
}

function isMetricsMessage(message: unknown): message is MetricsMessage {
  return typeof message === 'object' && message !== null && (message as MetricsMessage).berth === 'metrics';
}

export interface ApiWorkers {
  /** Stops every worker (each closes its API: in-flight requests finish) and waits for them. */
  close(): Promise<void>;
}

/** How long after a worker died another is started in its place. */
const RESTART_DELAY_MS = 1000;
/** How long a worker may take to close (its requests in flight finishing) before it is killed, or exits itself. */
const CLOSE_GRACE_MS = 10_000;

/**
 * Forks `count` API workers running the current entry point with `env` added;
 * resolves once every one listens, rejects when one exits before it does.
 * Workers that die later are started again.
 */
export async function forkApiWorkers(o: { count: number; env: Record<string, string>; logger: Logger }): Promise<ApiWorkers> {
  // The workers accept from the shared socket themselves (SCHED_NONE): handing each connection over
  // from this process (Node's default, SCHED_RR) cost every new connection ~0.6 ms and lost one handed
  // to a worker in the moment it died. Each worker accepts one connection per turn of its event loop
  // (libuv's UV_TCP_SINGLE_ACCEPT), so a burst of connections spreads over the workers; taking all it
  // could, one of two workers got 70 of 100 keep-alive clients and saturated.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // The all-in-one's Node options (ALLINONE_NODE_ARGS) in the workers too, even when the primary was
  // started without them.
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...ALLINONE_NODE_ARGS.filter((a) => !process.execArgv.includes(a))] });
  const aggregator = new AggregatorRegistry();
  let closing = false;
  /** The workers alive, and whether each listens yet. */
  const workers = new Map<Worker, { listening: boolean }>();

  const onMessage = (worker: Worker, message: unknown) => {
    if (!isMetricsMessage(message) || message.text !== undefined || message.error !== undefined) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ berth: 'metrics', id: message.id, text } satisfies MetricsMessage),
      (err: Error) => worker.send({ berth: 'metrics', id: message.id, error: err.message } satisfies MetricsMessage),
    );
  };
  cluster.on('message', onMessage);

  const fork = (): Promise<void> => new Promise((resolve, reject) => {
    const worker = cluster.fork(o.env);
    const state = { listening: false };
    workers.set(worker, state);
    worker.once('listening', () => {
      state.listening = true;
      resolve();
    });
    worker.once('exit', (code, signal) => {
      workers.delete(worker);
      if (!state.listening) {
        reject(new Error(`an API worker exited before it listened (${signal ?? `exit code ${code}`})`));
        return;
      }
      if (closing) return;
      o.logger.error({ pid: worker.process.pid, code, signal }, 'an API worker died; starting another');
      setTimeout(() => {
        if (!closing) fork().catch((err: Error) => o.logger.error({ err: err.message }, 'an API worker could not start'));
      }, RESTART_DELAY_MS).unref();
    });
  });

  const stop = async () => {
    closing = true;
    cluster.off('message', onMessage);
    await Promise.all([...workers].map(([worker, { listening }]) => new Promise<void>((resolve) => {
      if (worker.isDead()) {
        resolve();
        return;
      }
      // One still starting has no request to finish (and may not hear the close yet).
      const kill = setTimeout(() => worker.process.kill('SIGKILL'), listening ? CLOSE_GRACE_MS : 0);
      worker.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      try {
        worker.send({ berth: 'close' });
      } catch {
        worker.process.kill('SIGKILL'); // its channel is gone already: it cannot hear the close
      }
    })));
  };

  try {
    await Promise.all(Array.from({ length: o.count }, fork));
  } catch (err) {
    await stop();
    throw err;
  }
  return { close: stop };
}

/**
 * In a worker: the registry its API records into (with the process's own
 * series), shared with the primary, and what its /metrics answers: every
 * worker's series, gathered and summed by the primary.
 */
export function workerMetrics(): { registry: Registry; metricsText: () => Promise<string> } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  AggregatorRegistry.setRegistries([registry]);
  // prom-client answers the primary's requests once an aggregator exists in the worker.
  new AggregatorRegistry();
  return { registry, metricsText: clusterMetricsText };
}

let nextId = 0;
const answers = new Map<number, { resolve(text: string): void; reject(err: Error): void }>();

/** In a worker: the /metrics text of every worker, summed by the primary. */
function clusterMetricsText(): Promise<string> {
  if (!cluster.isWorker || !process.send) return Promise.reject(new Error('not an API worker'));
  if (answers.size === 0) process.on('message', onAnswer);
  const id = nextId++;
  return new Promise<string>((resolve, reject) => {
    answers.set(id, { resolve, reject });
    process.send!({ berth: 'metrics', id } satisfies MetricsMessage);
  });
}

function onAnswer(message: unknown): void {
  if (!isMetricsMessage(message)) return;
  const waiting = answers.get(message.id);
  if (!waiting) return;
  answers.delete(message.id);
  if (answers.size === 0) process.off('message', onAnswer);
  if (message.text !== undefined) waiting.resolve(message.text);
  else waiting.reject(new Error(message.error ?? 'no metrics'));
}

/**
 * In a worker: runs `close` once when the primary asks this worker to stop or
 * is gone (even while the worker still starts), then exits; exits regardless
 * after CLOSE_GRACE_MS.
 */
export function closeWhenAsked(close: () => Promise<void>, logger: Logger): void {
  let closing = false;
  const stop = () => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(1), CLOSE_GRACE_MS).unref();
    close().catch((err: Error) => logger.warn({ err: err.message }, 'close failed')).finally(() => process.exit(0));
  };
  process.on('message', (message: unknown) => {
    if (typeof message === 'object' && message !== null && (message as { berth?: string }).berth === 'close') stop();
  });
  process.once('disconnect', stop);
  if (!process.connected) stop();
  // The primary stops the workers in its own time; a terminal's Ctrl-C reaches every process of the group.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => undefined);
}
